"""Train a vanilla Transformer for translation with a plain Accelerate loop and token-budget batches.

    python -m recipes.train_translation_accelerate --max_steps 2000
    accelerate launch -m recipes.train_translation_accelerate --max_tokens 8192
    torchrun --nproc_per_node 2 -m recipes.train_translation_accelerate --max_steps 100

The paper batches ~25,000 source + 25,000 target tokens over 8 GPUs; here a batch holds at most --max_tokens padded
tokens per process (source + target, 4096 by default, scaled to a CPU), and --gradient_accumulation_steps multiplies
it. Everything else is the Seq2SeqTrainer recipe's (`recipes.train_translation`): the same optimiser, schedule,
label smoothing, checkpoint averaging, evaluation and output folder (hf_vanilla.training holds what they share).
Multi-GPU, FSDP or DeepSpeed come from Accelerate's own config (`accelerate config`). On CPU processes, where
Accelerate does not shard, `--fsdp True` (or an Accelerate FSDP config) shards with torch's FSDP2
(hf_vanilla.training.sharding):

    torchrun --nproc_per_node 2 -m recipes.train_translation_accelerate --fsdp True --max_steps 100
"""

import json
import logging
import os
import sys
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
import transformers
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import DataCollatorForSeq2Seq, HfArgumentParser, get_inverse_sqrt_schedule

from hf_vanilla import VanillaTransformerForConditionalGeneration
from hf_vanilla.files import NoSpaceError, OutputFolderRefused, atomic_folder, atomic_remove, folder_bytes, space_for
from hf_vanilla.loading_vanilla_transformer import check_model_folder
from hf_vanilla.training.arguments import (
    DataArguments,
    ModelArguments,
    TranslationArguments,
    UsageError,
    parse_arguments,
    report,
)
from hf_vanilla.training.batching import TokenBudgetBatchSampler, padded_sizes
from hf_vanilla.training.checkpoints import list_checkpoints, weights_bytes
from hf_vanilla.training.corpora import CorpusError
from hf_vanilla.training.policies import (
    ADAM_BETAS,
    ADAM_EPSILON,
    LABEL_SMOOTHING,
    LOGGING_STEPS,
    PEAK_LEARNING_RATE_HELP,
    SAVE_STEPS,
    WARMUP_HELP,
    WARMUP_STEPS,
    NonFiniteLossError,
    StopRequest,
    check_finite_loss,
    check_run,
    claim_output_dir,
    main_process_first,
    paper_peak_learning_rate,
    run_inputs,
)
from hf_vanilla.training.sharding import is_sharded, local_fraction, shard, unsharded_copy
from hf_vanilla.training.tokenizer import fit_to_model
from hf_vanilla.training.trainer import resume_hint
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
class LoopArguments:
    output_dir: str = field(default="outputs/translation-accelerate", metadata={"help": "Where everything goes."})
    max_tokens: int = field(default=4096, metadata={"help": "Padded source + target tokens per batch and process."})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "Batches per optimiser step."})
    learning_rate: float | None = field(default=None, metadata={"help": PEAK_LEARNING_RATE_HELP})
    warmup_steps: int = field(default=WARMUP_STEPS, metadata={"help": WARMUP_HELP})
    label_smoothing: float = field(default=LABEL_SMOOTHING, metadata={"help": "The paper's epsilon_ls."})
    max_steps: int = field(default=-1, metadata={"help": "Optimiser steps in all; -1: use --num_train_epochs."})
    num_train_epochs: int = field(default=5, metadata={"help": "Passes over the training data."})
    save_steps: int = field(default=SAVE_STEPS,
                            metadata={"help": "Save a resumable checkpoint every N optimiser steps."})
    logging_steps: int = field(default=LOGGING_STEPS, metadata={"help": "Log the loss every N optimiser steps."})
    mixed_precision: str | None = field(
        default=None, metadata={"help": "no, bf16 or fp16; default bf16 where the GPU supports it, else fp32."}
    )
    seed: int = field(default=42)
    torch_compile: bool = field(default=False, metadata={"help": "Compile the model's forward (torch.compile)."})
    resume_from_checkpoint: str | None = field(default=None, metadata={"help": "A checkpoint-<step> folder."})
    per_device_eval_batch_size: int = field(default=64)
    fsdp: bool = field(default=False, metadata={
        "help": "Shard parameters, gradients and Adam's moments over the processes (torch FSDP2, one unit per layer) "
                "where Accelerate does not: CPU processes. On GPUs, use an Accelerate FSDP config."})

    def __post_init__(self):
        for name in ("max_tokens", "gradient_accumulation_steps", "save_steps", "logging_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be at least 1, got {getattr(self, name)}.")
        if self.resume_from_checkpoint and not (Path(self.resume_from_checkpoint) / "loop_state.json").is_file():
            raise ValueError(f"--resume_from_checkpoint {self.resume_from_checkpoint} is not a checkpoint of this "
                             f"recipe (no loop_state.json): give one of the checkpoint-<step> folders it wrote.")
        if self.resume_from_checkpoint and (self.fsdp or not json.loads(
                (Path(self.resume_from_checkpoint) / "loop_state.json").read_text()).get("resumable", True)):
            raise ValueError("--resume_from_checkpoint: a sharded (--fsdp) run cannot be resumed yet: its checkpoints "
                             "hold the full model (to average and load), not each process's optimiser shard. Start "
                             "from the checkpoint's weights with --model_name_or_path CHECKPOINT instead.")


