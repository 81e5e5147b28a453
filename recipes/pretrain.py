"""Pre-train a vanilla Transformer on unlabelled text with BART's text infilling (or BERT's masked LM), with
Seq2SeqTrainer.

    python -m recipes.pretrain --max_train_minutes 45                       # English of every built-in corpus
    python -m recipes.pretrain --objective masked_lm --max_train_minutes 45  # the encoder only, for a classifier
    python -m recipes.pretrain --text_files my_text.txt --corpora none      # your own text, one text a line
    python -m recipes.train_classification --init_from outputs/pretrain     # then fine-tune a classifier
    python -m recipes.train_translation --model_name_or_path outputs/pretrain   # or a translator

The data is the English side of the training splits of the built-in corpora (never a validation or test split, so
the benchmarks that score them stay clean), plus --text_files; each corpus's licence goes into the model card. Long
texts are cut into pieces of --max_source_length tokens. With --objective infilling (the default) the encoder reads
each piece with spans (Poisson(3) long, 30% of the tokens) replaced by one <mask> each and the decoder writes the piece
back; with --objective masked_lm 15% of the tokens are chosen and the encoder's own states predict them, so the
decoder stays as initialised (hf_vanilla.training.pretraining).
The shared BPE vocabulary is trained on that text plus the target side of the translation corpora's training splits
of --vocabulary_pairs, so that a translator started from this model has words for its target language too.
"""

import logging
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import datasets
import torch
from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments

from hf_vanilla import VanillaTransformerForConditionalGeneration
from hf_vanilla.training.arguments import ModelArguments, RecipeTrainingArguments, UsageError
from hf_vanilla.training.cards import (
    card_metadata,
    command_line,
    markdown_table,
    model_description,
    write_json,
    write_model_card,
)
from hf_vanilla.training.corpora import CORPORA, CorpusError, load_corpus, split_by_hash
from hf_vanilla.training.policies import (
    ADAM_BETAS,
    ADAM_EPSILON,
    LOGGING_STEPS,
    PEAK_LEARNING_RATE_HELP,
    RESUME_WITH_CHANGES_HELP,
    SAVE_STEPS,
    main_process_first,
    paper_peak_learning_rate,
    text_fingerprint,
)
from hf_vanilla.training.pretraining import (
    MASK_TOKEN,
    OBJECTIVES,
    InfillingCollator,
    MaskedLMCollator,
    chunk_ids,
    english_training_texts,
    masked_lm_loss,
    read_text_files,
)
from hf_vanilla.training.recipe import TrainerRecipe
from hf_vanilla.training.tokenizer import fit_to_model
from hf_vanilla.training.trainer import ReliableTrainerMixin
from hf_vanilla.training.translation import run_tokenizer

logger = logging.getLogger(__name__)


@dataclass
class PretrainArguments:
    corpora: str = field(default="all", metadata={"help": f"Built-in corpora whose English training text is used: "
                                                          f"all, none, or a comma list of {', '.join(CORPORA)}."})
    text_files: list[str] = field(default_factory=list, metadata={"help": "Your own UTF-8 text, one text a line."})
    vocabulary_pairs: str = field(default="en-fr", metadata={"help": "Translation pairs whose target training text "
                                                                      "also trains the vocabulary (comma list, or "
                                                                      "none)."})
    objective: str = field(default="infilling", metadata={"help": "infilling (BART's text infilling: the encoder and "
                                                                   "the decoder) or masked_lm (BERT's masked LM: the "
                                                                   "encoder only, what a classifier keeps)."})
    mask_ratio: float | None = field(default=None, metadata={"help": "Share of tokens masked (default: infilling "
                                                                     "0.3 as BART, masked_lm 0.15 as BERT)."})
    poisson_lambda: float = field(default=3.0, metadata={"help": "Mean masked span length (BART: 3)."})
    validation_share: float = field(default=0.01, metadata={"help": "Share of the text held out for the loss."})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "Replace a non-empty --output_dir."})
    resume_with_changes: bool = field(default=False, metadata={"help": RESUME_WITH_CHANGES_HELP})
    cache_dir: str | None = field(default=None, metadata={"help": "Where built-in corpora are cached."})

    def __post_init__(self):
        names = [] if self.corpora == "none" else list(CORPORA) if self.corpora == "all" else self.corpora.split(",")
        unknown = [name for name in names if name not in CORPORA]
        if unknown:
            raise ValueError(f"--corpora: unknown corpus {unknown[0]!r}; choose all, none or from "
                             f"{', '.join(CORPORA)}.")
        self.corpus_names = names
        if self.objective not in OBJECTIVES:
            raise ValueError(f"--objective {self.objective!r}: choose {' or '.join(OBJECTIVES)}.")
        self.mask_ratio = OBJECTIVES[self.objective] if self.mask_ratio is None else self.mask_ratio
        if not names and not self.text_files:
            raise ValueError("No text to pre-train on: give --text_files or --corpora.")
        for path in self.text_files:
            if Path(path).is_dir():
                raise ValueError(f"--text_files: {path} is a folder: give text files (one text a line), e.g. "
                                 f"{path}/*.txt.")
            if not Path(path).is_file():
                raise ValueError(f"--text_files: {path} does not exist.")
            if Path(path).stat().st_size == 0:
                raise ValueError(f"--text_files: {path} is empty.")
        if not 0 < self.mask_ratio < 1 or self.poisson_lambda <= 0 or not 0 < self.validation_share < 0.5:
            raise ValueError("--mask_ratio must lie in (0, 1), --poisson_lambda be positive, --validation_share in "
                             "(0, 0.5).")


