"""The translation task's training steps that both recipes share: tokenising pairs, the paper's decoding settings,
BLEU evaluation, and the end of a run (last model vs averaged checkpoints, then the output folder and its card)."""

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from accelerate import PartialState

from hf_vanilla.files import atomic_folder, space_for
from hf_vanilla.inference import EXTRA_OUTPUT_TOKENS, load_tokenizer, translate

from .cards import (
    card_metadata,
    command_line,
    markdown_table,
    model_description,
    page_examples,
    write_json,
    write_model_card,
)
from .checkpoints import average_checkpoints, list_checkpoints, weights_bytes
from .corpora import CORPORA, corpus_meta
from .metrics import translation_scores
from .plots import plot_training_curves
from .policies import data_fingerprint, main_process_first
from .tokenizer import train_bpe_tokenizer

if TYPE_CHECKING:  # names for TranslationRun's fields; arguments imports this module's neighbours at run time
    from datasets import DatasetDict
    from transformers import PreTrainedTokenizerBase

    from .arguments import DataArguments, ModelArguments, TranslationArguments

logger = logging.getLogger(__name__)


def run_tokenizer(model_args, texts=None, output_dir=None, resuming=False, mask_token=None):
    """The tokenizer a run uses: the one named (or the start model's); when resuming, the one the run saved in
    `output_dir` (a new BPE would give the ids other meanings); else a joint BPE trained on `texts` (source and
    target together, one vocabulary; with `mask_token` for pre-training) and saved in `output_dir`."""
    name = model_args.tokenizer_name or model_args.model_name_or_path
    if name:
        return load_tokenizer(name, trust_remote_code=model_args.trust_remote_code)
    if resuming and output_dir and (Path(output_dir) / "tokenizer.json").is_file():
        return load_tokenizer(output_dir, trust_remote_code=False)  # this run's own, written by the project
    if output_dir is None:
        return train_bpe_tokenizer(texts, vocab_size=model_args.vocab_size, mask_token=mask_token)
    with main_process_first():  # one process trains and saves it; the others read that one (the same ids)
        if not PartialState().is_main_process:
            return load_tokenizer(output_dir, trust_remote_code=False)
        print(f"training a joint BPE tokenizer of {model_args.vocab_size} tokens", file=sys.stderr)
        tokenizer = train_bpe_tokenizer(texts, vocab_size=model_args.vocab_size, mask_token=mask_token)
        tokenizer.save_pretrained(output_dir)
        return tokenizer


def run_settings(model_args, data_args, raw, columns):
    """What a resumed run must share with the run it continues (`policies.record_or_check_run`)."""
    rows, digest = data_fingerprint(raw["train"], columns)  # one pass, also over a stream
    return {
        "data": str(data_args.name), "pair": data_args.pair, "train_rows": rows,
        "train_sha256": digest, "preset": model_args.preset,
        "model_name_or_path": model_args.model_name_or_path, "tokenizer_name": model_args.tokenizer_name,
        "vocab_size": model_args.vocab_size, "norm_first": model_args.norm_first, "dropout": model_args.dropout,
        "init_std": model_args.init_std, "scale_embedding": model_args.scale_embedding,
        "max_source_length": model_args.max_source_length, "max_target_length": model_args.max_target_length,
    }


def translation_features(tokenizer, max_source_length, max_target_length):
    """A batched `map` function: source -> input_ids/attention_mask, target -> labels, plus lengths for batching."""

    def tokenize(rows):
        features = tokenizer(rows["source"], max_length=max_source_length, truncation=True)
        targets = tokenizer(text_target=rows["target"], max_length=max_target_length, truncation=True)
        features["labels"] = targets["input_ids"]
        features["length"] = [len(s) + len(t) for s, t in zip(features["input_ids"], features["labels"])]
        return features

    return tokenize


