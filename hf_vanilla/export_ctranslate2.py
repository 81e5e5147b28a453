"""Export a translation model to CTranslate2, the inference engine behind OpenNMT and the usual way to serve Marian.

The model is described with CTranslate2's own spec classes (`TransformerSpec` and its layers), which write its binary
format; nothing here knows that format. Needs the `[ctranslate2]` extra (`pip install "hf_vanilla[ctranslate2]"`).

    from hf_vanilla.export_ctranslate2 import export_ctranslate2
    export_ctranslate2("outputs/translation", "outputs/translation-ct2", quantization="int8")

The exported folder holds the engine's `model.bin` and vocabulary, the tokenizer files and `generation_config.json`,
so it is all a user needs to translate (`CTranslate2Translator` below, or `recipes.translate --engine ctranslate2`).
"""

import json
import os
from pathlib import Path

import numpy as np
import torch

from .configuration_vanilla_transformer import VanillaTransformerConfig
from .files import atomic_folder, check_output_folder, space_for
from .inference import GENERATION_FILE, decoding_settings, load_tokenizer, output_length_limit, readable_tokens
from .loading_vanilla_transformer import check_model_folder
from .modeling_vanilla_transformer import VanillaTransformerForConditionalGeneration

# transformers' activation names -> CTranslate2's (its exact erf GELU, the tanh approximation, SiLU)
_ACTIVATIONS = {"relu": "RELU", "gelu": "GELU", "gelu_new": "GELUTanh", "gelu_pytorch_tanh": "GELUTanh",
                "silu": "SWISH", "swish": "SWISH"}
QUANTIZATIONS = ("int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16", "float16", "bfloat16", "float32")
# files of a saved tokenizer that travel with the engine's folder, and the decoding settings
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
# what an export writes: only a folder holding nothing else may be replaced by --overwrite_output_dir
RUN_FACTS = "results.json"  # the training run's languages and validation examples, for the page (recipes.serve)
EXPORT_FILES = ("model.bin", "config.json", "*vocabulary.json", "*vocabulary.txt", "generation_config.json",
                RUN_FACTS, *TOKENIZER_FILES)


def _ctranslate2():
    try:
        import ctranslate2
    except ImportError as error:
        raise ImportError("CTranslate2 is not installed: pip install 'hf_vanilla[ctranslate2]' (or ctranslate2).") \
            from error
    return ctranslate2


def _array(tensor):
    return tensor.detach().to(torch.float32).cpu().numpy()


def _linear(spec, linear):
    spec.weight = _array(linear.weight)
    if linear.bias is not None:
        spec.bias = _array(linear.bias)


def _fused(spec, linears):
    """One CTranslate2 linear from several of ours, stacked along the output dimension (Q, K, V -> QKV)."""
    spec.weight = np.concatenate([_array(linear.weight) for linear in linears])
    spec.bias = np.concatenate([_array(linear.bias) for linear in linears])


def _norm(spec, norm):
    spec.gamma, spec.beta = _array(norm.weight), _array(norm.bias)


def _attention(spec, attention, norm, cross):
    if cross:  # queries from the decoder, keys and values from the encoder output
        _fused(spec.linear[0], [attention.q_proj])
        _fused(spec.linear[1], [attention.k_proj, attention.v_proj])
    else:
        _fused(spec.linear[0], [attention.q_proj, attention.k_proj, attention.v_proj])
    _linear(spec.linear[-1], attention.out_proj)
    _norm(spec.layer_norm, norm)


def _feed_forward(spec, layer):
    _linear(spec.linear_0, layer.feed_forward.fc1)
    _linear(spec.linear_1, layer.feed_forward.fc2)
    _norm(spec.layer_norm, layer.ffn_layer_norm)


def _stack(spec, stack, embedding):
    """Embedding (scaled like ours), our own sinusoidal table (interleaved sin/cos, handed over row for row, not
    CTranslate2's built-in layout), and the final LayerNorm of a pre-LN stack."""
    embedding.weight = _array(stack.embed_tokens.weight)
    spec.scale_embeddings = float(stack.embed_tokens.embed_scale)
    spec.position_encodings.encodings = _array(stack.position_encoding)
    if stack.layer_norm is not None:
        _norm(spec.layer_norm, stack.layer_norm)


def unsupported_settings(config):
    """The settings of `config` that CTranslate2's Transformer cannot represent, each with why."""
    problems = []
    if config.activation_function not in _ACTIVATIONS:
        problems.append(f"activation_function={config.activation_function!r} (CTranslate2 has "
                        f"{', '.join(sorted(_ACTIVATIONS))})")
    return problems


