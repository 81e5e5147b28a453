"""Trainer's side of the training policies (policies.py): subclasses list `ReliableTrainerMixin` before the Trainer.

- Checkpoints are written aside, in `.checkpoint-N.partial`, and renamed into place once complete: Trainer writes
  `checkpoint-N` in place, so a crash mid-save would leave a half-written folder that resuming picks up.
- A NaN or infinite loss stops training before the optimiser applies it, naming the last good checkpoint.
- Length-grouped batches are shuffled by (seed, epoch), so a resumed run sees the same batches as one left alone;
  with `--max_tokens` (`TokenBudgetMixin`, translation), batches hold a budget of padded tokens (the paper's way).
- With `--max_train_minutes` (every recipe's `RecipeTrainingArguments`), training stops when the budget is spent.
- Ctrl-C or SIGTERM finishes the step, saves a checkpoint and stops (`SaveOnInterrupt`).
- A checkpoint that would not fit on the disk (or fills it) stops the run with exit 1, naming the folder, the space it
  needs and the last complete checkpoint (files.space_for); the staging folder is removed.
"""

import os
import sys
from contextlib import nullcontext
from pathlib import Path

import torch
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import DataLoader
from transformers import ProgressCallback, TrainerCallback
from transformers.trainer_pt_utils import LengthGroupedSampler

from hf_vanilla.files import atomic_folder, folder_bytes, space_for

from .batching import EpochSeededLengthGroupedSampler, TokenBudgetBatchSampler, padded_sizes
from .budget import InverseSqrtSchedule, TimeBudget
from .cards import command_line
from .checkpoints import list_checkpoints, weights_bytes
from .policies import (
    NonFiniteLossError,
    StopRequest,
    check_finite_loss,
)


class SaveOnInterrupt(TrainerCallback):
    """Ctrl-C (or SIGTERM) finishes the current step, saves a checkpoint and stops, so the run can be resumed."""

    def __init__(self):
        self.stop = StopRequest()

    @property
    def interrupted(self):
        return self.stop.requested

    def on_step_end(self, args, state, control, **kwargs):
        if self.stop.requested:
            control.should_save = True
            control.should_training_stop = True
        return control


class ReliableTrainerMixin:
    """Atomic checkpoints, a stop on a NaN loss, resumable batch orders and token-budget batches (module docstring)."""

    _staging_dir = None

    def _data_seed(self):
        return self.args.data_seed if self.args.data_seed is not None else self.args.seed

    def _get_train_sampler(self, *args, **kwargs):
        sampler = super()._get_train_sampler(*args, **kwargs)
        if type(sampler) is LengthGroupedSampler and sampler.generator is None:
            return EpochSeededLengthGroupedSampler(sampler.batch_size, sampler.lengths, self._data_seed())
        return sampler

    def create_scheduler(self, num_training_steps, optimizer=None):
        """With a time budget (`max_train_minutes`) and the paper's schedule, one whose warm-up the budget can
        shorten to the steps that fit (budget.TimeBudget); otherwise Trainer's own."""
        if self.lr_scheduler is None and self.args.max_train_minutes and \
                self.args.lr_scheduler_type == "inverse_sqrt":
            self.lr_scheduler = LambdaLR(optimizer or self.optimizer, self.budget_schedule)
            self._created_lr_scheduler = True
        return super().create_scheduler(num_training_steps, optimizer)

    @property
    def budget_schedule(self):
        if getattr(self, "_budget_schedule", None) is None:
            self._budget_schedule = InverseSqrtSchedule(self.args.warmup_steps)
        return self._budget_schedule

    def _get_output_dir(self, trial):
        return self._staging_dir or super()._get_output_dir(trial)

    def _save_checkpoint(self, model, trial):
        run_dir = Path(super()._get_output_dir(trial))
        name = f"checkpoint-{self.state.global_step}"
        final = run_dir / name
        self.accelerator.wait_for_everyone()
        # the main process stages and publishes (files.atomic_folder); Trainer writes <staging>/checkpoint-N, whose
        # files move up a level before the staging folder becomes `final`
        writing = atomic_folder(final, staging_name=f".{name}.partial") if self.args.should_save else \
            nullcontext(run_dir / f".{name}.partial")
        with writing as staging:
            self.accelerator.wait_for_everyone()  # staging exists before any process writes into it
            self._staging_dir = str(staging)
            try:
                with space_for(final, self._checkpoint_bytes(run_dir)):
                    super()._save_checkpoint(model, trial)  # every process adds its files
            finally:
                self._staging_dir = None
            self.accelerator.wait_for_everyone()
            if self.args.should_save:
                written = staging / name
                if self.state.best_model_checkpoint == str(written):  # Trainer recorded the staging path
                    self.state.best_model_checkpoint = str(final)
                    self.state.save_to_json(str(written / "trainer_state.json"))
                for item in list(written.iterdir()):
                    os.replace(item, staging / item.name)
                written.rmdir()
        if self.args.should_save:
            self._rotate(run_dir)
        self.accelerator.wait_for_everyone()

    def _save(self, output_dir=None, state_dict=None):
        """Trainer's save, with the training arguments as JSON instead of its pickled `training_args.bin` (the
        project's folders hold no pickle: a shared folder's pickle is code its reader may run)."""
        super()._save(output_dir, state_dict)
        if self.args.should_save:
            folder = Path(output_dir or self.args.output_dir)
            (folder / "training_args.bin").unlink(missing_ok=True)
            (folder / "training_args.json").write_text(self.args.to_json_string())

    def save_model(self, output_dir=None, _internal_call=False):
        if _internal_call:  # within _save_checkpoint, whose space check covers the whole checkpoint
            return super().save_model(output_dir, _internal_call)
        with space_for(output_dir or self.args.output_dir, weights_bytes(self.model)):
            return super().save_model(output_dir, _internal_call)

    def _checkpoint_bytes(self, run_dir):
        """What the next checkpoint needs: as much as the newest one, or before the first, the weights and Adam's two
        moments (3 copies of the parameters)."""
        checkpoints = list_checkpoints(run_dir)
        return folder_bytes(checkpoints[-1]) if checkpoints else 3 * weights_bytes(self.model)

    def _rotate(self, run_dir):
        """Trainer's own rotation (keep save_total_limit, and the best), now that the new checkpoint is in place."""
        if hasattr(self, "_rotate_checkpoints"):  # transformers 5.0 to 5.1x: a Trainer method
            self._rotate_checkpoints(use_mtime=True, output_dir=str(run_dir))
        else:  # later 5.x: a function
            from transformers.trainer_utils import rotate_checkpoints

            rotate_checkpoints(output_dir=str(run_dir), save_total_limit=self.args.save_total_limit,
                               best_model_checkpoint=self.state.best_model_checkpoint, use_mtime=True)

    def training_step(self, *args, **kwargs):
        loss = super().training_step(*args, **kwargs)
        check_finite_loss(loss, self.state.global_step + 1, self.args.output_dir)  # before the optimiser step
        return loss


