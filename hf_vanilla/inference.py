"""Translating with a saved model: decoding settings and the output-length rule (core install only).

The paper decodes by beam search with a length penalty and lets each output reach its input length + 50 tokens (section
6.1): DEFAULT_NUM_BEAMS, DEFAULT_LENGTH_PENALTY and EXTRA_OUTPUT_TOKENS. Those are the defaults wherever a folder's
generation config does not say otherwise (defined in the modeling file, which travels with saved folders); here is how
the recipes, the CTranslate2 engine and the benchmarks apply them.
"""

import json
import sys
from pathlib import Path
from typing import NamedTuple

import torch
from tqdm.auto import tqdm
from transformers import AutoTokenizer

from .loading_vanilla_transformer import check_generation_settings

# the paper's decoding defaults: their home is the modeling file, whose `generate` applies the length rule and which
# travels with every saved folder
from .modeling_vanilla_transformer import DEFAULT_LENGTH_PENALTY, DEFAULT_NUM_BEAMS, EXTRA_OUTPUT_TOKENS  # noqa: F401

GENERATION_FILE = "generation_config.json"


def output_length_limit(source_length: int, max_positions: int, extra: int = EXTRA_OUTPUT_TOKENS) -> int:
    """The most tokens an output of a `source_length`-token input may have (without the decoder start token):
    input length + 50, within the model's `max_positions` positions (one of which the start token takes)."""
    return min(source_length + extra, max_positions - 1)


def decoding_settings(folder) -> dict:
    """`num_beams` and `length_penalty` from a folder's `generation_config.json`; the paper's (the defaults) for what it
    does not set (a folder written by plain `save_pretrained` has no beam size). An unreadable file is an error
    naming it, never a silent switch to other settings."""
    settings = {"num_beams": DEFAULT_NUM_BEAMS, "length_penalty": DEFAULT_LENGTH_PENALTY}
    path = Path(folder) / GENERATION_FILE
    if path.is_file():
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"{path} is not valid JSON ({error}): restore the file, or delete it to decode with "
                             f"beam {DEFAULT_NUM_BEAMS} and length penalty {DEFAULT_LENGTH_PENALTY}.") from error
        if not isinstance(saved, dict):
            raise ValueError(f"{path} holds {type(saved).__name__}, not a JSON object of generation settings.")
        check_generation_settings(saved, path)
        settings.update({key: saved[key] for key in settings if saved.get(key) is not None})
    return settings


def load_tokenizer(folder, *, trust_remote_code: bool):
    """AutoTokenizer from a saved folder, with a clear error when the folder is missing or holds no tokenizer.

    `trust_remote_code` is required and always passed on: left unset, transformers asks "Do you wish to run the
    custom code? [y/N]" on stdin for a folder whose tokenizer_config.json has an `auto_map`, and so reads the lines a
    recipe was given to translate. With False such a folder is refused (ValueError) before any input is read."""
    path = Path(folder)
    if not path.is_dir():
        raise FileNotFoundError(f"No tokenizer folder at {folder}: give a folder written by save_pretrained.")
    if not (path / "tokenizer.json").is_file() and not (path / "tokenizer_config.json").is_file():
        raise FileNotFoundError(f"{folder} holds no tokenizer (no tokenizer.json): give the output folder of a "
                                f"training run, or a folder written by tokenizer.save_pretrained.")
    check_tokenizer_files(path)
    try:
        return AutoTokenizer.from_pretrained(folder, trust_remote_code=bool(trust_remote_code))
    except ValueError as error:
        if not trust_remote_code and _declares_code(path / "tokenizer_config.json"):
            raise ValueError(f"{path / 'tokenizer_config.json'} names code of its own (auto_map) that loading it "
                             f"would run: refused. Pass --trust_remote_code True (trust_remote_code=True) only if "
                             f"you trust the folder.") from error
        raise


def check_tokenizer_files(folder):
    """Refuse a damaged tokenizer file by name (transformers reports a bare JSON or KeyError without one): each JSON
    file must parse, and tokenizer.json must build a tokenizer."""
    from tokenizers import Tokenizer

    for name in ("tokenizer_config.json", "special_tokens_map.json", "tokenizer.json"):
        path = Path(folder) / name
        if not path.is_file():
            continue
        try:
            json.loads(path.read_text(encoding="utf-8"))
            if name == "tokenizer.json":
                Tokenizer.from_file(str(path))
        except Exception as error:  # json: ValueError; tokenizers: a bare Exception
            raise ValueError(f"{path} is damaged ({type(error).__name__}: {error}): restore the tokenizer files from "
                             f"a copy of the folder, or save the tokenizer again.") from error


def _declares_code(path):
    try:
        return "auto_map" in json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False