class Loop:
    """The training loop's state and its three actions: one optimiser step, a log line, a checkpoint."""

    def __init__(self, accelerator, model, optimizer, scheduler, loop_args, keep_last):
        self.accelerator, self.model, self.optimizer, self.scheduler = accelerator, model, optimizer, scheduler
        self.args, self.keep_last = loop_args, keep_last
        self.output_dir = Path(loop_args.output_dir)
        self.step, self.log_history = 0, []
        self.running, self.counted = 0.0, 0
        self.sharded = is_sharded(model)

    def resume(self, checkpoint):
        self.accelerator.load_state(checkpoint)
        saved = json.loads((Path(checkpoint) / "loop_state.json").read_text())
        self.step, self.log_history = saved["step"], saved["log_history"]
        logger.info("resumed from %s at step %d", checkpoint, self.step)

    def train_on(self, batch):
        """Forward, backward and (every gradient_accumulation_steps batches) an update; True when one was made."""
        with self.accelerator.accumulate(self.model):
            labels = batch.pop("labels")
            logits = self.model(**batch).logits
            loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), labels.view(-1), ignore_index=-100,
                                   label_smoothing=self.args.label_smoothing)
            self.running, self.counted = self.running + loss.detach().float(), self.counted + 1
            if self.accelerator.sync_gradients:
                # a NaN or inf since the last update stays in the running sum: checked once per update, on every
                # process together, before the optimiser step that would spread it into the weights
                check_finite_loss(self.accelerator.gather(self.running), self.step + 1, self.output_dir)
            self.accelerator.backward(loss)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad()
        return self.accelerator.sync_gradients

    def log(self):
        mean_loss = self.accelerator.gather(self.running / self.counted).mean().item()
        self.log_history.append({"step": self.step, "loss": mean_loss,
                                 "learning_rate": self.scheduler.get_last_lr()[0]})
        self.running, self.counted = 0.0, 0
        return mean_loss

    def checkpoint_bytes(self):
        """As much as the newest checkpoint, or before the first, the weights and Adam's moments twice (save_state's
        copy and save_pretrained's)."""
        checkpoints = list_checkpoints(self.output_dir)
        return folder_bytes(checkpoints[-1]) if checkpoints else 4 * weights_bytes(self.model) * (
            self.accelerator.num_processes if self.sharded else 1)  # a sharded model's bytes are this process's

    def save_checkpoint(self):
        """Write aside, then rename (hf_vanilla.files): a crash mid-save leaves only a hidden partial folder, never a
        checkpoint-N that resuming would pick up half-written; then keep the last `keep_last`."""
        accelerator, folder = self.accelerator, self.output_dir / f"checkpoint-{self.step}"
        staging_name = f".{folder.name}.partial"
        writing = atomic_folder(folder, staging_name=staging_name) if accelerator.is_main_process else nullcontext()
        with writing, space_for(folder, self.checkpoint_bytes()):
            accelerator.wait_for_everyone()
            if self.sharded:  # the full weights only (gathered from every process): not resumable
                model = unsharded_copy(self.model, accelerator.is_main_process)
            else:  # model, optimiser, scheduler, RNG states of every process
                accelerator.save_state(str(self.output_dir / staging_name))
                model = accelerator.unwrap_model(self.model)
            accelerator.wait_for_everyone()
            if accelerator.is_main_process:
                staging = self.output_dir / staging_name
                model.save_pretrained(staging)  # a loadable folder, for averaging
                (staging / "loop_state.json").write_text(json.dumps({
                    "step": self.step, "log_history": self.log_history, "resumable": not self.sharded}))
        if accelerator.is_main_process:
            for old in list_checkpoints(self.output_dir)[: -self.keep_last]:
                atomic_remove(old)
        accelerator.wait_for_everyone()
        return folder


