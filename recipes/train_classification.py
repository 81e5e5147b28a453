"""Train a vanilla Transformer encoder for text classification with Trainer.

    python -m recipes.train_classification                                  # rotten-tomatoes, small preset
    python -m recipes.train_classification --corpus bbc-news --max_source_length 256
    python -m recipes.train_classification --train_file reviews.csv --text_column review --label_column stars
    python -m recipes.train_classification --init_from outputs/translation  # start from a translation encoder

The model is the encoder, mean pooling over the non-padding tokens and a linear layer. The saved folder works in
`pipeline("text-classification", model=FOLDER)`. The checkpoint with the best validation accuracy is kept.
"""

import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import (
    AutoModelForSequenceClassification,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
)

from hf_vanilla import VanillaTransformerForSequenceClassification
from hf_vanilla.inference import load_tokenizer
from hf_vanilla.loading_vanilla_transformer import check_model_folder
from hf_vanilla.training.arguments import DataArguments, ModelArguments, RecipeTrainingArguments, UsageError
from hf_vanilla.training.cards import (
    card_metadata,
    command_line,
    markdown_table,
    model_description,
    page_examples,
    write_json,
    write_model_card,
)
from hf_vanilla.training.corpora import CORPORA, CorpusError, corpus_meta
from hf_vanilla.training.metrics import classification_scores
from hf_vanilla.training.policies import LABEL_SMOOTHING, RESUME_WITH_CHANGES_HELP
from hf_vanilla.training.recipe import TrainerRecipe
from hf_vanilla.training.tokenizer import fit_to_model
from hf_vanilla.training.trainer import ReliableTrainerMixin
from hf_vanilla.training.translation import run_settings, run_tokenizer

logger = logging.getLogger(__name__)


@dataclass
class ClassificationArguments:
    init_from: str | None = field(
        default=None, metadata={"help": "A saved translation (or classification) model folder: its encoder, "
                                        "embedding and tokenizer start the classifier."}
    )
    classifier_pooling: str = field(default="mean", metadata={"help": "mean or max (over non-padding tokens), or first."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use at most this many training rows."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use at most this many validation rows."})
    max_predict_samples: int | None = field(default=None, metadata={"help": "Use at most this many test rows."})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "Replace a non-empty --output_dir."})
    resume_with_changes: bool = field(default=False, metadata={"help": RESUME_WITH_CHANGES_HELP})


@dataclass
class ClassificationTrainingArguments(RecipeTrainingArguments, TrainingArguments):
    output_dir: str = field(default="outputs/classification", metadata={"help": "Where the model goes."})
    learning_rate: float = field(default=5e-4)
    warmup_steps: float = field(default=200)
    lr_scheduler_type: str = field(default="linear")
    adam_beta2: float = field(default=0.98)
    weight_decay: float = field(default=0.01)
    # the paper's, also chosen on validation on both corpora (docs/classification.md, the ablation)
    label_smoothing_factor: float = field(default=LABEL_SMOOTHING, metadata={"help": "Label smoothing (0 for none)."})
    per_device_train_batch_size: int = field(default=32)
    per_device_eval_batch_size: int = field(default=128)
    num_train_epochs: float = field(default=5.0)
    eval_strategy: str = field(default="epoch")
    save_strategy: str = field(default="epoch")
    save_total_limit: int | None = field(default=2)
    load_best_model_at_end: bool = field(default=True)
    metric_for_best_model: str | None = field(default="accuracy")
    logging_steps: float = field(default=50)
    report_to: str | None = field(default="none")
    dataloader_pin_memory: bool = field(
        default=torch.cuda.is_available(), metadata={"help": "Pin batches in memory (on by default with a GPU)."}
    )


class ClassificationTrainer(ReliableTrainerMixin, Trainer):
    """Trainer with atomic checkpoints and a stop on a NaN loss."""