def ctranslate2_spec(model: VanillaTransformerForConditionalGeneration, tokens: list[str], special_tokens: dict):
    """A `ctranslate2.specs.TransformerSpec` holding `model`'s weights, with `tokens` (one per id) as the shared
    source and target vocabulary and `special_tokens` (bos, eos, unk, decoder_start) as the engine's config."""
    _ctranslate2()
    from ctranslate2.specs import common_spec, transformer_spec

    config = model.config
    problems = unsupported_settings(config)
    if problems:
        raise ValueError("CTranslate2 cannot represent this model: " + "; ".join(problems) + ".")
    spec = transformer_spec.TransformerSpec.from_config(
        (config.encoder_layers, config.decoder_layers),
        config.num_attention_heads,
        pre_norm=config.norm_first,  # post-LN (the paper's) has no final LayerNorm in either engine
        activation=getattr(common_spec.Activation, _ACTIVATIONS[config.activation_function]),
        alignment_heads=0,  # attention returned (the page's heatmap): the last layer's, averaged over all heads
    )
    encoder, decoder = model.model.encoder, model.model.decoder
    _stack(spec.encoder, encoder, spec.encoder.embeddings[0])
    _stack(spec.decoder, decoder, spec.decoder.embeddings)
    for layer_spec, layer in zip(spec.encoder.layer, encoder.layers):
        _attention(layer_spec.self_attention, layer.self_attn, layer.self_attn_layer_norm, cross=False)
        _feed_forward(layer_spec.ffn, layer)
    for layer_spec, layer in zip(spec.decoder.layer, decoder.layers):
        _attention(layer_spec.self_attention, layer.self_attn, layer.self_attn_layer_norm, cross=False)
        _attention(layer_spec.attention, layer.encoder_attn, layer.encoder_attn_layer_norm, cross=True)
        _feed_forward(layer_spec.ffn, layer)
    _linear(spec.decoder.projection, model.lm_head)  # the shared matrix when tied; CTranslate2 aliases equal arrays
    spec.register_source_vocabulary(tokens)
    spec.register_target_vocabulary(tokens)
    spec.config.layer_norm_epsilon = config.layer_norm_eps
    for key, token in special_tokens.items():
        setattr(spec.config, key, token)
    return spec


def vocabulary(tokenizer, vocab_size):
    """One token string per model id. Ids the tokenizer lacks (a model built with a larger vocabulary) get unique
    placeholder names: the model never sees them in input, and an output of one decodes to nothing."""
    tokens = tokenizer.convert_ids_to_tokens(list(range(vocab_size)))
    return [token if token is not None else f"<unused_{i}>" for i, token in enumerate(tokens)]


def export_ctranslate2(model_dir, output_dir, quantization=None, overwrite=False, trust_remote_code=False):
    """Write a CTranslate2 folder for the translation model saved in `model_dir` (with its tokenizer).

    The folder is built beside `output_dir` and moved into place when complete, so an interrupted export leaves
    nothing half-written. `output_dir` is checked first (`hf_vanilla.files.check_output_folder`): never the model
    folder, inside it or above it; an existing non-empty one only with `overwrite`, and only if it holds nothing but
    an earlier export's files (OutputFolderRefused otherwise)."""
    from transformers import AutoModelForSeq2SeqLM

    _ctranslate2()
    if quantization is not None and quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization={quantization!r} is not one of CTranslate2's: {', '.join(QUANTIZATIONS)}.")
    output_dir = Path(output_dir)
    check_output_folder(output_dir, inputs={"model": model_dir}, overwrite=overwrite, ours=EXPORT_FILES)
    check_model_folder(model_dir, model_type=None)
    with open(Path(model_dir) / "config.json", encoding="utf-8") as handle:
        config = json.load(handle)
    architectures = config.get("architectures") or []
    if config.get("model_type") != "vanilla_transformer" or (
            architectures and "VanillaTransformerForConditionalGeneration" not in architectures):
        raise ValueError(f"{model_dir} holds a {', '.join(architectures) or config.get('model_type')}; CTranslate2 "
                         f"export is for hf_vanilla translation models (VanillaTransformerForConditionalGeneration).")
    problems = unsupported_settings(VanillaTransformerConfig.from_pretrained(model_dir))
    if problems:
        raise ValueError(f"{model_dir}: CTranslate2 cannot represent this model: " + "; ".join(problems) + ".")
    if not (Path(model_dir) / TOKENIZER_FILES[0]).is_file():
        raise FileNotFoundError(f"{model_dir} has no {TOKENIZER_FILES[0]}: the exported folder needs the model's "
                                f"tokenizer.")
    tokenizer = load_tokenizer(model_dir, trust_remote_code=trust_remote_code)
    model = AutoModelForSeq2SeqLM.from_pretrained(model_dir, trust_remote_code=trust_remote_code).eval()
    names = tokenizer.convert_ids_to_tokens
    special = {"bos_token": names(model.config.bos_token_id), "eos_token": names(model.config.eos_token_id),
               "unk_token": tokenizer.unk_token, "decoder_start_token": names(model.config.decoder_start_token_id)}
    spec = ctranslate2_spec(model, vocabulary(tokenizer, model.config.vocab_size), special)
    for name in TOKENIZER_FILES:
        if (Path(model_dir) / name).is_file():
            spec.register_file(str(Path(model_dir) / name))
    generation = decoding_settings(model_dir)
    spec.validate()
    spec.optimize(quantization=quantization)

    # the engine's weights: one byte per value in int8, two in 16-bit types, else the model's own size
    size = 1 if "int8" in (quantization or "") else 2 if quantization in ("int16", "float16", "bfloat16") else 4
    with atomic_folder(output_dir) as staging, space_for(output_dir, size * model.num_parameters()):
        spec.save(str(staging))
        with open(staging / GENERATION_FILE, "w", encoding="utf-8") as handle:
            json.dump({**generation, "max_position_embeddings": model.config.max_position_embeddings}, handle,
                      indent=2)
        facts = run_facts(model_dir)
        if facts:
            (staging / RUN_FACTS).write_text(json.dumps(facts, indent=2, ensure_ascii=False), encoding="utf-8")
    return output_dir