def build(model_args, data_args, args, loop_args, accelerator):
    """Data, tokenizer (the main process fetches and trains first, the others read its results), model."""
    output_dir = Path(loop_args.output_dir)
    try:  # the main process fetches first (hf_vanilla.training.policies.main_process_first)
        raw = data_args.load("translation", args.max_train_samples, args.max_eval_samples, args.max_predict_samples)
    except (CorpusError, ValueError, FileNotFoundError) as error:
        raise UsageError(error) from None
    resuming = bool(loop_args.resume_from_checkpoint)
    # a resumed run must train on what its checkpoint was trained on
    check_run(output_dir, run_settings(model_args, data_args, raw, ["source", "target"]), resuming, args, loop_args,
              main_process=accelerator.is_main_process)
    # trained and saved by the main process, read by the others
    tokenizer = run_tokenizer(model_args, list(raw["train"]["source"]) + list(raw["train"]["target"]), output_dir,
                              resuming)
    with main_process_first():  # one process writes the tokenized cache, the others read it
        train = raw["train"].map(
            translation_features(tokenizer, model_args.max_source_length, model_args.max_target_length),
            batched=True, remove_columns=raw["train"].column_names, desc="tokenizing",
        )
    if model_args.model_name_or_path:
        model = VanillaTransformerForConditionalGeneration.from_pretrained(model_args.model_name_or_path)
    else:
        model = VanillaTransformerForConditionalGeneration(model_args.config(tokenizer))
    fit_to_model(tokenizer, model)
    paper_generation_settings(model, args.num_beams, args.length_penalty)
    return raw, tokenizer, train, model


def make_accelerator(loop_args):
    has_accelerator = torch.accelerator.is_available() if hasattr(torch, "accelerator") else torch.cuda.is_available()
    mixed_precision = loop_args.mixed_precision or (
        "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no")
    # cpu=True is what makes Accelerate join a multi-process CPU run (gloo) under torchrun or accelerate launch
    return Accelerator(gradient_accumulation_steps=loop_args.gradient_accumulation_steps,
                       mixed_precision=mixed_precision, cpu=not has_accelerator)


def wants_sharding(loop_args, accelerator):
    """--fsdp, or an Accelerate FSDP config that Accelerate itself did not act on (CPU processes)."""
    from accelerate.utils import DistributedType

    configured = os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"
    if accelerator.distributed_type == DistributedType.FSDP:
        return False  # Accelerate shards (GPUs)
    return (loop_args.fsdp or configured) and accelerator.num_processes > 1