class ClassificationRecipe(TrainerRecipe):
    """The classification recipe's part of the lifecycle (hf_vanilla.training.recipe): labelled texts, the encoder
    with a pooled head (fresh, or from --init_from), accuracy and macro-F1; the best validation checkpoint is kept."""

    arguments = (ModelArguments, DataArguments, ClassificationArguments, ClassificationTrainingArguments)
    trainer_class = ClassificationTrainer
    default_data = ("rotten-tomatoes",)

    def load_data(self):
        model_args, args = self.model_args, self.args
        if args.init_from:
            try:
                check_model_folder(args.init_from)
                load_tokenizer(args.init_from, trust_remote_code=model_args.trust_remote_code)
            except (FileNotFoundError, ValueError) as error:
                raise UsageError(error, "init_from") from None
            positions = json.loads((Path(args.init_from) / "config.json").read_text())["max_position_embeddings"]
            if model_args.max_source_length > positions:
                raise UsageError(f"{model_args.max_source_length} tokens is more than the --init_from model's "
                                 f"max_position_embeddings={positions}: give --max_source_length {positions} or less",
                                 "max_source_length")
        try:
            return self.data_args.load("classification", args.max_train_samples, args.max_eval_samples,
                                       args.max_predict_samples)
        except (CorpusError, ValueError, FileNotFoundError) as error:
            raise UsageError(error) from None

    def run_settings(self, raw):
        settings = run_settings(self.model_args, self.data_args, raw, ["text", "label"])
        return {**settings, "init_from": self.args.init_from}

    def build(self, raw):
        model, tokenizer = load_model(self.model_args, self.args, raw, self.training_args.output_dir, self.resuming)
        fit_to_model(tokenizer, model)
        length = self.model_args.max_source_length
        tokenized = raw.map(lambda rows: tokenizer(rows["text"], max_length=length, truncation=True),
                            batched=True, remove_columns=["text"], desc="tokenizing")
        self.tokenized = tokenized

        def compute_metrics(prediction):
            logits, labels = prediction
            return classification_scores(np.argmax(logits, axis=-1).tolist(), labels.tolist())

        return dict(model=model, train_dataset=tokenized["train"], eval_dataset=tokenized["validation"],
                    processing_class=tokenizer, data_collator=DataCollatorWithPadding(tokenizer),
                    compute_metrics=compute_metrics)

    def evaluate(self, trainer, raw):
        scores = {split: trainer.evaluate(self.tokenized[split], metric_key_prefix=split)
                  for split in ("validation", "test")}
        trainer.save_model(self.training_args.output_dir)  # the best checkpoint's weights, with the tokenizer
        return scores

    def publish(self, trainer, raw, scores):
        output_dir = self.training_args.output_dir
        write_json(Path(output_dir) / "results.json", {**scores, "examples": page_examples(raw["validation"]["text"])})
        write_classification_card(trainer.model, self.data_args, self.args, raw, scores, output_dir)
        test = scores["test"]
        print(f"\ntest accuracy {test['test_accuracy']:.4f}, macro-F1 {test['test_macro_f1']:.4f}\n"
              f"model saved in {output_dir}")


def main(argv=None):
    return ClassificationRecipe(__doc__).main(argv)


def load_model(model_args, args, raw, output_dir, resuming):
    """The classifier and its tokenizer: from --init_from's encoder, or a fresh preset with a BPE trained on train."""
    label_names = raw["train"].features["label"].names
    labels = {"num_labels": len(label_names), "id2label": dict(enumerate(label_names)),
              "label2id": {name: i for i, name in enumerate(label_names)}}
    if args.init_from:
        tokenizer = load_tokenizer(args.init_from, trust_remote_code=model_args.trust_remote_code)
        model = AutoModelForSequenceClassification.from_pretrained(
            args.init_from, trust_remote_code=model_args.trust_remote_code, classifier_pooling=args.classifier_pooling,
            attn_implementation=model_args.attn_implementation, **labels,
            **({"dropout": model_args.dropout} if model_args.dropout is not None else {}),
        )
    else:
        tokenizer = run_tokenizer(model_args, list(raw["train"]["text"]), output_dir, resuming)
        config = model_args.config(tokenizer, classifier_pooling=args.classifier_pooling, **labels)
        model = VanillaTransformerForSequenceClassification(config)
    model.config.problem_type = "single_label_classification"
    return model, tokenizer


def write_classification_card(model, data_args, args, raw, scores, output_dir):
    meta = corpus_meta(data_args.corpus, None, data_args.cache_dir) if data_args.corpus else None
    config, label_names = model.config, raw["train"].features["label"].names
    metadata = card_metadata(
        Path(output_dir).name, "text-classification", str(data_args.name), str(data_args.name),
        [(split, metric, s[f"{split}_{key}"]) for split, s in scores.items()
         for metric, key in (("accuracy", "accuracy"), ("f1", "macro_f1"))],
        languages=["en"] if data_args.corpus else None,
        licences=[CORPORA[data_args.corpus].licence if data_args.corpus else None],
    )
    write_model_card(output_dir, f"Vanilla Transformer classifier ({data_args.name})", [
        ("Model", model_description(model, f"{config.classifier_pooling} pooling",
                                    f"encoder started from `{args.init_from}`" if args.init_from
                                    else "trained from scratch", encoder_only=True)),
        ("Data", f"`{data_args.name}`: " + ", ".join(f"{s} {len(r)}" for s, r in raw.items())
         + f"; labels {', '.join(label_names)}."
         + (f"\n\n{meta['description']}. Licence: {meta['licence']}.\nSplit rule: {meta['split_rule']}."
            if meta else "")),
        ("Results", markdown_table(["split", "accuracy", "macro-F1"], [
            [split, f"{s[f'{split}_accuracy']:.4f}", f"{s[f'{split}_macro_f1']:.4f}"] for split, s in scores.items()])),
        ("Reproduce", f"```\n{command_line()}\n```"),
        ("Use", "```python\nimport hf_vanilla  # or trust_remote_code=True without the package\n"
                "from transformers import pipeline\n"
                f"classify = pipeline(\"text-classification\", model={str(output_dir)!r})\n"
                "print(classify(\"A gripping, beautifully acted film.\"))\n```"),
    ], metadata=metadata)


if __name__ == "__main__":
    sys.exit(main())
