"""The command-line arguments the recipes share, as `HfArgumentParser` dataclasses, and how they are parsed."""

from dataclasses import dataclass, field

import datasets

from hf_vanilla import PRESETS, VanillaTransformerConfig
from hf_vanilla.cli import UsageError, parse_arguments, report  # noqa: F401  (the recipes import them from here too)
from hf_vanilla.inference import DEFAULT_LENGTH_PENALTY, DEFAULT_NUM_BEAMS

from .corpora import CORPORA, load_corpus, load_user_data
from .policies import RESUME_WITH_CHANGES_HELP


@dataclass
class RecipeTrainingArguments:
    """The flags every Trainer recipe adds to Trainer's own (mixed into each recipe's TrainingArguments, so that
    `ReliableTrainerMixin` reads them as fields, not by `getattr`)."""

    max_train_minutes: float | None = field(
        default=None, metadata={"help": "Stop training after this many minutes (then evaluate and save as usual); "
                                        "with the inverse-square-root schedule the warm-up is fitted to the steps "
                                        "that fit."}
    )


@dataclass
class ModelArguments:
    preset: str = field(default="small", metadata={"help": f"Model size: {', '.join(PRESETS)}."})
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "Start from a saved model folder instead of a fresh preset."}
    )
    tokenizer_name: str | None = field(
        default=None, metadata={"help": "A saved tokenizer folder; without it a joint BPE is trained on train."}
    )
    vocab_size: int = field(default=8000, metadata={"help": "BPE vocabulary size when a tokenizer is trained."})
    norm_first: bool = field(default=True, metadata={"help": "Pre-LN (True) or the paper's post-LN (False)."})
    dropout: float | None = field(default=None, metadata={"help": "Override the preset's dropout."})
    scale_embedding: bool | None = field(
        default=None, metadata={"help": "Override the config's scale_embedding (multiply embeddings by sqrt(d_model))."}
    )
    init_std: float | None = field(
        default=None, metadata={"help": "Override the std of the linear layers' normal initialiser (the config's "
                                        "init_std)."}
    )
    max_source_length: int = field(default=128, metadata={"help": "Longer sources are truncated."})
    max_target_length: int = field(default=128, metadata={"help": "Longer targets are truncated."})
    attn_implementation: str = field(default="sdpa", metadata={"help": "sdpa or eager."})
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Allow code of its own in --model_name_or_path / --tokenizer_name (never "
                                         "asked on stdin: without it such a folder is refused)."}
    )

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise ValueError(f"Unknown preset {self.preset!r}: choose one of {', '.join(PRESETS)}.")
        if self.attn_implementation not in ("sdpa", "eager"):
            raise ValueError(f"attn_implementation must be sdpa or eager, got {self.attn_implementation!r}.")

    def config(self, tokenizer, **extra):
        """The preset, sized to the tokenizer, with this run's overrides."""
        overrides = {"norm_first": self.norm_first}
        overrides.update({name: getattr(self, name) for name in ("dropout", "init_std", "scale_embedding")
                          if getattr(self, name) is not None})
        return VanillaTransformerConfig.from_preset(
            self.preset,
            vocab_size=len(tokenizer),
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            max_position_embeddings=max(self.max_source_length, self.max_target_length) + 64,
            attn_implementation=self.attn_implementation,
            **overrides,
            **extra,
        )


