"""Train a vanilla Transformer for translation with Seq2SeqTrainer and the paper's recipe, scaled to small data.

    python -m recipes.train_translation                                   # libreoffice-help en->fr, small preset
    python -m recipes.train_translation --corpus bible --pair en-de --preset base
    python -m recipes.train_translation --train_file pairs.tsv --source_column en --target_column fr
    python -m recipes.train_translation --train_file train.jsonl --source_lang en --target_lang fr  # HF's format

The paper's recipe (section 5) and how it is scaled here:
- Adam with beta1 0.9, beta2 0.98, eps 1e-9; label smoothing 0.1; dropout 0.1; one shared BPE vocabulary for source
  and target (trained on the training split when no --tokenizer_name is given); batches grouped by length, or
  holding a budget of padded tokens (--max_tokens).
- lr = d_model^-0.5 * min(step^-0.5, step * warmup^-1.5): linear warm-up, then inverse-square-root decay. The peak
  is kept at the paper's value for the model width (d_model^-0.5 * 4000^-0.5, 9.9e-4 for d_model 256; twice it was
  worse on validation, docs/learning_speed.md) but reached after 400 warm-up steps instead of 4,000, because a
  30k-sentence corpus gives a few thousand steps in all.
- The final model averages the last 5 checkpoints; the card reports both the last and the averaged model, and the
  one with the better validation BLEU is saved.
- The paper's beam search (beam size and length penalty: hf_vanilla.inference's defaults); each output may reach
  its input length + EXTRA_OUTPUT_TOKENS (the paper's 50) tokens.
"""

import logging
import sys
from dataclasses import dataclass, field

import torch
from transformers import (
    AutoModelForSeq2SeqLM,
    DataCollatorForSeq2Seq,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
)

from hf_vanilla import VanillaTransformerForConditionalGeneration
from hf_vanilla.inference import load_tokenizer
from hf_vanilla.loading_vanilla_transformer import check_model_folder
from hf_vanilla.training.arguments import (
    DataArguments,
    ModelArguments,
    RecipeTrainingArguments,
    TranslationArguments,
    UsageError,
)
from hf_vanilla.training.corpora import CorpusError
from hf_vanilla.training.metrics import translation_scores
from hf_vanilla.training.policies import (
    ADAM_BETAS,
    ADAM_EPSILON,
    LABEL_SMOOTHING,
    LOGGING_STEPS,
    PEAK_LEARNING_RATE_HELP,
    SAVE_STEPS,
    WARMUP_HELP,
    WARMUP_STEPS,
    paper_peak_learning_rate,
)
from hf_vanilla.training.recipe import TrainerRecipe
from hf_vanilla.training.tokenizer import fit_to_model
from hf_vanilla.training.trainer import ReliableTrainerMixin, TokenBudgetMixin
from hf_vanilla.training.translation import (
    TranslationRun,
    finish_translation_run,
    paper_generation_settings,
    run_settings,
    run_tokenizer,
    translation_features,
)

logger = logging.getLogger(__name__)


@dataclass
class TranslationTrainingArguments(RecipeTrainingArguments, Seq2SeqTrainingArguments):
    """Seq2SeqTrainingArguments with the paper's recipe as defaults."""

    output_dir: str = field(default="outputs/translation", metadata={"help": "Where the model and checkpoints go."})
    learning_rate: float | None = field(
        default=None, metadata={"help": PEAK_LEARNING_RATE_HELP}
    )
    warmup_steps: int = field(default=WARMUP_STEPS, metadata={"help": WARMUP_HELP})
    lr_scheduler_type: str = field(default="inverse_sqrt", metadata={"help": "The paper's inverse square root."})
    adam_beta1: float = field(default=ADAM_BETAS[0])
    adam_beta2: float = field(default=ADAM_BETAS[1])
    adam_epsilon: float = field(default=ADAM_EPSILON)
    weight_decay: float = field(default=0.0)
    label_smoothing_factor: float = field(default=LABEL_SMOOTHING)
    per_device_train_batch_size: int = field(default=64)
    per_device_eval_batch_size: int = field(default=64)
    num_train_epochs: float = field(default=5.0)
    train_sampling_strategy: str = field(default="group_by_length")
    eval_strategy: str = field(default="steps")
    eval_steps: float | None = field(default=500)
    save_strategy: str = field(default="steps")
    save_steps: float = field(default=SAVE_STEPS)
    logging_steps: float = field(default=LOGGING_STEPS)
    predict_with_generate: bool = field(default=True)
    generation_num_beams: int | None = field(default=1, metadata={"help": "Greedy BLEU during training (fast)."})
    report_to: str | None = field(default="none")
    dataloader_pin_memory: bool = field(
        default=torch.cuda.is_available(), metadata={"help": "Pin batches in memory (on by default with a GPU)."}
    )
    max_tokens: int | None = field(
        default=None, metadata={"help": "Batch by a budget of padded source + target tokens per device (the paper's "
                                        "way) instead of --per_device_train_batch_size sentences."}
    )


class TranslationTrainer(TokenBudgetMixin, ReliableTrainerMixin, Seq2SeqTrainer):
    """Seq2SeqTrainer with atomic checkpoints, a stop on a NaN loss and, with `--max_tokens`, token-budget batches."""


def bleu_metric(tokenizer):
    """Trainer's `compute_metrics`: BLEU and chrF of the (greedy) predictions against the labels."""

    def compute_metrics(prediction):
        predicted, labels = (torch.as_tensor(array) for array in prediction)
        predicted = torch.where(predicted < 0, tokenizer.pad_token_id, predicted)
        labels = torch.where(labels == -100, tokenizer.pad_token_id, labels)
        scores = translation_scores(
            [t.strip() for t in tokenizer.batch_decode(predicted, skip_special_tokens=True)],
            [t.strip() for t in tokenizer.batch_decode(labels, skip_special_tokens=True)],
        )
        return {"bleu": scores["bleu"], "chrf": scores["chrf"]}

    return compute_metrics


