"""A web page to try a saved model: translate (with beam and length settings, and the cross-attention heatmap) or
classify (with every label's score). Needs the `[web]` extra (Gradio).

    python -m recipes.serve --model outputs/demo                  # then open http://127.0.0.1:7860
    python -m recipes.serve --model outputs/classification --port 8080
    python -m recipes.serve --engine ctranslate2 --model outputs/demo-ct2  # a folder from recipes.export

The kind of page follows the folder: a sequence-classification model gets the classifier page, any other seq2seq
folder (hf_vanilla, or HF Marian) the translation page. With `--engine ctranslate2` ([ctranslate2] extra) an exported
folder serves the same translation page, heatmap included (the engine returns the attention with the translation).
"""

import errno
import io
import json
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoModelForSeq2SeqLM, AutoModelForSequenceClassification, HfArgumentParser

import hf_vanilla  # noqa: F401  (registers the model classes with the Auto classes)
from hf_vanilla.cli import parse_arguments, report
from hf_vanilla.export_ctranslate2 import run_facts as engine_run_facts
from hf_vanilla.inference import cross_attention, decoding_settings, load_tokenizer
from hf_vanilla.loading_vanilla_transformer import check_model_folder

MAX_CHARACTERS = 2000  # one request's text; longer input is refused with a message, not cut silently