def length_sorted_batches(texts, batch_size):
    """Index lists of texts of similar length (less padding), each of at most `batch_size`; every index once."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def generation_kwargs(generation_config, num_beams=None, length_penalty=None) -> dict:
    """Beam size and length penalty for `generate`: the arguments, else the generation config's, else the paper's.
    A length penalty only for beam search (greedy decoding has no use for it, and transformers warns)."""
    beams = num_beams or generation_config.num_beams or DEFAULT_NUM_BEAMS
    if beams == 1:
        return {"num_beams": 1}
    if length_penalty is None:
        length_penalty = generation_config.length_penalty
    return {"num_beams": beams, "length_penalty": DEFAULT_LENGTH_PENALTY if length_penalty is None else length_penalty}


@torch.no_grad()
def translate(model, tokenizer, texts, batch_size=64, num_beams=None, *, length_penalty=None, max_source_length=None,
              progress=None):
    """Translations of `texts` in their order, generated in batches of similar length.

    Each batch may output up to its input length + 50 tokens; `num_beams` and `length_penalty` default to the
    model's generation config, and to the paper's where that does not set them. `progress`: a description for a
    progress bar on stderr (none by default)."""
    model.eval()
    texts = list(texts)
    outputs = [None] * len(texts)
    batches = length_sorted_batches(texts, batch_size)
    for chunk in tqdm(batches, desc=progress, unit="batch", disable=progress is None, file=sys.stderr):
        for i, text in zip(chunk, translate_batch(model, tokenizer, [texts[i] for i in chunk], num_beams,
                                                  length_penalty=length_penalty,
                                                  max_source_length=max_source_length)):
            outputs[i] = text
    return outputs


@torch.no_grad()
def translate_batch(model, tokenizer, texts, num_beams=None, *, length_penalty=None, max_source_length=None):
    """One `generate` call over `texts` (a list of strings); the translations, stripped."""
    limit = model.config.max_position_embeddings - 1
    batch = tokenizer(list(texts), return_tensors="pt", padding=True, truncation=True,
                      max_length=max_source_length or limit).to(model.device)
    generated = model.generate(
        **batch,
        **generation_kwargs(model.generation_config, num_beams, length_penalty),
        max_length=output_length_limit(batch["input_ids"].shape[1], model.config.max_position_embeddings) + 1,
    )
    return [text.strip() for text in tokenizer.batch_decode(generated, skip_special_tokens=True)]


class LineProblem(NamedTuple):
    """What is wrong with one input line: `skipped` lines were left out (not UTF-8), the others kept (truncated)."""

    number: int
    message: str
    skipped: bool


def read_lines(stream, batch_size, tokenizer=None, max_tokens=None):
    """Batches of (line number, text) from a binary stream, read lazily, with each batch's problems.

    Yields (batch, problems): `batch` holds up to `batch_size` non-blank lines, decoded as UTF-8 and stripped;
    `problems` lists a LineProblem for each line since the last batch that is not UTF-8 (left out of the batch) or,
    with a tokenizer, longer than `max_tokens` tokens (kept, and translated truncated)."""
    batch, problems = [], []
    for number, raw in enumerate(stream, 1):
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError as error:
            problems.append(LineProblem(number, f"not UTF-8 (byte 0x{raw[error.start]:02x} at column "
                                                f"{error.start + 1}): skipped; save the input as UTF-8", skipped=True))
            continue
        if text:
            batch.append((number, text))
        if len(batch) == batch_size:
            yield batch, _with_truncations(batch, problems, tokenizer, max_tokens)
            batch, problems = [], []
    if batch or problems:
        yield batch, _with_truncations(batch, problems, tokenizer, max_tokens)


def _with_truncations(batch, problems, tokenizer, max_tokens):
    """`problems` plus the batch's lines longer than `max_tokens` (one tokenizer call per batch), in line order."""
    if tokenizer is not None and max_tokens and batch:
        lengths = map(len, tokenizer([text for _, text in batch])["input_ids"])
        problems = problems + [LineProblem(number, f"{length} tokens, truncated to the model's {max_tokens}", False)
                               for (number, _), length in zip(batch, lengths) if length > max_tokens]
    return sorted(problems)


@torch.no_grad()
def cross_attention(model, tokenizer, text, num_beams=None, length_penalty=None):
    """Translate one text, then read the cross-attention each output token paid to the source.

    Returns (translation, weights, source tokens, output tokens): weights (output tokens, source tokens) are the last
    decoder layer's, averaged over heads, from one teacher-forced pass over the chosen output."""
    model.eval()
    batch = tokenizer([text], return_tensors="pt", truncation=True,
                      max_length=model.config.max_position_embeddings - 1).to(model.device)
    output = model.generate(**batch, **generation_kwargs(model.generation_config, num_beams, length_penalty),
                            max_length=output_length_limit(batch["input_ids"].shape[1],
                                                           model.config.max_position_embeddings) + 1)
    attentions = model(**batch, decoder_input_ids=output[:, :-1], output_attentions=True).cross_attentions
    weights = attentions[-1][0].mean(0).float().cpu()  # last layer, mean over heads: (output tokens, source tokens)
    translation = tokenizer.decode(output[0], skip_special_tokens=True).strip()
    return (translation, weights.numpy(), readable_tokens(tokenizer, batch["input_ids"][0].tolist()),
            readable_tokens(tokenizer, output[0, 1:].tolist()))


def readable_tokens(tokenizer, ids):
    """Each token as the text it stands for (byte-level pieces decoded), a leading space shown as "\u2581"."""
    return [tokenizer.decode([i]).replace(" ", "\u2581") for i in ids]
