"""What every command-line recipe does with its arguments and errors (core install only).

One rule checks every recipe's numbers before any work: each float given must be finite, and each flag named in
`RANGES` must lie in its range (a NaN learning rate used to train, a label smoothing of 1.5 to exit 0, a budget of 0
minutes to be ignored, 0 epochs to save an untrained model, a gradient accumulation of 0 to end in a ZeroDivisionError).
Every number a recipe takes has a line here, Trainer's own included; tests/test_run_checks.py fails on one without.
"""

import dataclasses
import math
import sys

# flag -> (test, what a valid value is). None values (a flag left unset) are not checked. The common ranges name
# their flags together; the rest have a line each.
RANGES = {
    **dict.fromkeys([
        "max_source_length", "max_target_length", "batch_size", "per_device_train_batch_size",
        "per_device_eval_batch_size", "max_tokens", "average_last_n", "gradient_accumulation_steps",
        "eval_accumulation_steps", "generation_max_length", "max_train_samples", "max_eval_samples",
        "max_predict_samples", "workers", "threads", "dataloader_prefetch_factor", "torch_empty_cache_steps",
        "ddp_bucket_cap_mb",
    ], (lambda v: v >= 1, "at least 1")),
    **dict.fromkeys(["learning_rate", "init_std", "adam_epsilon", "neftune_noise_alpha", "poisson_lambda"],
                    (lambda v: v > 0, "a positive number")),
    **dict.fromkeys(["weight_decay", "warmup_steps", "eval_delay"], (lambda v: v >= 0, "zero or positive")),
    **dict.fromkeys(["label_smoothing_factor", "label_smoothing", "dropout", "adam_beta1", "adam_beta2"],
                    (lambda v: 0 <= v < 1, "in [0, 1)")),
    # Trainer reads a value below 1 as a fraction of the training steps
    **dict.fromkeys(["logging_steps", "save_steps", "eval_steps"],
                    (lambda v: v > 0, "a positive number of steps (below 1: a fraction of the training steps)")),
    **dict.fromkeys(["seed", "data_seed"],
                    (lambda v: 0 <= v < 2**32, "from 0 to 2**32 - 1 (what numpy's generator takes)")),
    "max_train_minutes": (lambda v: v > 0, "a positive number of minutes (leave it out for no time budget)"),
    "vocab_size": (lambda v: v > 260, "more than 260 (the 256 byte symbols and the special tokens)"),
    "num_beams": (lambda v: 1 <= v <= 64, "from 1 to 64 (each beam is one more sequence decoded per input)"),
    "generation_num_beams": (lambda v: 1 <= v <= 64, "from 1 to 64"),
    "length_penalty": (lambda v: -10 <= v <= 10, "from -10 to 10"),
    "port": (lambda v: 1 <= v <= 65535, "a port number from 1 to 65535"),
    "num_train_epochs": (lambda v: v > 0, "a positive number of passes over the training data"),
    "max_steps": (lambda v: v == -1 or v >= 1, "at least 1, or -1 (the default: train for --num_train_epochs)"),
    "save_total_limit": (lambda v: v >= 1, "at least 1 (leave it out to keep every checkpoint)"),
    "max_grad_norm": (lambda v: v >= 0, "zero (no clipping) or positive"),
    "mask_ratio": (lambda v: 0 < v < 1, "in (0, 1)"),
    "validation_share": (lambda v: 0 < v < 0.5, "in (0, 0.5)"),
    "dataloader_num_workers": (lambda v: v >= 0, "zero (load in the training process) or positive"),
    "ddp_timeout": (lambda v: v >= 1, "at least 1 second"),
    "local_rank": (lambda v: v >= -1, "-1 (no launcher) or the process index a launcher sets"),
}


# --report_to integrations that an extra of this project installs (the others: pip install the package named)
INTEGRATION_EXTRAS = {"tensorboard": "hf_vanilla[tensorboard]"}