def paper_generation_settings(model, num_beams, length_penalty):
    """The saved model's decoding: beam `num_beams` with `length_penalty` (by default the paper's:
    hf_vanilla.inference). No `max_length` is stored: the model's `generate` applies the "input length + 50" rule to
    each call, and a stored length would make every `generate(max_new_tokens=N)` warn that both were set.

    Greedy decoding (`num_beams` 1) gets no beam settings: transformers refuses to save a generation config that
    has them without beams, and every checkpoint save would fail. The config is validated here, before training."""
    generation_config = model.generation_config
    generation_config.num_beams = num_beams
    generation_config.length_penalty = length_penalty if num_beams > 1 else None
    generation_config.early_stopping = True if num_beams > 1 else None
    generation_config.max_length = None
    try:
        generation_config.validate(strict=True)
    except TypeError:  # transformers 5.0 has no `strict`
        generation_config.validate()
    return generation_config


def evaluate_translation(model, tokenizer, dataset, batch_size=64, num_beams=None, max_source_length=None,
                         progress=None):
    """BLEU and chrF (with sacreBLEU signatures) of the model's translations of `dataset`'s sources."""
    predictions = translate(model, tokenizer, dataset["source"], batch_size, num_beams,
                            max_source_length=max_source_length, progress=progress)
    return {**translation_scores(predictions, list(dataset["target"])), "predictions": predictions}


@dataclass(kw_only=True)
class TranslationRun:
    """What the end of a translation run needs to know about it (given by keyword: the fields are many)."""

    tokenizer: "PreTrainedTokenizerBase"
    raw: "DatasetDict"  # validation picks the final model, test is reported
    data_args: "DataArguments"
    model_args: "ModelArguments"
    args: "TranslationArguments"
    output_dir: str
    log_history: list
    eval_batch_size: int
    training: str  # one sentence on how the model was trained, for the card
    steps: int | None = None  # optimiser steps trained


def languages(data_args):
    """[source, target] language codes of the run's data, or None when the user's files do not say."""
    pair = data_args.pair or (f"{data_args.source_lang}-{data_args.target_lang}" if data_args.source_lang else None)
    return pair.split("-") if pair else None


def finish_translation_run(model, run: TranslationRun):
    """Compare the last model with the average of the last N checkpoints, keep the better on validation BLEU (scored
    on test alone), and write the output folder: model, tokenizer, generation config, model card, training curves,
    results."""
    model = model.eval()
    candidates = _candidate_weights(model, run.output_dir, run.args.average_last_n)
    results = {}

    def score(name, split):
        return evaluate_translation(model, run.tokenizer, run.raw[split], run.eval_batch_size, run.args.num_beams,
                                    run.model_args.max_source_length, progress=f"{name}: {split} BLEU")

    # chosen on validation; only the chosen model is scored on test (test never takes part in a choice)
    for name, weights in candidates.items():
        _load_weights(model, weights)
        results[name] = {"validation": score(name, "validation")}
        logger.info("%s: validation BLEU %.2f", name, results[name]["validation"]["bleu"])
    chosen = max(results, key=lambda name: results[name]["validation"]["bleu"])
    _load_weights(model, candidates[chosen])
    results[chosen]["test"] = score(chosen, "test")

    model.config.use_cache = True
    summary = {name: {split: {k: v for k, v in scores.items() if k != "predictions"}
                      for split, scores in splits.items()} for name, splits in results.items()}
    train_seconds = next((entry["train_runtime"] for entry in reversed(run.log_history) if "train_runtime" in entry),
                         None)  # measured by Trainer (the Accelerate recipe logs none)
    # written aside, then each file moved in whole: a kill mid-save leaves no half-written model in the folder; space
    # for the weights (the tokenizer, card and figure are small beside them)
    with atomic_folder(run.output_dir, staging_name=".final.partial", merge=True) as staging, \
            space_for(run.output_dir, weights_bytes(model)):
        model.save_pretrained(staging)
        run.tokenizer.save_pretrained(staging)
        plot_training_curves(run.log_history, staging / "training_curves.png")
        write_json(staging / "results.json", {"chosen": chosen, "steps": run.steps, "train_seconds": train_seconds,
                                              "results": summary, "languages": languages(run.data_args),
                                              "examples": page_examples(run.raw["validation"]["source"])})
        write_translation_card(model, run, summary, chosen, staging)
    test = results[chosen]["test"]
    print(f"\ntest BLEU {test['bleu']:.2f}, chrF {test['chrf']:.2f} ({chosen} model, beam {run.args.num_beams})\n"
          f"  {test['bleu_signature']}\nmodel saved in {run.output_dir}")
    return results[chosen]


