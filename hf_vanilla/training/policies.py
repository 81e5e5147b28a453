"""What every training recipe does the same way, written once.

- One run per output folder: `OutputFolderLock` (released by the operating system when the process ends, so a
  crashed run never leaves it stuck) and `check_output_dir` (a non-empty folder needs overwrite or resume), checked
  before the lock is taken (nothing is created for a refused run) and again under it.
- A resumed run trains on what its checkpoint was trained on: `record_or_check_run` (run_settings.json).
- Ctrl-C or SIGTERM: `StopRequest` records it; the recipe finishes the step, saves a checkpoint and stops.
- A NaN or infinite loss stops training before the optimiser applies it: `check_finite_loss`.
- The paper's recipe (section 5.3-5.4), each default defined once with its reason: `paper_peak_learning_rate`,
  `WARMUP_STEPS`, `ADAM_BETAS`, `ADAM_EPSILON`, `LABEL_SMOOTHING`, and how often a run saves and logs
  (`SAVE_STEPS`, `LOGGING_STEPS`). The translation recipes (Trainer and Accelerate) and pre-training read them.
- Several processes (torchrun, accelerate launch): what they share on disk (a fetched corpus, a trained tokenizer)
  is made once, by the main process, before the others read it: `main_process_first`.
(Atomic folder writes live in `hf_vanilla.files`; the "+50 output tokens" rule in `hf_vanilla.inference`.)
"""

import fcntl
import hashlib
import json
import os
import re
import signal
import sys
from contextlib import nullcontext
from pathlib import Path

import torch

from hf_vanilla.cli import UsageError
from hf_vanilla.files import OutputFolderRefused, check_output_folder

from .checkpoints import list_checkpoints

RUN_FILE = "run_settings.json"


def paper_peak_learning_rate(d_model: int, warmup_steps: int = 4000) -> float:
    """lr = d_model^-0.5 * min(step^-0.5, step * warmup^-1.5) peaks at d_model^-0.5 * warmup^-0.5 (section 5.3).

    The paper's post-LN model trains at this peak (warm-up 4000); the recipes keep it when they warm up faster."""
    return d_model**-0.5 * warmup_steps**-0.5


# The paper warms up for 4000 steps of ~25k-token batches over 4.5M pairs; the built-in corpora hold ~30k pairs, so a
# tenth of that (about one epoch of batches of 64) keeps the warm-up a small share of a run that fits a CPU.
WARMUP_STEPS = 400
ADAM_BETAS = (0.9, 0.98)  # the paper's beta2 0.98 (not Adam's 0.999): steadier with its large early steps
ADAM_EPSILON = 1e-9  # the paper's
LABEL_SMOOTHING = 0.1  # the paper's epsilon_ls: worse perplexity, better BLEU
SAVE_STEPS = 500  # a resumable checkpoint every few minutes of a CPU run (a kill loses at most that)
LOGGING_STEPS = 50  # a loss point about every 15 seconds on a CPU


# Pre-LN keeps the paper's peak too: twice it learned faster for 300 steps, then stalled (validation BLEU 1.2 against
# 6.1 at 600 steps, docs/learning_speed.md).
PEAK_LEARNING_RATE_HELP = (f"Peak learning rate; default the paper's d_model^-0.5 * 4000^-0.5 "
                           f"({paper_peak_learning_rate(256):.1e} at d_model 256).")
WARMUP_HELP = f"Linear warm-up steps (the paper: 4000; default {WARMUP_STEPS}, scaled to ~30k-pair corpora)."


class OutputFolderError(OutputFolderRefused):
    """The output folder is in use by another run, or holds results that this run would overwrite."""


# what a training run writes into its output folder (glob patterns): --overwrite_output_dir may write over a folder
# holding only these; anything else in it is named and refused (hf_vanilla.files.check_output_folder)
TRAINING_OUTPUT = ("config.json", "generation_config.json", "model.safetensors", "model*.safetensors",
                   "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "chat_template.jinja", "README.md", "*results.json", "run_settings.json", "provenance.json", "trainer_state.json",
                   "training_args.json", "training_curves.png", "*_vanilla_transformer.py", "checkpoint-*", "runs",
                   "demo.json")  # recipes.demo's record, beside the model it trained: `make demo` twice must work


class OutputFolderLock:
    """An exclusive lock on an output folder for the life of this process (`fcntl.flock` on the folder itself, so
    nothing is written into it).

    A second run on the same folder fails at once; the operating system drops the lock when its holder exits, even
    when killed, so a crashed run never leaves the folder locked. A folder the lock had to create is removed again
    on release if the run left it empty."""

    def __init__(self, output_dir):
        self.path = Path(output_dir)
        self.created = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise OutputFolderError(
                f"The output folder {output_dir} is in use by another run: two runs in one folder would overwrite "
                f"each other's checkpoints and model. Wait for it to finish, or choose another folder."
            ) from None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.release()

    def release(self):
        if self._fd is None:
            return
        os.close(self._fd)
        self._fd = None
        if self.created and self.path.is_dir() and not any(self.path.iterdir()):
            self.path.rmdir()


