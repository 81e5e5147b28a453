"""Train a vanilla Transformer for translation with Seq2SeqTrainer and the paper's recipe, scaled to small data.

    python -m recipes.train_translation                                   # libreoffice-help en->fr, small preset
    python -m recipes.train_translation --corpus bible --pair en-de --preset base
    python -m recipes.train_translation --train_file pairs.tsv --source_column en --target_column fr

The paper's recipe (section 5) and how it is scaled here:
- Adam with beta1 0.9, beta2 0.98, eps 1e-9; label smoothing 0.1; dropout 0.1; one shared BPE vocabulary for source
  and target (trained on the training split when no --tokenizer_name is given); batches grouped by length.
- lr = d_model^-0.5 * min(step^-0.5, step * warmup^-1.5): linear warm-up, then inverse-square-root decay. The peak
  is kept at the paper's value for the model width (d_model^-0.5 * 4000^-0.5, 9.9e-4 for d_model 256) but reached
  after 400 warm-up steps instead of 4,000, because a 30k-sentence corpus gives a few thousand steps in all.
- The final model averages the last 5 checkpoints; the card reports both the last and the averaged model, and the
  one with the better validation BLEU is saved.
- Beam search with beam 4 and length penalty 0.6; each batch may output up to its input length + 50 tokens.
"""

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
import transformers
from torch.utils.data import DataLoader
from transformers import (
    AutoModelForSeq2SeqLM,
    DataCollatorForSeq2Seq,
    HfArgumentParser,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
    set_seed,
)

from hf_vanilla import VanillaTransformerForConditionalGeneration
from hf_vanilla.checkpoints import average_checkpoints, list_checkpoints
from hf_vanilla.corpora import corpus_meta
from hf_vanilla.metrics import translation_scores
from hf_vanilla.modeling_vanilla_transformer import check_model_folder
from hf_vanilla.plots import plot_training_curves
from recipes.common import (
    ModelArguments,
    NonFiniteLossError,
    ReliableTrainerMixin,
    SaveOnInterrupt,
    TokenBudgetBatchSampler,
    check_output_dir,
    command_line,
    evaluate_translation,
    get_tokenizer,
    markdown_table,
    padded_sizes,
    paper_generation_settings,
    parse_arguments,
    translation_features,
    write_json,
    write_model_card,
)
from recipes.data_args import DataArguments

logger = logging.getLogger(__name__)


@dataclass
class TranslationArguments:
    max_train_samples: int | None = field(default=None, metadata={"help": "Use at most this many training pairs."})
    max_eval_samples: int | None = field(
        default=300, metadata={"help": "Validation pairs scored (BLEU) during training and to pick last/averaged."}
    )
    max_predict_samples: int | None = field(default=None, metadata={"help": "Test pairs scored at the end."})
    num_beams: int = field(default=4, metadata={"help": "Beam size of the final evaluation and the saved model."})
    length_penalty: float = field(default=0.6, metadata={"help": "Beam search length penalty (the paper's alpha)."})
    average_last_n: int = field(default=5, metadata={"help": "Average the last N checkpoints (1: no averaging)."})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "Replace a non-empty --output_dir."})


@dataclass
class TranslationTrainingArguments(Seq2SeqTrainingArguments):
    """Seq2SeqTrainingArguments with the paper's recipe as defaults."""

    output_dir: str = field(default="outputs/translation", metadata={"help": "Where the model and checkpoints go."})
    learning_rate: float | None = field(
        default=None, metadata={"help": "Peak learning rate; default d_model^-0.5 * 4000^-0.5 (the paper's peak)."}
    )
    warmup_steps: int = field(default=400, metadata={"help": "Linear warm-up steps (the paper: 4000)."})
    lr_scheduler_type: str = field(default="inverse_sqrt", metadata={"help": "The paper's inverse square root."})
    adam_beta1: float = field(default=0.9)
    adam_beta2: float = field(default=0.98)
    adam_epsilon: float = field(default=1e-9)
    weight_decay: float = field(default=0.0)
    label_smoothing_factor: float = field(default=0.1)
    per_device_train_batch_size: int = field(default=64)
    per_device_eval_batch_size: int = field(default=64)
    num_train_epochs: float = field(default=5.0)
    train_sampling_strategy: str = field(default="group_by_length")
    eval_strategy: str = field(default="steps")
    eval_steps: float | None = field(default=500)
    save_strategy: str = field(default="steps")
    save_steps: float = field(default=500)
    logging_steps: float = field(default=50)
    predict_with_generate: bool = field(default=True)
    generation_num_beams: int | None = field(default=1, metadata={"help": "Greedy BLEU during training (fast)."})
    report_to: str | None = field(default="none")
    max_tokens: int | None = field(
        default=None, metadata={"help": "Batch by a budget of padded source + target tokens per device (the paper's "
                                        "way) instead of --per_device_train_batch_size sentences."}
    )