@dataclass
class ServeArguments:
    model: str = field(metadata={"help": "A saved model folder (with its tokenizer)."})
    host: str = field(default="127.0.0.1", metadata={"help": "Address to listen on (0.0.0.0: every interface)."})
    port: int = field(default=7860, metadata={"help": "Port to listen on."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow the folder's own modeling code."})
    engine: str = field(default="transformers", metadata={
        "help": "transformers (any saved folder), or ctranslate2 (a folder written by recipes.export --format "
                "ctranslate2; [ctranslate2] extra)."})

    def __post_init__(self):
        if not 0 < self.port < 65536:
            raise ValueError(f"--port {self.port} is not a port number (1 to 65535).")
        if self.engine not in ("transformers", "ctranslate2"):
            raise ValueError(f"--engine {self.engine!r}: choose transformers or ctranslate2.")


def is_classifier(folder):
    config = json.loads((Path(folder) / "config.json").read_text())
    return any(name.endswith("ForSequenceClassification") for name in config.get("architectures") or [])


def run_facts(folder):
    """What the training run saved about itself (results.json): its languages and a few validation texts."""
    facts = engine_run_facts(folder)
    return facts.get("languages"), facts.get("examples", [])


def checked_text(gr, text):
    """The text to work on, or a message in the page saying what is wrong with it."""
    text = (text or "").strip()
    if not text:
        raise gr.Error("Type a sentence first.")
    if len(text) > MAX_CHARACTERS:
        raise gr.Error(f"The text has {len(text)} characters; this page takes at most {MAX_CHARACTERS}.")
    return text


def translation_page(gr, translate, tokenizer, max_positions, folder):
    """`translate(text, num_beams, length_penalty)` gives (translation, weights, source tokens, output tokens), from
    the transformers model or the CTranslate2 engine."""
    from PIL import Image

    from hf_vanilla.training.plots import plot_attention

    settings = decoding_settings(folder)
    languages, examples = run_facts(folder)
    direction = f" from `{languages[0]}` to `{languages[1]}`" if languages else ""

    def run(text, num_beams, length_penalty):
        text = checked_text(gr, text)
        length = len(tokenizer(text)["input_ids"])
        limit = max_positions - 1
        translation, weights, source, target = translate(text, int(num_beams), float(length_penalty))
        png = io.BytesIO()  # drawn in memory: no file per request left behind
        plot_attention(weights, source, target, png, title="cross-attention (last layer, mean of heads)")
        note = f"The input has {length} tokens and was cut to the model's {limit}." if length > limit else ""
        return translation, Image.open(png), note

    # Gradio keeps each returned image in its cache folder: delete what is older than 10 minutes, every 5 minutes
    with gr.Blocks(title=f"hf_vanilla: {Path(folder).name}", delete_cache=(300, 600)) as page:
        gr.Markdown(f"## Translate{direction} with `{Path(folder).name}`\nA vanilla Transformer (hf_vanilla). Beam "
                    "search with the settings below; each output may be up to its input length + 50 tokens.",
                    elem_id="title")
        source = gr.Textbox(label=f"Text to translate{f' ({languages[0]})' if languages else ''}", lines=3,
                            elem_id="source")
        with gr.Row():
            beams = gr.Slider(1, 8, value=settings["num_beams"], step=1, label="Beam size", elem_id="num_beams")
            penalty = gr.Slider(0.0, 2.0, value=settings["length_penalty"], step=0.1,
                                label="Length penalty (beam search)", elem_id="length_penalty")
        button = gr.Button("Translate", variant="primary", elem_id="translate")
        target = gr.Textbox(label=f"Translation{f' ({languages[1]})' if languages else ''}", lines=3,
                            interactive=False, elem_id="target")
        note = gr.Markdown(label="Note", elem_id="note")
        heatmap = gr.Image(label="Cross-attention", type="pil", format="png", elem_id="heatmap")
        if examples:  # from the run's own validation data
            gr.Examples(examples=[[text] for text in examples], inputs=[source], label="Examples (validation data)")
        # one API endpoint, /translate; Enter in the text box runs the same function without a second endpoint
        button.click(run, inputs=[source, beams, penalty], outputs=[target, heatmap, note], api_name="translate")
        source.submit(run, inputs=[source, beams, penalty], outputs=[target, heatmap, note], api_name=False)
    return page


def classification_page(gr, model, tokenizer, folder):
    labels = model.config.id2label
    _, examples = run_facts(folder)

    def run(text):
        text = checked_text(gr, text)
        batch = tokenizer([text], return_tensors="pt", truncation=True,
                          max_length=model.config.max_position_embeddings)
        with torch.no_grad():
            probabilities = model(**batch).logits.float().softmax(-1)[0]
        return {labels[i]: float(p) for i, p in enumerate(probabilities)}

    with gr.Blocks(title=f"hf_vanilla: {Path(folder).name}") as page:
        gr.Markdown(f"## Classify with `{Path(folder).name}`\nA vanilla Transformer encoder (hf_vanilla) and a "
                    "linear classifier; the scores of every label.")
        text = gr.Textbox(label="Text to classify", lines=3, elem_id="source")
        button = gr.Button("Classify", variant="primary", elem_id="classify")
        scores = gr.Label(label="Labels", num_top_classes=len(labels), elem_id="scores")
        if examples:
            gr.Examples(examples=[[example] for example in examples], inputs=[text], label="Examples (validation data)")
        button.click(run, inputs=[text], outputs=[scores], api_name="classify")
        text.submit(run, inputs=[text], outputs=[scores], api_name=False)
    return page


def build_page(folder, trust_remote_code=False, engine="transformers"):
    """The Gradio page for a saved folder (raises FileNotFoundError/ValueError for a folder that cannot be used)."""
    import gradio as gr

    if engine == "ctranslate2":
        from hf_vanilla.export_ctranslate2 import CTranslate2Translator

        translator = CTranslate2Translator(folder, trust_remote_code=trust_remote_code)
        return translation_page(gr, translator.cross_attention, translator.tokenizer, translator.max_positions,
                                folder)
    check_model_folder(folder, model_type=None)
    tokenizer = load_tokenizer(folder, trust_remote_code=trust_remote_code)
    if is_classifier(folder):
        model = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=trust_remote_code)
        return classification_page(gr, model.eval(), tokenizer, folder)
    model = AutoModelForSeq2SeqLM.from_pretrained(folder, trust_remote_code=trust_remote_code).eval()

    def translate(text, num_beams, length_penalty):
        return cross_attention(model, tokenizer, text, num_beams, length_penalty)

    return translation_page(gr, translate, tokenizer, model.config.max_position_embeddings, folder)


def port_problem(host, port):
    """Why the page could not listen on (host, port), checked before the model is loaded; None when it can."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((host, port))
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            return f"{port} is in use on {host} (another server?): choose another --port"
        return f"cannot listen on {host}:{port} ({error.strerror}): choose another --host or --port"
    return None


def main(argv=None):
    (args,) = parse_arguments(HfArgumentParser(ServeArguments, description=__doc__), argv)
    try:
        import gradio  # noqa: F401
    except ImportError:
        return report("Gradio is not installed: pip install 'hf_vanilla[web]'", "model")
    problem = port_problem(args.host, args.port)
    if problem:
        return report(problem, "port")
    try:
        page = build_page(args.model, args.trust_remote_code, args.engine)
    except ImportError as error:  # --engine ctranslate2 without its extra
        return report(f"{error}", "engine")
    except (FileNotFoundError, ValueError) as error:
        return report(error, "model")
    print(f"serving {args.model} ({args.engine}) on http://{args.host}:{args.port}", file=sys.stderr, flush=True)
    page.launch(server_name=args.host, server_port=args.port, share=False, show_error=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