class TokenBudgetMixin:
    """With `--max_tokens` (the translation recipe's flag), batches hold a budget of padded tokens, the paper's way,
    cut anew each epoch from (seed, epoch); without it, Trainer's batches. Listed before ReliableTrainerMixin."""

    def get_train_dataloader(self):
        max_tokens = self.args.max_tokens
        if not max_tokens:
            return super().get_train_dataloader()
        lengths = padded_sizes(self.train_dataset)
        dataset = self.train_dataset.remove_columns([c for c in self.train_dataset.column_names
                                                     if c not in ("input_ids", "attention_mask", "labels")])
        loader = DataLoader(dataset, batch_sampler=TokenBudgetBatchSampler(lengths, max_tokens, self._data_seed()),
                            collate_fn=self.data_collator, num_workers=self.args.dataloader_num_workers,
                            pin_memory=self.args.dataloader_pin_memory and torch.cuda.is_available())
        return self.accelerator.prepare(loader)


def resume_hint(output_dir):
    """Where a stopped run's last complete checkpoint is and the command that resumes from it ('' if none yet)."""
    checkpoints = list_checkpoints(output_dir)
    if not checkpoints:
        return ""
    return (f"\nThe last complete checkpoint is {checkpoints[-1]}; resume with: {command_line()} "
            f"--resume_from_checkpoint {checkpoints[-1]}")


def budget_callbacks(trainer):
    """The TimeBudget callback for a trainer whose arguments set `max_train_minutes`, or none."""
    minutes = trainer.args.max_train_minutes
    if minutes is None:
        return []
    schedule = trainer.budget_schedule if trainer.args.lr_scheduler_type == "inverse_sqrt" else None
    progress = next((c for c in trainer.callback_handler.callbacks if isinstance(c, ProgressCallback)), None)
    return [TimeBudget(minutes, schedule, progress)]


def train_or_stop(trainer, interrupt, resume_from_checkpoint=None):
    """`trainer.train` with the recipes' endings: None when training finished; 1 after a NaN or infinite loss; 130
    after Ctrl-C or SIGTERM, once the checkpoint is saved, with the command that resumes the run."""
    for callback in budget_callbacks(trainer):
        trainer.add_callback(callback)
    try:
        trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    except NonFiniteLossError as error:
        print(f"\nerror: {error}", file=sys.stderr)
        return 1
    if not interrupt.interrupted:
        return None
    print(f"\nstopped at step {trainer.state.global_step}.{resume_hint(trainer.args.output_dir)}", file=sys.stderr)
    return 130