def main(argv=None):
    parser = HfArgumentParser((ModelArguments, DataArguments, TranslationArguments, LoopArguments),
                              description=__doc__)
    model_args, data_args, args, loop_args = parse_arguments(parser, argv)
    data_args.default_to("libreoffice-help", "en-fr")
    accelerator = make_accelerator(loop_args)
    if loop_args.fsdp and accelerator.num_processes == 1:
        parser.error("--fsdp True: sharding needs several processes; launch with torchrun --nproc_per_node N (or "
                     "accelerate launch --num_processes N)")
    logging.basicConfig(format=f"%(asctime)s rank {accelerator.process_index} %(levelname)s: %(message)s",
                        level=logging.INFO if accelerator.is_main_process else logging.WARNING)
    transformers.utils.logging.set_verbosity_warning()
    try:  # one run per output folder; the lock goes with the process
        lock = claim_output_dir(loop_args.output_dir, args.overwrite_output_dir, loop_args.resume_from_checkpoint,
                                main_process=accelerator.is_main_process,
                                inputs=run_inputs(model_args, data_args, args))
        if model_args.model_name_or_path:
            check_model_folder(model_args.model_name_or_path)
    except OutputFolderRefused as error:
        return report(error, "output_dir")
    except (FileNotFoundError, ValueError) as error:
        return report(error, "model_name_or_path")
    with lock:
        try:
            return train(model_args, data_args, args, loop_args, accelerator)
        except UsageError as error:  # refused before expensive work
            return report(error)
        except NoSpaceError as error:
            if accelerator.is_main_process:
                print(f"\nerror: {error}.{resume_hint(loop_args.output_dir)}", file=sys.stderr)
            return 1


