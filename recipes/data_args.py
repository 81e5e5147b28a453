"""The data arguments every recipe shares, and the one function that turns them into a DatasetDict."""

from dataclasses import dataclass, field

from hf_vanilla.corpora import CORPORA, load_corpus, load_user_data


@dataclass
class DataArguments:
    corpus: str | None = field(
        default=None, metadata={"help": f"A built-in corpus: {', '.join(CORPORA)}. Fetched and cached on first use."}
    )
    pair: str | None = field(default=None, metadata={"help": "Language pair of a translation corpus, e.g. en-fr."})
    dataset_name: str | None = field(default=None, metadata={"help": "A datasets hub id (needs a reachable hub)."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "The hub dataset's configuration."})
    train_file: str | None = field(default=None, metadata={"help": "Local csv, tsv, jsonl or parquet file."})
    validation_file: str | None = field(default=None, metadata={"help": "Local validation file (same format)."})
    test_file: str | None = field(default=None, metadata={"help": "Local test file (same format)."})
    text_column: str = field(default="text", metadata={"help": "Column holding the text (classification)."})
    label_column: str = field(default="label", metadata={"help": "Column holding the label (classification)."})
    source_column: str = field(default="source", metadata={"help": "Column holding the source (translation)."})
    target_column: str = field(default="target", metadata={"help": "Column holding the target (translation)."})
    cache_dir: str | None = field(
        default=None, metadata={"help": "Where built-in corpora are cached (default $HF_VANILLA_CACHE or "
                                        "~/.cache/hf_vanilla)."}
    )

    def __post_init__(self):
        sources = [name for name, value in [("--corpus", self.corpus), ("--dataset_name", self.dataset_name),
                                            ("--train_file", self.train_file)] if value]
        if len(sources) > 1:
            raise ValueError(f"Give one data source, not {' and '.join(sources)}.")
        if self.corpus is not None and self.corpus not in CORPORA:
            raise ValueError(f"Unknown corpus {self.corpus!r}: choose one of {', '.join(CORPORA)}, or use your own "
                             f"files with --train_file.")

    def default_to(self, corpus, pair=None):
        """Use a built-in corpus when no data source was given."""
        if not (self.corpus or self.train_file or self.dataset_name):
            self.corpus, self.pair = corpus, self.pair or pair

    def load(self, task, max_train_samples=None, max_eval_samples=None, max_predict_samples=None):
        """The train / validation / test DatasetDict these arguments name, each split cut to its `max_*_samples`."""
        if self.corpus:
            if CORPORA[self.corpus].task != task:
                raise ValueError(f"The corpus {self.corpus!r} is for {CORPORA[self.corpus].task}, not {task}.")
            dataset_dict = load_corpus(self.corpus, self.pair, self.cache_dir)
        else:
            dataset_dict = load_user_data(
                task, self.dataset_name, self.dataset_config_name, self.train_file, self.validation_file,
                self.test_file, self.text_column, self.label_column, self.source_column, self.target_column,
            )
        for split, limit in [("train", max_train_samples), ("validation", max_eval_samples),
                             ("test", max_predict_samples)]:
            if limit is not None and limit < len(dataset_dict[split]):
                dataset_dict[split] = dataset_dict[split].select(range(limit))
        return dataset_dict
