"""The one template every Trainer recipe runs through, as CTranslate2's `Converter.convert` owns a conversion.

    TrainerRecipe.main:  parse -> claim the output folder (one run, never an input) -> run:
    run:                 load_data (everything checked) -> the run's settings recorded, or checked on resume ->
                         build (tokenizer, model, datasets) -> train under the stop, NaN and time-budget policies ->
                         evaluate (every process) -> publish (the main process: results, card, folder) ->
                         provenance.json (commit, command, machine, date, minutes) -> push

A recipe subclasses `TrainerRecipe` and fills in only what differs, as fairseq's `build_*` hooks do: its argument
dataclasses, its Trainer class, `load_data`, `run_settings`, `build`, `evaluate` and `publish`. Every refusal is a
`UsageError` (exit 2, naming the flag) raised before expensive work; the template reports it, and turns a full disk
into exit 1 with the command that resumes.
"""

import logging
import sys
import time
from pathlib import Path

import transformers
from transformers import HfArgumentParser, set_seed

from hf_vanilla.cli import UsageError, parse_arguments, report
from hf_vanilla.files import NoSpaceError, OutputFolderRefused

from .cards import write_json
from .hub import push_if_requested, take_push_request
from .policies import check_run, claim_output_dir, run_inputs
from .provenance import provenance
from .trainer import SaveOnInterrupt, resume_hint, train_or_stop


class TrainerRecipe:
    """How a Trainer recipe runs (module docstring). Subclasses set the class attributes and override the hooks."""

    #: HfArgumentParser's dataclasses: ModelArguments, then DataArguments (unless the recipe reads no labelled data),
    #: the recipe's own arguments, and its TrainingArguments last
    arguments: tuple = ()
    trainer_class: type = None
    #: (corpus, pair) used when the user names no data; None for a recipe without DataArguments
    default_data: tuple | None = None

    def __init__(self, description=None):
        self.description = description or self.__doc__

    # the lifecycle

    def main(self, argv=None):
        """Parse, claim the output folder for the life of the run, run; the exit status (2: refused before work)."""
        parser = HfArgumentParser(self.arguments, description=self.description)
        *front, self.args, self.training_args = parse_arguments(parser, argv)
        self.model_args, self.data_args = front[0], (front[1] if len(front) > 1 else None)
        if self.data_args is not None and self.default_data:
            self.data_args.default_to(*self.default_data)
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
        transformers.utils.logging.set_verbosity_warning()
        training_args = self.training_args
        try:  # one run per output folder; the lock goes with the process
            lock = claim_output_dir(training_args.output_dir, self.args.overwrite_output_dir,
                                    training_args.resume_from_checkpoint, main_process=self.main_process,
                                    inputs=run_inputs(self.model_args, self.data_args, self.args))
        except OutputFolderRefused as error:
            return report(error, "output_dir")
        with lock:
            try:
                return self.run()
            except UsageError as error:  # refused before expensive work
                return report(error)
            except NoSpaceError as error:
                print(f"\nerror: {error}.{resume_hint(training_args.output_dir)}", file=sys.stderr)
                return 1

    def run(self):
        training_args = self.training_args
        where, start = provenance(), time.time()  # before any work: the commit and tree that trained the model
        data = self.load_data()
        self.resuming = bool(training_args.resume_from_checkpoint)
        # a resumed run must train on what its checkpoint was trained on
        check_run(training_args.output_dir, self.run_settings(data), self.resuming, self.args, training_args,
                  main_process=self.main_process)
        interrupt = SaveOnInterrupt()  # from here on, Ctrl-C stops at the next step end with a checkpoint
        set_seed(training_args.seed)
        parts = self.build(data)
        push = take_push_request(training_args)
        trainer = self.trainer_class(args=training_args, callbacks=[interrupt], **parts)
        status = train_or_stop(trainer, interrupt, training_args.resume_from_checkpoint)
        if status is not None:
            return status
        scores = self.evaluate(trainer, data)
        if not trainer.is_world_process_zero():  # results, card and folder are written once
            return 0
        self.publish(trainer, data, scores)
        # where the folder came from, as every benchmark result records it (hf_vanilla.training.provenance)
        write_json(Path(training_args.output_dir) / "provenance.json",
                   {**where, "minutes": (time.time() - start) / 60})
        return push_if_requested(push, training_args.output_dir)

    @property
    def main_process(self):
        return self.training_args.process_index == 0

    # the hooks

    def load_data(self):
        """Every argument, folder and data file checked before any expensive work: the data, or a UsageError."""
        raise NotImplementedError

    def run_settings(self, data) -> dict:
        """What the run trains on (data fingerprints, model shape): recorded, and a resume must match it."""
        raise NotImplementedError

    def build(self, data) -> dict:
        """The Trainer's keyword arguments besides `args` and `callbacks`: model, datasets, processing_class,
        data_collator, compute_metrics. `self.resuming` says whether the run goes on from a checkpoint."""
        raise NotImplementedError

    def evaluate(self, trainer, data):
        """What every process computes after training (Trainer's evaluation is collective); None by default."""
        return None

    def publish(self, trainer, data, scores):
        """On the main process: the final folder, its results and card, and what the user is told."""
        raise NotImplementedError