def _candidate_weights(model, output_dir, average_last_n):
    candidates = {"last": {name: t.detach().clone() for name, t in model.state_dict().items()}}
    checkpoints = list_checkpoints(output_dir)[-average_last_n:]
    if average_last_n > 1 and len(checkpoints) > 1:
        candidates[f"average of last {len(checkpoints)}"] = average_checkpoints(checkpoints)
    return candidates


def _load_weights(model, weights):
    model.load_state_dict(weights, strict=False)  # tied copies are absent from the files: one matrix
    model.tie_weights()


def write_translation_card(model, run, summary, chosen, folder):
    """README.md in `folder`, describing the model that will live in `run.output_dir`."""
    data_args, output_dir = run.data_args, run.output_dir
    meta = corpus_meta(data_args.corpus, data_args.pair, data_args.cache_dir) if data_args.corpus else None
    pair = "-".join(languages(data_args) or []) or None
    source, target = (pair or "source-target").split("-")
    rows = [[model_name + (" (saved)" if model_name == chosen else ""), split, f"{scores['bleu']:.2f}",
             f"{scores['chrf']:.2f}", len(run.raw[split])]
            for model_name, splits in summary.items() for split, scores in splits.items()]
    data = f"`{data_args.name}`{' ' + pair if pair else ''}: " + ", ".join(
        f"{split} {len(rows_) if hasattr(rows_, '__len__') else 'streamed'} pairs" for split, rows_ in run.raw.items())
    if meta:
        data += f"\n\n{meta['description']}. Licence: {meta['licence']}.\nSplit rule: {meta['split_rule']}."
    generation = model.generation_config
    metadata = card_metadata(
        Path(output_dir).name, "translation", str(data_args.name), f"{data_args.name} {pair or ''}".strip(),
        [(split, metric, summary[chosen][split][metric]) for split in ("validation", "test")
         for metric in ("bleu", "chrf")],
        languages=[source, target] if pair else None,
        licences=[CORPORA[data_args.corpus].licence if data_args.corpus else None],
    )
    write_model_card(folder, f"Vanilla Transformer, {source} -> {target} ({data_args.name})", [
        ("Model", model_description(model)),
        ("Data", data),
        ("Training", run.training),
        ("Results", markdown_table(["model", "split", "BLEU", "chrF", "sentences"], rows)
         + f"\n\nBeam {generation.num_beams}, length penalty {generation.length_penalty}"
         + f", output up to input length + {EXTRA_OUTPUT_TOKENS} tokens.\n\nsacreBLEU signatures: BLEU "
         + f"`{summary[chosen]['test']['bleu_signature']}`, chrF `{summary[chosen]['test']['chrf_signature']}`"),
        ("Reproduce", f"```\n{command_line()}\n```"),
        ("Use", "```python\nimport hf_vanilla  # or trust_remote_code=True without the package\n"
                "from transformers import AutoModelForSeq2SeqLM, AutoTokenizer\n"
                f"model = AutoModelForSeq2SeqLM.from_pretrained({str(output_dir)!r})\n"
                f"tokenizer = AutoTokenizer.from_pretrained({str(output_dir)!r})\n"
                "batch = tokenizer([\"Select the cells.\"], return_tensors=\"pt\")\n"
                "print(tokenizer.batch_decode(model.generate(**batch), skip_special_tokens=True))\n```\n\n"
                f"or `python -m recipes.translate --model {output_dir}`."),
    ], metadata=metadata, run_dir=run.output_dir)