@dataclass
class PretrainTrainingArguments(RecipeTrainingArguments, Seq2SeqTrainingArguments):
    output_dir: str = field(default="outputs/pretrain", metadata={"help": "Where the model and checkpoints go."})
    learning_rate: float | None = field(default=None, metadata={"help": PEAK_LEARNING_RATE_HELP})
    warmup_steps: int = field(default=1000, metadata={"help": "Linear warm-up steps."})
    lr_scheduler_type: str = field(default="inverse_sqrt")
    adam_beta2: float = field(default=ADAM_BETAS[1])
    adam_epsilon: float = field(default=ADAM_EPSILON)
    per_device_train_batch_size: int = field(default=32)
    per_device_eval_batch_size: int = field(default=64)
    num_train_epochs: float = field(default=20.0)
    train_sampling_strategy: str = field(default="group_by_length")
    eval_strategy: str = field(default="no")
    save_strategy: str = field(default="steps")
    save_steps: float = field(default=SAVE_STEPS)
    save_total_limit: int | None = field(default=2)
    logging_steps: float = field(default=LOGGING_STEPS)
    report_to: str | None = field(default="none")
    dataloader_pin_memory: bool = field(default=torch.cuda.is_available())
    prediction_loss_only: bool = field(default=True)  # the held-out loss is all the evaluation reads


LOSS_NAMES = {"infilling": "denoising loss", "masked_lm": "masked-LM loss"}  # what the held-out loss measures


class PretrainTrainer(ReliableTrainerMixin, Seq2SeqTrainer):
    """Seq2SeqTrainer with atomic checkpoints, a stop on a NaN loss and the time budget."""


def load_text(args):
    """{source: (licence, texts)} of the pre-training text, and the extra texts for the vocabulary only."""
    sources = english_training_texts(args.cache_dir, args.corpus_names)
    if args.text_files:
        sources["text_files"] = ("as given by the user", read_text_files(args.text_files))
    vocabulary_only = []
    for pair in ([] if args.vocabulary_pairs == "none" else args.vocabulary_pairs.split(",")):
        for name, corpus in CORPORA.items():
            if corpus.task == "translation" and tuple(pair.split("-")) in corpus.pairs:
                vocabulary_only += list(load_corpus(name, pair, args.cache_dir)["train"]["target"])
    return sources, vocabulary_only


def tokenized_pieces(tokenizer, texts, length, validation_share):
    """train/validation Datasets of `input_ids` pieces of at most `length` tokens (the last one </s>)."""
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    pieces = [piece + [tokenizer.eos_token_id] for piece in chunk_ids(ids, length - 1)]
    rows = [{"key": str(piece), "input_ids": piece} for piece in pieces]
    size = max(1, int(len(rows) * validation_share))
    splits = split_by_hash(rows, "key", size, 0)
    return {split: datasets.Dataset.from_dict({"input_ids": [row["input_ids"] for row in split_rows]})
            for split, split_rows in splits.items() if split != "test"}