class TranslationTrainer(ReliableTrainerMixin, Seq2SeqTrainer):
    """Seq2SeqTrainer with atomic checkpoints, a stop on a NaN loss and, with `--max_tokens`, token-budget batches."""

    def get_train_dataloader(self):
        max_tokens = self.args.max_tokens
        if not max_tokens:
            return super().get_train_dataloader()
        lengths = padded_sizes(self.train_dataset)
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        dataset = self.train_dataset.remove_columns([c for c in self.train_dataset.column_names
                                                     if c not in ("input_ids", "attention_mask", "labels")])
        loader = DataLoader(dataset, batch_sampler=TokenBudgetBatchSampler(lengths, max_tokens, seed),
                            collate_fn=self.data_collator, num_workers=self.args.dataloader_num_workers,
                            pin_memory=self.args.dataloader_pin_memory and torch.cuda.is_available())
        return self.accelerator.prepare(loader)


def main(argv=None):
    parser = HfArgumentParser((ModelArguments, DataArguments, TranslationArguments, TranslationTrainingArguments),
                              description=__doc__)
    model_args, data_args, args, training_args = parse_arguments(parser, argv)
    data_args.default_to("libreoffice-help", "en-fr")
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    transformers.utils.logging.set_verbosity_warning()
    check_output_dir(training_args.output_dir, args.overwrite_output_dir, training_args.resume_from_checkpoint)
    interrupt = SaveOnInterrupt()  # from here on, Ctrl-C stops at the next step end with a checkpoint
    set_seed(training_args.seed)

    # data and the shared vocabulary
    raw = data_args.load("translation", args.max_train_samples, args.max_eval_samples, args.max_predict_samples)
    Path(training_args.output_dir).mkdir(parents=True, exist_ok=True)
    tokenizer = get_tokenizer(model_args, list(raw["train"]["source"]) + list(raw["train"]["target"]),
                              training_args.output_dir)
    tokenized = raw.map(
        translation_features(tokenizer, model_args.max_source_length, model_args.max_target_length),
        batched=True, remove_columns=raw["train"].column_names, desc="tokenizing",
    )

    # the model
    if model_args.model_name_or_path:  # any seq2seq folder: benchmarks/quality.py trains Marian with this recipe
        check_model_folder(model_args.model_name_or_path, model_type=None)
        model = AutoModelForSeq2SeqLM.from_pretrained(
            model_args.model_name_or_path, attn_implementation=model_args.attn_implementation)
    else:
        model = VanillaTransformerForConditionalGeneration(model_args.config(tokenizer))
    if training_args.learning_rate is None:
        training_args.learning_rate = model.config.d_model**-0.5 * 4000**-0.5
    paper_generation_settings(model, args.num_beams, args.length_penalty,
                              max(len(ids) for ids in tokenized["train"]["input_ids"]))
    training_args.save_total_limit = max(args.average_last_n, 1)
    logger.info("%s: %.1fM parameters, peak lr %.2e", model.config.d_model, model.num_parameters() / 1e6,
                training_args.learning_rate)

    def compute_metrics(prediction):
        predicted, labels = prediction
        predicted = torch.where(torch.as_tensor(predicted) < 0, tokenizer.pad_token_id, torch.as_tensor(predicted))
        labels = torch.where(torch.as_tensor(labels) == -100, tokenizer.pad_token_id, torch.as_tensor(labels))
        scores = translation_scores(
            [t.strip() for t in tokenizer.batch_decode(predicted, skip_special_tokens=True)],
            [t.strip() for t in tokenizer.batch_decode(labels, skip_special_tokens=True)],
        )
        return {"bleu": scores["bleu"], "chrf": scores["chrf"]}

    trainer = TranslationTrainer(
        model=model,
        args=training_args,
        train_dataset=tokenized["train"],
        eval_dataset=tokenized["validation"],
        processing_class=tokenizer,
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100),
        compute_metrics=compute_metrics,
        callbacks=[interrupt],
    )
    try:
        trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    except NonFiniteLossError as error:
        print(f"\nerror: {error}", file=sys.stderr)
        return 1
    if interrupt.interrupted:
        checkpoint = list_checkpoints(training_args.output_dir)[-1]
        print(f"\nstopped at step {trainer.state.global_step}; checkpoint saved in {checkpoint}\n"
              f"resume with: {command_line()} --resume_from_checkpoint {checkpoint}", file=sys.stderr)
        return 130
    if not trainer.is_world_process_zero():
        return 0

    batches = (f"batches of at most {training_args.max_tokens} padded tokens per device" if training_args.max_tokens
               else f"batch {training_args.per_device_train_batch_size} sentences grouped by length")
    training = (f"{trainer.state.global_step} steps of Seq2SeqTrainer, {batches}, Adam (0.9, 0.98, 1e-9), peak lr "
                f"{training_args.learning_rate:.2e} after {training_args.warmup_steps} warm-up steps, "
                f"inverse-square-root decay, label smoothing {training_args.label_smoothing_factor}.")
    finish(trainer.model, tokenizer, raw, data_args, model_args, args, training_args.output_dir,
           trainer.state.log_history, trainer.state.global_step, training_args.per_device_eval_batch_size, training)
    return 0