def run_facts(folder):
    """What a training run saved about itself for the page (results.json's languages and validation examples), or
    {} where there is none or it is damaged: only the page's extras come from it."""
    path = Path(folder) / RUN_FACTS
    try:
        facts = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (ValueError, UnicodeDecodeError):
        return {}
    if not isinstance(facts, dict):
        return {}
    languages = facts.get("languages")
    examples = [text for text in facts.get("examples") or [] if isinstance(text, str)]
    return {**({"languages": languages} if isinstance(languages, list) and len(languages) == 2 else {}),
            **({"examples": examples} if examples else {})}


def check_engine_folder(folder):
    """An exported folder's JSON files parse and its vocabulary is a list of token strings, each refused by name
    (the engine reports a parse error without naming the file)."""
    vocabularies = sorted(Path(folder).glob("*vocabulary.json"))
    if not vocabularies:
        raise FileNotFoundError(f"{folder} has no shared_vocabulary.json: give a folder written by recipes.export.")
    for path in [Path(folder) / "config.json", Path(folder) / GENERATION_FILE, *vocabularies]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"{folder} has no {path.name}: give a folder written by recipes.export.") from None
        except (ValueError, UnicodeDecodeError) as error:
            raise ValueError(f"{path} is damaged (not valid JSON: {error}): export the model again.") from error
        if path in vocabularies and not (isinstance(data, list) and data and all(isinstance(t, str) for t in data)):
            raise ValueError(f"{path} is damaged (not a list of token strings): export the model again.")
        if path.name == GENERATION_FILE and not isinstance(data.get("max_position_embeddings") if isinstance(
                data, dict) else None, int):
            raise ValueError(f"{path} has no max_position_embeddings: export the model again.")