class PretrainRecipe(TrainerRecipe):
    """The pre-training recipe's part of the lifecycle (hf_vanilla.training.recipe): unlabelled English text in
    pieces, a BPE with a mask token, BART's text infilling or BERT's masked LM; at the end, the held-out loss."""

    arguments = (ModelArguments, PretrainArguments, PretrainTrainingArguments)
    trainer_class = PretrainTrainer

    def load_data(self):
        if self.args.objective == "masked_lm" and self.training_args.fsdp:
            # the loss projects the encoder's states through the output matrix outside the sharded forward
            raise UsageError("--objective masked_lm runs on one process or data-parallel (torchrun, Accelerate), not "
                             "under --fsdp: use --objective infilling there.")
        try:
            with main_process_first():  # the main process fetches the corpora into the cache; the others read them
                return load_text(self.args)
        except (CorpusError, ValueError, FileNotFoundError) as error:
            raise UsageError(error) from None

    def run_settings(self, loaded):
        sources, _ = loaded
        model_args, args = self.model_args, self.args
        return {"sources": {name: text_fingerprint(t) for name, (_, t) in sources.items()},
                "vocabulary_pairs": args.vocabulary_pairs, "validation_share": args.validation_share,
                "objective": args.objective,
                "preset": model_args.preset, "vocab_size": model_args.vocab_size,
                "max_source_length": model_args.max_source_length}

    def build(self, loaded):
        (sources, vocabulary_only), model_args, args = loaded, self.model_args, self.args
        training_args = self.training_args
        texts = [text for _, source_texts in sources.values() for text in source_texts]
        # this run's own when resuming; else trained (by the main process only) and saved in output_dir
        tokenizer = run_tokenizer(replace(model_args, tokenizer_name=None, model_name_or_path=None),
                                  texts + vocabulary_only, training_args.output_dir, self.resuming,
                                  mask_token=MASK_TOKEN)
        self.pieces = tokenized_pieces(tokenizer, texts, model_args.max_source_length, args.validation_share)
        model = VanillaTransformerForConditionalGeneration(model_args.config(tokenizer))
        fit_to_model(tokenizer, model)
        training_args.learning_rate = training_args.learning_rate or paper_peak_learning_rate(model.config.d_model)
        logger.info("%d pieces to pre-train on (%d held out), %.1fM parameters", len(self.pieces["train"]),
                    len(self.pieces["validation"]), model.num_parameters() / 1e6)
        parts = dict(model=model, train_dataset=self.pieces["train"], eval_dataset=self.pieces["validation"],
                     processing_class=tokenizer)
        if args.objective == "masked_lm":
            return dict(parts, data_collator=MaskedLMCollator(tokenizer, model.config.decoder_start_token_id,
                                                              args.mask_ratio, training_args.seed),
                        compute_loss_func=masked_lm_loss(model.get_output_embeddings()))
        return dict(parts, data_collator=InfillingCollator(tokenizer, args.mask_ratio, args.poisson_lambda,
                                                           training_args.seed))

    def evaluate(self, trainer, loaded):
        loss = trainer.evaluate()["eval_loss"]  # every process takes part (the held-out pieces are split over them)
        trainer.save_model(self.training_args.output_dir)
        return loss

    def publish(self, trainer, loaded, loss):
        (sources, vocabulary_only), output_dir = loaded, self.training_args.output_dir
        results = {"steps": trainer.state.global_step, "objective": self.args.objective, "validation_loss": loss,
                   "pieces": {"train": len(self.pieces["train"]), "validation": len(self.pieces["validation"])}}
        write_json(Path(output_dir) / "results.json", results)
        write_pretraining_card(trainer.model, sources, vocabulary_only, self.args, results, self.training_args)
        print(f"\nheld-out {LOSS_NAMES[self.args.objective]} {loss:.3f} after {trainer.state.global_step} steps\n"
              f"model saved in {output_dir}")


def main(argv=None):
    return PretrainRecipe(__doc__).main(argv)


def write_pretraining_card(model, sources, vocabulary_only, args, results, training_args):
    config, output_dir = model.config, training_args.output_dir
    if args.objective == "masked_lm":
        title, mask_use = "Vanilla Transformer, pre-trained as a masked LM (encoder only)", "the masked tokens"
        objective = (f"a masked LM ({args.mask_ratio:.0%} of the tokens chosen, 80% masked, 10% random, 10% kept; "
                     f"the encoder's states predict them, the decoder is left as initialised)")
    else:
        title, mask_use = "Vanilla Transformer, pre-trained by text infilling", "the masked spans"
        objective = f"text infilling (Poisson({args.poisson_lambda}) spans, {args.mask_ratio:.0%} of the tokens)"
    minutes = training_args.max_train_minutes
    budget = f" in a budget of {minutes:g} minutes" if minutes else ""
    rows = [[f"`{name}`", f"{len(texts):,}", licence] for name, (licence, texts) in sources.items()]
    metadata = card_metadata(Path(output_dir).name, "fill-mask", "hf_vanilla-english", "English training text",
                             [("validation", "loss", results["validation_loss"])], languages=["en"],
                             tags=["pretraining", "denoising" if args.objective == "infilling" else "masked-lm"],
                             licences=[None if name == "text_files" else licence
                                       for name, (licence, _) in sources.items()])
    write_model_card(output_dir, title, [
        ("Model", model_description(model, f"{MASK_TOKEN} for {mask_use}")),
        ("Data", "English text of the training splits (never validation or test):\n\n"
         + markdown_table(["source", "texts", "licence"], rows)
         + (f"\n\nThe vocabulary also saw {len(vocabulary_only):,} target-side training texts of "
            f"{args.vocabulary_pairs} (vocabulary only)." if vocabulary_only else "")),
        ("Training", f"{results['steps']} steps of Seq2SeqTrainer{budget}, {objective}, batch "
                     f"{training_args.per_device_train_batch_size} pieces of at most "
                     f"{config.max_position_embeddings - 64} tokens, peak lr {training_args.learning_rate:.2e}, "
                     f"held-out {LOSS_NAMES[args.objective]} {results['validation_loss']:.3f}."),
        ("Reproduce", f"```\n{command_line()}\n```"),
        ("Use", f"`python -m recipes.train_classification --init_from {output_dir}` or `python -m "
                f"recipes.train_translation --model_name_or_path {output_dir}`."),
    ], metadata=metadata)


if __name__ == "__main__":
    sys.exit(main())