def integration_problems(report_to):
    """Why each integration named by --report_to could not log (unknown, or its package missing), checked before any
    work: Trainer would only fail once the data is loaded and the model built."""
    from transformers.integrations import integration_utils

    names = [report_to] if isinstance(report_to, str) else list(report_to or [])
    problems = []
    for name in names:
        if name in ("none", "all"):
            continue
        if name not in integration_utils.INTEGRATION_TO_CALLBACK:
            problems.append(f"--report_to {name}: unknown; choose none, all or from "
                            f"{', '.join(sorted(integration_utils.INTEGRATION_TO_CALLBACK))}")
            continue
        available = getattr(integration_utils, f"is_{name}_available", None)
        if available is not None and not available():
            install = INTEGRATION_EXTRAS.get(name, name.replace("_", "-"))
            problems.append(f"--report_to {name}: its package is not installed (pip install '{install}')")
    return problems


def argument_problems(*namespaces):
    """'--flag value: why' for every argument of the parsed dataclasses that breaks the rules above."""
    problems = []
    for namespace in namespaces:
        if not dataclasses.is_dataclass(namespace):
            continue
        if hasattr(namespace, "report_to"):
            problems += integration_problems(namespace.report_to)
        for field in dataclasses.fields(namespace):
            value = getattr(namespace, field.name, None)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if isinstance(value, float) and not math.isfinite(value):
                problems.append(f"--{field.name} {value}: must be a finite number")
            elif field.name in RANGES and not RANGES[field.name][0](value):
                problems.append(f"--{field.name} {value}: must be {RANGES[field.name][1]}")
    return problems


def launched_on_cpus():
    """True in one of several processes a launcher started (torchrun, accelerate launch: WORLD_SIZE > 1) on a machine
    with no GPU. Accelerate (and so Trainer) joins such a run only when told it is a CPU run; otherwise every process
    trains alone as process 0, and they fight over the output folder."""
    import os

    import torch

    has_gpu = torch.accelerator.is_available() if hasattr(torch, "accelerator") else torch.cuda.is_available()
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and not has_gpu


def sharding_problems(namespaces):
    """FSDP asked of Trainer where it would not happen: Accelerate shards on GPUs only, so on CPU processes Trainer's
    `--fsdp` (or an Accelerate FSDP config) would quietly run plain data parallelism."""
    import os

    trainer_arguments = [namespace for namespace in namespaces if hasattr(namespace, "eval_strategy")]
    asked = os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true" or any(
        getattr(namespace, "fsdp", None) for namespace in trainer_arguments)
    if not trainer_arguments or not asked or not launched_on_cpus():
        return []
    return ["--fsdp: Trainer shards only on GPUs (Accelerate's FSDP); on CPU processes it would quietly run plain "
            "data parallelism. Shard on CPUs with: torchrun --nproc_per_node N -m recipes.train_translation_accelerate "
            "--fsdp True"]


def parse_arguments(parser, argv):
    """HfArgumentParser's dataclasses, with the arguments' own validation errors and every number out of range
    (`RANGES`) reported as usage errors (exit 2) before any work."""
    if launched_on_cpus():  # what `accelerate launch --cpu` sets: every process joins one gloo run
        import os

        os.environ.setdefault("ACCELERATE_USE_CPU", "true")
    try:
        parsed = parser.parse_args_into_dataclasses(args=argv)
    except ValueError as error:
        parser.error(str(error))
    problems = argument_problems(*parsed) + sharding_problems(parsed)
    if problems:
        parser.error("; ".join(problems))
    return parsed


class UsageError(Exception):
    """A refused argument, file or folder, found before expensive work. The recipes raise it; the one place that
    runs them (`hf_vanilla.training.recipe.TrainerRecipe.main`, the Accelerate recipe's `main`) reports it with
    `report` and exits 2. Typed, so that nothing matches on message text."""

    def __init__(self, message, argument=None):
        super().__init__(str(message))
        self.argument = getattr(message, "argument", None) or argument  # the flag at fault, without its dashes


def report(error, argument=None):
    """Print a library error the way a command line reports usage errors, naming the flag at fault (the error's
    `argument`, else `argument`); return exit status 2."""
    flag = getattr(error, "argument", None) or argument
    print(f"error: {'--' + flag + ': ' if flag else ''}{error}", file=sys.stderr)
    return 2