# what a run writes before its first checkpoint: a folder holding only these (and hidden staging folders) is the
# leftover of a run that was stopped before it saved anything, and the same command may start again in it
_BEFORE_FIRST_CHECKPOINT = {RUN_FILE, "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}


def check_output_dir(output_dir, overwrite, resuming, inputs=None):
    """Refuse to write into an output folder that holds results (a checkpoint, a model, anything of the user's)
    unless asked to overwrite it or to resume from it; never one that is, holds or lies inside one of `inputs`
    ({flag: path}), and never, even with overwrite, one that holds files a training run does not write."""
    check_output_folder(output_dir, inputs=inputs, overwrite=True, ours=("*",))  # overlaps, and a file in the way
    path = Path(output_dir)
    results = [p for p in path.iterdir() if p.name not in _BEFORE_FIRST_CHECKPOINT and not p.name.startswith(".")
               ] if path.is_dir() else []
    if results and not overwrite and not resuming:
        raise OutputFolderError(
            f"The output folder {output_dir} exists and is not empty: pass --overwrite_output_dir to replace its "
            f"contents, --resume_from_checkpoint to continue its run, or choose another --output_dir."
        )
    if results and overwrite:
        check_output_folder(output_dir, overwrite=True, ours=TRAINING_OUTPUT + tuple(_BEFORE_FIRST_CHECKPOINT))


class StopRequest:
    """Ctrl-C (SIGINT) or SIGTERM asks training to stop after the current step, with a checkpoint; a second Ctrl-C
    stops at once. Install it before any expensive work, read `requested` at each step end."""

    def __init__(self):
        self.requested = False
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._request)

    def _request(self, signum, frame):
        if self.requested:  # the second time: stop now
            raise KeyboardInterrupt
        self.requested = True
        print("\ninterrupted: saving a checkpoint after this step (Ctrl-C again to stop at once)", file=sys.stderr)


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; the step that produced it was not applied."""


def check_finite_loss(loss: torch.Tensor, step: int, output_dir) -> None:
    """Raise `NonFiniteLossError` (naming the last good checkpoint) unless every element of `loss` is finite.

    Call it before the optimiser step that would spread a NaN into the weights. It reads the loss on the host."""
    if torch.isfinite(loss).all():
        return
    checkpoints = list_checkpoints(output_dir)
    last = (f"the last good checkpoint is {checkpoints[-1]}; resume from it with --resume_from_checkpoint "
            f"{checkpoints[-1]} after the change" if checkpoints else "no checkpoint had been saved yet")
    value = loss.item() if loss.numel() == 1 else loss.tolist()
    raise NonFiniteLossError(
        f"The training loss is {value} at step {step}: training stopped before this step changed the weights, and no "
        f"checkpoint was written from it; {last}. Lower the learning rate (--learning_rate) or look for broken "
        f"examples in the data."
    )


def check_resume_folder(output_dir, resume_from_checkpoint):
    """`--resume_from_checkpoint` names a checkpoint folder (`checkpoint-<step>`) that exists; True or "true" asks
    transformers for the newest one in the output folder."""
    if not resume_from_checkpoint or str(resume_from_checkpoint).lower() == "true":
        return
    path = Path(resume_from_checkpoint)
    if path.is_dir() and re.fullmatch(r"checkpoint-\d+", path.name):
        return
    newest = list_checkpoints(path if path.is_dir() else output_dir)
    hint = f"the newest one is {newest[-1]}" if newest else f"no checkpoint-<step> folder is in {output_dir}"
    what = "is not a checkpoint folder" if path.exists() else "does not exist"
    raise OutputFolderRefused(f"{resume_from_checkpoint} {what}: give a checkpoint-<step> folder written by a run "
                              f"({hint}).", "resume_from_checkpoint")


def claim_output_dir(output_dir, overwrite, resuming, main_process=True, inputs=None):
    """The output folder for this run, checked (`check_output_dir`) and locked (`OutputFolderLock`) on the main
    process: a context manager holding the lock. Checked before locking, so a refused run creates nothing, and
    again once locked, so two runs that start together cannot both pass. Raises OutputFolderError (or
    OutputFolderRefused for an output that overlaps an input or holds files of the user's)."""
    if not main_process:
        return nullcontext()
    check_resume_folder(output_dir, resuming)
    check_output_dir(output_dir, overwrite, resuming, inputs)
    lock = OutputFolderLock(output_dir)
    try:
        check_output_dir(output_dir, overwrite, resuming, inputs)
    except OutputFolderError:
        lock.release()
        raise
    return lock


def run_inputs(model_args, data_args, args):
    """{flag: path} of everything a run reads from disk: its output folder may overlap none of them."""
    names = {"model_name_or_path": model_args, "tokenizer_name": model_args, "train_file": data_args,
             "validation_file": data_args, "test_file": data_args, "init_from": args, "text_files": args}
    return {flag: getattr(owner, flag, None) for flag, owner in names.items() if owner is not None}


def _sha256_of(values):
    """sha256 over the values as text, each ended by a NUL byte, in order."""
    digest = hashlib.sha256()
    for value in values:
        digest.update(str(value).encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def text_fingerprint(texts):
    """sha256 of a list of texts, in order (with the count, for a readable difference)."""
    return f"{len(texts)} texts, sha256 {_sha256_of(texts)}"


def data_fingerprint(dataset, columns):
    """(rows, sha256 over the given columns of every row, in order): two runs trained on the same data share it. A
    stream (`datasets.IterableDataset`, no length) is read once, a row at a time, counting as it goes."""
    if hasattr(dataset, "__len__"):
        return len(dataset), _sha256_of(value for column in columns for value in dataset[column])
    rows = 0

    def values():
        nonlocal rows
        for row in dataset:
            rows += 1
            yield from (row[column] for column in columns)

    digest = _sha256_of(values())
    return rows, digest


# the loop's arguments that shape what a run learns (any recipe's, Trainer or Accelerate): a resume must keep them.
# --max_steps and --num_train_epochs may grow on resume (train longer); the time budget is the run's total.
SHAPING_ARGUMENTS = ("seed", "data_seed", "per_device_train_batch_size", "gradient_accumulation_steps", "max_tokens",
                     "learning_rate", "warmup_steps", "lr_scheduler_type", "weight_decay", "adam_beta1", "adam_beta2",
                     "adam_epsilon", "label_smoothing_factor", "max_grad_norm", "max_train_minutes", "mask_ratio",
                     "poisson_lambda", "classifier_pooling", "train_sampling_strategy")


RESUME_WITH_CHANGES_HELP = ("With --resume_from_checkpoint: continue although settings differ from the run's recorded "
                            "ones (data, seed, batching, learning rate, ...). Each change is recorded in "
                            f"{RUN_FILE} and the model card; without it a difference is refused.")
# run_settings.json's list of what changed at each resume made with --resume_with_changes (what the card reports)
CHANGES = "changed_on_resume"


def record_or_check_run(output_dir, settings, resuming, *arguments):
    """A fresh run records `settings` (data fingerprints, model and tokenizer arguments) and the SHAPING_ARGUMENTS
    found in `arguments` (parsed dataclasses) in the output folder; a resumed run must match them all, since its
    checkpoint's weights, optimiser state and batch order only mean something with them. Raises OutputFolderError
    naming each difference, unless an argument sets `resume_with_changes`: then the differences are recorded (the
    card reports them) and the new settings become the run's."""
    settings = {**settings, **{name: getattr(namespace, name) for namespace in arguments
                               for name in SHAPING_ARGUMENTS if hasattr(namespace, name)}}
    path = Path(output_dir) / RUN_FILE
    if not resuming or not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
        return
    recorded = json.loads(path.read_text())
    changes = recorded.pop(CHANGES, [])
    differences = [f"{key}: {recorded.get(key)!r} in the checkpoint's run, {settings.get(key)!r} now"
                   for key in sorted(set(recorded) | set(settings)) if recorded.get(key) != settings.get(key)]
    if differences and not any(getattr(namespace, "resume_with_changes", False) for namespace in arguments):
        raise OutputFolderError(
            f"--resume_from_checkpoint continues the run recorded in {path}, but this command differs from it: "
            + "; ".join(differences) + ". Resume with the same data and model arguments, start a new run in "
            "another --output_dir, or pass --resume_with_changes True to continue anyway (the card records it)."
        )
    if differences:
        changes.append([f"{key}: {recorded.get(key)!r} -> {settings.get(key)!r}"
                        for key in sorted(set(recorded) | set(settings)) if recorded.get(key) != settings.get(key)])
        path.write_text(json.dumps({**settings, CHANGES: changes}, indent=2, sort_keys=True) + "\n")


def check_run(output_dir, settings, resuming, *arguments, main_process=True):
    """`record_or_check_run` as every recipe calls it: on the main process only (one writer), a refusal raised as
    a UsageError naming --resume_from_checkpoint."""
    if not main_process:
        return
    try:
        record_or_check_run(output_dir, settings, resuming, *arguments)
    except OutputFolderError as error:
        raise UsageError(error, "resume_from_checkpoint") from None


def changes_on_resume(output_dir):
    """The settings changed at each resume with --resume_with_changes (a list per resume), from the run's record."""
    path = Path(output_dir) / RUN_FILE
    return json.loads(path.read_text()).get(CHANGES, []) if path.is_file() else []


def main_process_first():
    """A context where the main process runs first and the others wait for it (a no-op in a single process): a
    corpus is fetched into the cache, or a tokenizer trained and saved, once, then read by the rest."""
    from accelerate import PartialState

    state = PartialState()  # the run's own, already set up by TrainingArguments or the Accelerator
    return state.main_process_first() if state.num_processes > 1 else nullcontext()