def available_cores():
    """The CPU cores this process may run on (its affinity mask, which a container or taskset may narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def engine_layout(device="cpu", workers=None, threads=None):
    """(inter_threads, intra_threads) for CTranslate2: by default on a CPU one worker per core, each on one thread,
    with batches in flight on every worker (measured fastest for files: float32 3.00x HF Marian with 2 workers x 1
    thread against 2.00x with 1 x 2, int8 9.62x against 1.62x, on this project's 2-core machine); on a GPU one
    worker. Either may be given to override."""
    if device != "cpu":
        return workers or 1, threads or 0  # 0: the engine's own default
    cores = available_cores()
    workers = workers or cores
    return workers, threads or max(1, cores // workers)


class CTranslate2Translator:
    """Translate text with an exported folder: the engine's `Translator`, the saved tokenizer, and the folder's
    decoding settings (each batch may output up to its longest input + 50 tokens, as `recipes.translate`)."""

    def __init__(self, folder, device="cpu", compute_type="default", inter_threads=None, intra_threads=None,
                 trust_remote_code=False):
        ctranslate2 = _ctranslate2()
        inter_threads, intra_threads = engine_layout(device, inter_threads, intra_threads)
        if not (Path(folder) / "model.bin").is_file():
            raise FileNotFoundError(f"{folder} has no model.bin: give a folder written by recipes.export "
                                    f"--format ctranslate2.")
        check_engine_folder(folder)
        try:
            self.translator = ctranslate2.Translator(str(folder), device=device, compute_type=compute_type,
                                                     inter_threads=inter_threads, intra_threads=intra_threads)
        except RuntimeError as error:  # the engine's own message names a variable, not the file
            raise ValueError(f"{Path(folder) / 'model.bin'} is damaged ({error}): export the model again.") from error
        self.tokenizer = load_tokenizer(folder, trust_remote_code=trust_remote_code)
        vocabulary_file = next(Path(folder).glob("*vocabulary.json"))
        saved = json.loads(vocabulary_file.read_text(encoding="utf-8"))
        if saved != vocabulary(self.tokenizer, len(saved)):
            raise ValueError(f"{vocabulary_file} does not match the folder's tokenizer.json (another model's "
                             f"vocabulary, or an edited file): export the model again.")
        with open(Path(folder) / GENERATION_FILE, encoding="utf-8") as handle:
            self.max_positions = json.load(handle)["max_position_embeddings"]  # checked by check_engine_folder
        self.settings = decoding_settings(folder)

    def _translate_batch(self, tokens, num_beams, length_penalty, **options):
        """The engine's translate_batch with the folder's settings and the length limits of `recipes.translate`."""
        return self.translator.translate_batch(
            tokens,
            beam_size=num_beams or self.settings["num_beams"],
            length_penalty=length_penalty if length_penalty is not None else self.settings["length_penalty"],
            max_decoding_length=output_length_limit(max(len(t) for t in tokens), self.max_positions),
            max_input_length=self.max_positions - 1,
            **options,
        )

    def translate_tokens(self, batches_of_ids, num_beams=None, length_penalty=None, asynchronous=False):
        """Token ids in (lists of ids, each ending with </s>), token ids out (no start or end token). With
        `asynchronous`, the batch is queued for the next free worker and a function that waits for it is returned."""
        tokens = [self.tokenizer.convert_ids_to_tokens(ids) for ids in batches_of_ids]
        results = self._translate_batch(tokens, num_beams, length_penalty, asynchronous=asynchronous)

        def ids(results):
            return [self.tokenizer.convert_tokens_to_ids(result.hypotheses[0]) for result in results]

        return (lambda: ids([result.result() for result in results])) if asynchronous else ids(results)

    def cross_attention(self, text, num_beams=None, length_penalty=None):
        """As `hf_vanilla.inference.cross_attention`, from the engine: (translation, weights (output tokens, source
        tokens), source tokens, output tokens). The weights are what the engine returns with the translation: the last
        decoder layer's cross-attention, averaged over heads (for folders exported before the page could serve an
        engine: its first head)."""
        ids = self.tokenizer([text], truncation=True, max_length=self.max_positions - 1)["input_ids"][0]
        tokens = self.tokenizer.convert_ids_to_tokens(ids)
        result = self._translate_batch([tokens], num_beams, length_penalty, return_attention=True)[0]
        output = self.tokenizer.convert_tokens_to_ids(result.hypotheses[0])
        weights = np.asarray(result.attention[0], dtype=np.float32)[: len(output)]  # (output tokens, source tokens)
        translation = self.tokenizer.decode(output, skip_special_tokens=True).strip()
        return translation, weights, readable_tokens(self.tokenizer, ids), readable_tokens(self.tokenizer, output)

    @property
    def workers(self):
        return self.translator.num_translators

    def submit(self, texts, num_beams=None, length_penalty=None):
        """Queue one batch of texts; returns a function that waits for its translations (in the texts' order). Up to
        `workers` batches then translate at once, each with the settings and length limit it would have alone."""
        ids = self.tokenizer(list(texts), truncation=True, max_length=self.max_positions - 1)["input_ids"]
        wait = self.translate_tokens(ids, num_beams, length_penalty, asynchronous=True)
        return lambda: [text.strip() for text in self.tokenizer.batch_decode(wait(), skip_special_tokens=True)]

    def translate(self, texts, batch_size=32, num_beams=None, length_penalty=None):
        """Translations of `texts`, in batches of similar length (all queued at once, so every worker has one), in
        the input order."""
        texts = list(texts)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        chunks = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
        waits = [self.submit([texts[i] for i in chunk], num_beams, length_penalty) for chunk in chunks]
        outputs = [None] * len(texts)
        for chunk, wait in zip(chunks, waits):
            for i, text in zip(chunk, wait()):
                outputs[i] = text
        return outputs