def load_model(model_args, tokenizer):
    """A fresh model of the preset, or any seq2seq folder (benchmarks/quality.py trains Marian with this recipe)."""
    if not model_args.model_name_or_path:
        return VanillaTransformerForConditionalGeneration(model_args.config(tokenizer))
    return AutoModelForSeq2SeqLM.from_pretrained(model_args.model_name_or_path,
                                                 trust_remote_code=model_args.trust_remote_code,
                                                 attn_implementation=model_args.attn_implementation)


class TranslationRecipe(TrainerRecipe):
    """The translation recipe's part of the lifecycle (hf_vanilla.training.recipe): pairs, a joint BPE, the paper's
    model and schedule; at the end, the last model against the average of the last checkpoints, scored on BLEU."""

    arguments = (ModelArguments, DataArguments, TranslationArguments, TranslationTrainingArguments)
    trainer_class = TranslationTrainer
    default_data = ("libreoffice-help", "en-fr")

    def load_data(self):
        model_args, data_args, args, training_args = self.model_args, self.data_args, self.args, self.training_args
        if data_args.streaming and training_args.max_steps <= 0:
            raise UsageError("a stream has no known length, so epochs cannot be counted: give --max_steps",
                             "streaming")
        if data_args.streaming and training_args.max_tokens:
            raise UsageError("token-budget batches are planned over the whole split's lengths, which a stream does "
                             "not have: use --per_device_train_batch_size", "max_tokens")
        if model_args.model_name_or_path:
            try:
                check_model_folder(model_args.model_name_or_path, model_type=None)
            except (FileNotFoundError, ValueError) as error:
                raise UsageError(error, "model_name_or_path") from None
        if model_args.tokenizer_name:
            try:
                load_tokenizer(model_args.tokenizer_name, trust_remote_code=model_args.trust_remote_code)
            except (FileNotFoundError, ValueError) as error:
                raise UsageError(error, "tokenizer_name") from None
        try:
            return data_args.load("translation", args.max_train_samples, args.max_eval_samples,
                                  args.max_predict_samples)
        except (CorpusError, ValueError, FileNotFoundError) as error:
            raise UsageError(error) from None

    def run_settings(self, raw):
        return run_settings(self.model_args, self.data_args, raw, ["source", "target"])

    def build(self, raw):
        model_args, data_args, args, training_args = self.model_args, self.data_args, self.args, self.training_args
        texts = (row[column] for row in raw["train"] for column in ("source", "target")) if data_args.streaming \
            else list(raw["train"]["source"]) + list(raw["train"]["target"])  # a stream is read once, row by row
        tokenizer = run_tokenizer(model_args, texts, training_args.output_dir, self.resuming)
        features = translation_features(tokenizer, model_args.max_source_length, model_args.max_target_length)
        tokenized = {split: rows.map(features, batched=True, remove_columns=["source", "target"],
                                     **({} if data_args.streaming and split == "train" else {"desc": "tokenizing"}))
                     for split, rows in raw.items()}
        if data_args.streaming:  # shuffled through a buffer, a new order each epoch from the seed (resuming is exact)
            tokenized["train"] = tokenized["train"].shuffle(seed=training_args.seed, buffer_size=10_000)
        model = load_model(model_args, tokenizer)
        fit_to_model(tokenizer, model)
        training_args.learning_rate = training_args.learning_rate or paper_peak_learning_rate(model.config.d_model)
        paper_generation_settings(model, args.num_beams, args.length_penalty)
        training_args.save_total_limit = max(args.average_last_n, 1)
        logger.info("%s: %.1fM parameters, peak lr %.2e", model.config.d_model, model.num_parameters() / 1e6,
                    training_args.learning_rate)
        return dict(model=model, train_dataset=tokenized["train"], eval_dataset=tokenized["validation"],
                    processing_class=tokenizer, data_collator=DataCollatorForSeq2Seq(tokenizer, model=model),
                    compute_metrics=bleu_metric(tokenizer))

    def publish(self, trainer, raw, scores):
        finish_translation_run(trainer.model, TranslationRun(
            tokenizer=trainer.processing_class, raw=raw, data_args=self.data_args, model_args=self.model_args,
            args=self.args, output_dir=self.training_args.output_dir, log_history=trainer.state.log_history,
            eval_batch_size=self.training_args.per_device_eval_batch_size, training=training_summary(trainer),
            steps=trainer.state.global_step))


def main(argv=None):
    return TranslationRecipe(__doc__).main(argv)


def training_summary(trainer):
    args = trainer.args
    batches = (f"batches of at most {args.max_tokens} padded tokens per device" if args.max_tokens
               else f"batch {args.per_device_train_batch_size} sentences grouped by length")
    budget = getattr(trainer, "_budget_schedule", None)  # a time budget may have shortened the warm-up
    warmup = budget.warmup_steps if budget else args.warmup_steps
    limit = f" in a budget of {args.max_train_minutes:g} minutes" if args.max_train_minutes else ""
    return (f"{trainer.state.global_step} steps of Seq2SeqTrainer{limit}, {batches}, Adam ({args.adam_beta1}, "
            f"{args.adam_beta2}, {args.adam_epsilon:g}), peak lr "
            f"{args.learning_rate:.2e} after {warmup} warm-up steps, inverse-square-root decay, label smoothing "
            f"{args.label_smoothing_factor}.")


if __name__ == "__main__":
    sys.exit(main())