def finish(model, tokenizer, raw, data_args, model_args, args, output_dir, log_history, steps, batch_size, training):
    """Compare the last model with the average of the last N checkpoints, keep the better on validation, and
    write the output folder: model, tokenizer, generation config, model card, training curves, results."""
    model = model.eval()
    candidates = {"last": {name: t.detach().clone() for name, t in model.state_dict().items()}}
    checkpoints = list_checkpoints(output_dir)[-args.average_last_n :]
    if args.average_last_n > 1 and len(checkpoints) > 1:
        candidates[f"average of last {len(checkpoints)}"] = average_checkpoints(checkpoints)
    results = {}
    for name, weights in candidates.items():
        model.load_state_dict(weights, strict=False)  # tied copies are absent from the files: one matrix
        model.tie_weights()
        results[name] = {
            split: evaluate_translation(model, tokenizer, raw[split], batch_size, args.num_beams,
                                        model_args.max_source_length)
            for split in ("validation", "test")
        }
        logger.info("%s: validation BLEU %.2f, test BLEU %.2f", name, results[name]["validation"]["bleu"],
                    results[name]["test"]["bleu"])
    chosen = max(results, key=lambda name: results[name]["validation"]["bleu"])
    model.load_state_dict(candidates[chosen], strict=False)
    model.tie_weights()

    model.config.use_cache = True
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    plot_training_curves(log_history, Path(output_dir) / "training_curves.png")
    summary = {name: {split: {k: v for k, v in scores.items() if k != "predictions"}
                      for split, scores in splits.items()} for name, splits in results.items()}
    write_json(Path(output_dir) / "results.json", {"chosen": chosen, "results": summary})
    write_translation_card(output_dir, model, data_args, raw, summary, chosen, training)
    test = results[chosen]["test"]
    print(f"\ntest BLEU {test['bleu']:.2f}, chrF {test['chrf']:.2f} ({chosen} model, beam {args.num_beams})\n"
          f"  {test['bleu_signature']}\nmodel saved in {output_dir}")
    return results[chosen]


def write_translation_card(output_dir, model, data_args, raw, summary, chosen, training):
    name = data_args.corpus or data_args.dataset_name or data_args.train_file
    meta = corpus_meta(data_args.corpus, data_args.pair, data_args.cache_dir) if data_args.corpus else None
    source, target = (data_args.pair or "source-target").split("-")
    rows = []
    for model_name, splits in summary.items():
        for split, scores in splits.items():
            rows.append([model_name + (" (saved)" if model_name == chosen else ""), split, f"{scores['bleu']:.2f}",
                         f"{scores['chrf']:.2f}", len(raw[split])])
    config = model.config
    data = f"`{name}`{' ' + data_args.pair if data_args.pair else ''}: " + ", ".join(
        f"{split} {len(rows_)} pairs" for split, rows_ in raw.items())
    if meta:
        data += f"\n\n{meta['description']}. Licence: {meta['licence']}.\nSplit rule: {meta['split_rule']}."
    write_model_card(output_dir, f"Vanilla Transformer, {source} -> {target} ({name})", [
        ("Model", f"`{type(model).__name__}`: d_model {config.d_model}, "
                  f"{config.encoder_layers}+{config.decoder_layers} layers, {config.num_attention_heads} heads, "
                  f"ffn {getattr(config, 'ffn_dim', None) or config.encoder_ffn_dim}, "
                  f"{'pre' if getattr(config, 'norm_first', False) else 'post'}-LN, shared vocabulary of "
                  f"{config.vocab_size} byte-level BPE tokens, {model.num_parameters() / 1e6:.1f}M parameters."),
        ("Data", data),
        ("Training", training),
        ("Results", markdown_table(["model", "split", "BLEU", "chrF", "sentences"], rows)
         + f"\n\nBeam {model.generation_config.num_beams}, length penalty {model.generation_config.length_penalty}"
         + ", output up to input length + 50 tokens.\n\nsacreBLEU signatures: BLEU "
         + f"`{summary[chosen]['test']['bleu_signature']}`, chrF `{summary[chosen]['test']['chrf_signature']}`"),
        ("Reproduce", f"```\n{command_line()}\n```"),
        ("Use", "```python\nimport hf_vanilla  # or trust_remote_code=True without the package\n"
                "from transformers import AutoModelForSeq2SeqLM, AutoTokenizer\n"
                f"model = AutoModelForSeq2SeqLM.from_pretrained({str(output_dir)!r})\n"
                f"tokenizer = AutoTokenizer.from_pretrained({str(output_dir)!r})\n"
                "batch = tokenizer([\"Select the cells.\"], return_tensors=\"pt\")\n"
                "print(tokenizer.batch_decode(model.generate(**batch), skip_special_tokens=True))\n```\n\n"
                f"or `python -m recipes.translate --model {output_dir}`."),
    ])


if __name__ == "__main__":
    sys.exit(main())
