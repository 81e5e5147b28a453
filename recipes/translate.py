"""Translate sentences with a saved model: one per line from stdin or --input, translations to stdout.

    echo "Select the cells." | python -m recipes.translate --model outputs/translation
    python -m recipes.translate --model outputs/translation --input sentences.txt --num_beams 4
    python -m recipes.translate --model outputs/translation --plot_attention attention.png < sentences.txt
    python -m recipes.translate --engine ctranslate2 --model outputs/translation-ct2 < sentences.txt
"""

import sys
from dataclasses import dataclass, field

import torch
from transformers import AutoModelForSeq2SeqLM, HfArgumentParser

import hf_vanilla  # noqa: F401  (registers the model classes with the Auto classes)
from hf_vanilla.plots import plot_attention
from recipes.common import check_input, checked_tokenizer, parse_arguments, translate


@dataclass
class TranslateArguments:
    model: str = field(metadata={"help": "A saved model folder (with its tokenizer), or for --engine ctranslate2 a "
                                         "folder written by recipes.export."})
    engine: str = field(default="transformers", metadata={"help": "transformers (model.generate) or ctranslate2."})
    input: str | None = field(default=None, metadata={"help": "A text file, one sentence a line (default stdin)."})
    num_beams: int | None = field(default=None, metadata={"help": "Beam size (default: the model's, 4)."})
    batch_size: int = field(default=32, metadata={"help": "Sentences translated together."})
    plot_attention: str | None = field(
        default=None, metadata={"help": "Draw the first sentence's cross-attention (last layer, mean of heads) "
                                        "as a heatmap in this PNG file."}
    )
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow the folder's own modeling code."})

    def __post_init__(self):
        if self.engine not in ("transformers", "ctranslate2"):
            raise ValueError(f"--engine {self.engine!r}: choose transformers or ctranslate2.")
        if self.engine == "ctranslate2" and self.plot_attention:
            raise ValueError("--plot_attention needs --engine transformers (CTranslate2 returns no attention).")


def attention_heatmap(model, tokenizer, sentence, path, num_beams):
    """Generate the translation of `sentence`, then draw the cross-attention each output token paid to the source."""
    batch = tokenizer([sentence], return_tensors="pt")
    output = model.generate(**batch, num_beams=num_beams or model.generation_config.num_beams,
                            max_length=min(batch["input_ids"].shape[1] + 50, model.config.max_position_embeddings - 1) + 1)
    with torch.no_grad():  # one teacher-forced pass over the chosen output gives every step's weights
        attentions = model(**batch, decoder_input_ids=output[:, :-1], output_attentions=True).cross_attentions
    weights = attentions[-1][0].mean(0)  # last layer, mean over heads: (output tokens, source tokens)
    source = tokenizer.convert_ids_to_tokens(batch["input_ids"][0])
    target = tokenizer.convert_ids_to_tokens(output[0, 1:])
    clean = [t.replace("Ġ", "▁") for t in source], [t.replace("Ġ", "▁") for t in target]
    plot_attention(weights.numpy(), clean[0], clean[1], path, title="cross-attention (last layer, mean of heads)")


def ctranslate2_translator(args):
    from hf_vanilla.export_ctranslate2 import CTranslate2Translator

    check_input(args.input)
    try:
        return CTranslate2Translator(args.model)
    except (FileNotFoundError, ImportError) as error:
        print(f"error: --model: {error}", file=sys.stderr)
        sys.exit(2)


def main(argv=None):
    parser = HfArgumentParser(TranslateArguments, description=__doc__)
    (args,) = parse_arguments(parser, argv)
    if args.engine == "ctranslate2":
        translator = ctranslate2_translator(args)
    else:
        tokenizer = checked_tokenizer(args.model, args.input)
        model = AutoModelForSeq2SeqLM.from_pretrained(args.model, trust_remote_code=args.trust_remote_code).eval()
    stream = open(args.input, encoding="utf-8") if args.input else sys.stdin
    with stream:
        sentences = [line.strip() for line in stream if line.strip()]
    if not sentences:
        print("error: no sentences to translate (empty input)", file=sys.stderr)
        return 2
    if args.engine == "ctranslate2":
        lines = translator.translate(sentences, args.batch_size, args.num_beams)
    else:
        lines = translate(model, tokenizer, sentences, args.batch_size, args.num_beams)
    for line in lines:
        print(line, flush=True)
    if args.plot_attention:
        attention_heatmap(model, tokenizer, sentences[0], args.plot_attention, args.num_beams)
        print(f"attention of the first sentence drawn in {args.plot_attention}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