def train(model_args, data_args, args, loop_args, accelerator):
    set_seed(loop_args.seed)
    stop = StopRequest()
    raw, tokenizer, train_data, model = build(model_args, data_args, args, loop_args, accelerator)
    learning_rate = loop_args.learning_rate or paper_peak_learning_rate(model.config.d_model)
    lengths = padded_sizes(train_data)
    # its own generator: starting an epoch then draws no number from the global RNG that dropout uses, so a run
    # resumed mid-epoch continues the same random stream as one left alone
    loader = DataLoader(train_data.remove_columns("length"), collate_fn=DataCollatorForSeq2Seq(tokenizer, model=model),
                        batch_sampler=TokenBudgetBatchSampler(lengths, loop_args.max_tokens, loop_args.seed),
                        generator=torch.Generator().manual_seed(loop_args.seed))
    if wants_sharding(loop_args, accelerator):
        shard(model)  # before the optimiser is built: it must hold the shards, not the full parameters
        print(f"rank {accelerator.process_index} holds {100 * local_fraction(model):.0f}% of the parameters (FSDP2)",
              flush=True)
    if loop_args.torch_compile:
        model.compile()  # in place: parameter names, saving and unwrapping stay as they are
    # fused: one kernel for the whole update, on GPUs (on CPU the default multi-tensor Adam is as fast)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate, betas=ADAM_BETAS, eps=ADAM_EPSILON,
                                 fused=accelerator.device.type == "cuda")
    scheduler = get_inverse_sqrt_schedule(optimizer, num_warmup_steps=loop_args.warmup_steps)
    # prepared, the scheduler is saved by save_state with the optimiser (a tensor file: no pickle to load back)
    if is_sharded(model):  # sharded by FSDP2 already: Accelerate must not wrap it in DDP as well
        optimizer, loader, scheduler = accelerator.prepare(optimizer, loader, scheduler)
    else:
        model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    loop = Loop(accelerator, model, optimizer, scheduler, loop_args, keep_last=max(args.average_last_n, 1))
    if loop_args.resume_from_checkpoint:
        loop.resume(loop_args.resume_from_checkpoint)
    steps_per_epoch = max(len(loader) // loop_args.gradient_accumulation_steps, 1)
    max_steps = loop_args.max_steps if loop_args.max_steps > 0 else steps_per_epoch * loop_args.num_train_epochs
    logger.info("%d optimiser steps, %d batches per epoch and process, peak lr %.2e, mixed precision: %s, %d processes",
                max_steps, len(loader), learning_rate, accelerator.mixed_precision, accelerator.num_processes)
    try:
        run_loop(loop, loader, stop, max_steps, steps_per_epoch)
    except NonFiniteLossError as error:
        if accelerator.is_main_process:
            print(f"\nerror: {error}", file=sys.stderr)
        return 1
    if stop.requested:
        return stopped(loop)

    logger.info("rank %d finished training at step %d", accelerator.process_index, loop.step)
    accelerator.wait_for_everyone()
    final = (unsharded_copy(model, accelerator.is_main_process) if loop.sharded else accelerator.unwrap_model(model))
    if accelerator.is_main_process:
        finish_translation_run(final, TranslationRun(
            tokenizer=tokenizer, raw=raw, data_args=data_args, model_args=model_args, args=args,
            output_dir=loop_args.output_dir, log_history=loop.log_history,
            eval_batch_size=loop_args.per_device_eval_batch_size, training=training_summary(loop, learning_rate),
            steps=loop.step))
    accelerator.wait_for_everyone()
    accelerator.end_training()
    print(f"rank {accelerator.process_index} finished", flush=True)
    return 0


def run_loop(loop, loader, stop, max_steps, steps_per_epoch):
    accumulation = loop.args.gradient_accumulation_steps
    progress = tqdm(total=max_steps, initial=loop.step, desc="training",
                    disable=not loop.accelerator.is_local_main_process)
    loop.model.train()
    while loop.step < max_steps and not stop.requested:
        loader.set_epoch(loop.step // steps_per_epoch)
        batches = loader
        if loop.step % steps_per_epoch:  # a resumed run continues the epoch where it stopped
            batches = loop.accelerator.skip_first_batches(loader, (loop.step % steps_per_epoch) * accumulation)
        for batch in batches:
            if not loop.train_on(batch):
                continue
            loop.step += 1
            progress.update(1)
            if loop.step % loop.args.logging_steps == 0:
                progress.set_postfix(loss=f"{loop.log():.3f}")
            if loop.step % loop.args.save_steps == 0 or loop.step == max_steps:
                loop.save_checkpoint()
            if loop.step >= max_steps or stop.requested:
                break
    progress.close()


def stopped(loop):
    """Ctrl-C or SIGTERM: one checkpoint at the step reached (unless the schedule just wrote it), and how to resume."""
    checkpoint = loop.output_dir / f"checkpoint-{loop.step}"
    if not checkpoint.exists():
        loop.save_checkpoint()
    if loop.accelerator.is_main_process:
        print(f"\nstopped at step {loop.step}.{resume_hint(loop.output_dir)}", file=sys.stderr)
    return 130


def training_summary(loop, learning_rate):
    args, accelerator = loop.args, loop.accelerator
    return (f"{loop.step} steps of a plain Accelerate loop on {accelerator.num_processes} process(es), batches of at "
            f"most {args.max_tokens} padded tokens per process x {args.gradient_accumulation_steps} accumulation "
            f"steps, Adam ({ADAM_BETAS[0]}, {ADAM_BETAS[1]}, {ADAM_EPSILON:g}), peak lr {learning_rate:.2e} after "
            f"{args.warmup_steps} warm-up steps, "
            f"inverse-square-root decay, label smoothing {args.label_smoothing}, {accelerator.mixed_precision} "
            f"mixed precision.")


if __name__ == "__main__":
    sys.exit(main())