@dataclass
class DataArguments:
    corpus: str | None = field(
        default=None, metadata={"help": f"A built-in corpus: {', '.join(CORPORA)}. Fetched and cached on first use."}
    )
    pair: str | None = field(default=None, metadata={"help": "Language pair of a translation corpus, e.g. en-fr."})
    dataset_name: str | None = field(default=None, metadata={"help": "A datasets hub id (needs a reachable hub)."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "The hub dataset's configuration."})
    train_file: str | None = field(default=None, metadata={"help": "Local csv, tsv, json, jsonl or parquet file."})
    validation_file: str | None = field(default=None, metadata={"help": "Local validation file (same format)."})
    test_file: str | None = field(default=None, metadata={"help": "Local test file (same format)."})
    text_column: str = field(default="text", metadata={"help": "Column holding the text (classification)."})
    label_column: str = field(default="label", metadata={"help": "Column holding the label (classification)."})
    source_column: str = field(default="source", metadata={"help": "Column holding the source (translation)."})
    target_column: str = field(default="target", metadata={"help": "Column holding the target (translation)."})
    source_lang: str | None = field(
        default=None, metadata={"help": "Source language (translation): picks it from HF's {\"translation\": "
                                        "{lang: text}} format, or names the column; for --corpus, the pair's first."}
    )
    target_lang: str | None = field(default=None, metadata={"help": "Target language (translation), as source_lang."})
    cache_dir: str | None = field(
        default=None, metadata={"help": "Where built-in corpora are cached (default $HF_VANILLA_CACHE or "
                                        "~/.cache/hf_vanilla)."}
    )
    streaming: bool = field(default=False, metadata={
        "help": "Read the train split as a stream, as training goes (data larger than memory): --train_file (with "
                "--validation_file and --test_file) or --dataset_name; recipes.train_translation, with --max_steps."})

    def __post_init__(self):
        sources = [name for name, value in [("--corpus", self.corpus), ("--dataset_name", self.dataset_name),
                                            ("--train_file", self.train_file)] if value]
        if len(sources) > 1:
            raise ValueError(f"Give one data source, not {' and '.join(sources)}.")
        if self.corpus is not None and self.corpus not in CORPORA:
            raise ValueError(f"Unknown corpus {self.corpus!r}: choose one of {', '.join(CORPORA)}, or use your own "
                             f"files with --train_file.")
        if (self.source_lang is None) != (self.target_lang is None):
            raise ValueError("Give both --source_lang and --target_lang, or neither.")
        if self.source_lang and self.pair and self.pair != f"{self.source_lang}-{self.target_lang}":
            raise ValueError(f"--pair {self.pair} contradicts --source_lang {self.source_lang} --target_lang "
                             f"{self.target_lang}: give one of them.")
        if self.streaming and self.corpus:
            raise ValueError("--streaming is for your own data (--train_file, --dataset_name): a built-in corpus is "
                             "cached as memory-mapped Arrow files and never read into memory.")
        if self.source_lang and self.corpus and not self.pair:
            self.pair = f"{self.source_lang}-{self.target_lang}"

    @property
    def name(self):
        """How cards and logs name the data."""
        return self.corpus or self.dataset_name or self.train_file

    def default_to(self, corpus, pair=None):
        """Use a built-in corpus when no data source was given."""
        if not (self.corpus or self.train_file or self.dataset_name):
            self.corpus, self.pair = corpus, self.pair or pair

    def load(self, task, max_train_samples=None, max_eval_samples=None, max_predict_samples=None):
        """The train / validation / test DatasetDict these arguments name, each split cut to its `max_*_samples`.
        Under several processes the main one fetches (into the shared cache) before the others read."""
        from .policies import main_process_first

        with main_process_first():
            dataset_dict = self._load(task)
        for split, limit in [("train", max_train_samples), ("validation", max_eval_samples),
                             ("test", max_predict_samples)]:
            if limit is not None and isinstance(dataset_dict[split], datasets.IterableDataset):
                dataset_dict[split] = dataset_dict[split].take(limit)
            elif limit is not None and limit < len(dataset_dict[split]):
                dataset_dict[split] = dataset_dict[split].select(range(limit))
        return dataset_dict

    def _load(self, task):
        if self.corpus:
            if CORPORA[self.corpus].task != task:
                raise ValueError(f"The corpus {self.corpus!r} is for {CORPORA[self.corpus].task}, not {task}.")
            dataset_dict = load_corpus(self.corpus, self.pair, self.cache_dir)
        else:
            dataset_dict = load_user_data(
                task, dataset_name=self.dataset_name, dataset_config_name=self.dataset_config_name,
                train_file=self.train_file, validation_file=self.validation_file, test_file=self.test_file,
                text_column=self.text_column, label_column=self.label_column, source_column=self.source_column,
                target_column=self.target_column, source_lang=self.source_lang, target_lang=self.target_lang,
                streaming=self.streaming,
            )
        return dataset_dict


@dataclass
class TranslationArguments:
    """What both translation recipes (Trainer and Accelerate) take beside the model, data and loop arguments."""

    max_train_samples: int | None = field(default=None, metadata={"help": "Use at most this many training pairs."})
    max_eval_samples: int | None = field(
        default=300, metadata={"help": "Validation pairs scored (BLEU) during training and to pick last/averaged."}
    )
    max_predict_samples: int | None = field(default=None, metadata={"help": "Test pairs scored at the end."})
    num_beams: int = field(default=DEFAULT_NUM_BEAMS, metadata={
        "help": f"Beam size of the final evaluation and the saved model (the paper's {DEFAULT_NUM_BEAMS})."})
    length_penalty: float = field(default=DEFAULT_LENGTH_PENALTY, metadata={
        "help": f"Beam search length penalty (the paper's alpha, {DEFAULT_LENGTH_PENALTY})."})
    average_last_n: int = field(default=5, metadata={"help": "Average the last N checkpoints (1: no averaging)."})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "Replace a non-empty --output_dir."})
    resume_with_changes: bool = field(default=False, metadata={"help": RESUME_WITH_CHANGES_HELP})

    def __post_init__(self):
        for name in ("max_train_samples", "max_eval_samples", "max_predict_samples"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"--{name} must be at least 1, got {getattr(self, name)}.")
        if self.num_beams < 1:
            raise ValueError(f"--num_beams must be at least 1, got {self.num_beams}.")
        if self.average_last_n < 1:
            raise ValueError(f"--average_last_n must be at least 1, got {self.average_last_n}.")

