"""Train a vanilla Transformer for translation with a plain Accelerate loop and token-budget batches.

    python -m recipes.train_translation_accelerate --max_steps 2000
    accelerate launch -m recipes.train_translation_accelerate --max_tokens 8192
    torchrun --nproc_per_node 2 -m recipes.train_translation_accelerate --max_steps 100

The paper batches ~25,000 source + 25,000 target tokens over 8 GPUs; here a batch holds at most --max_tokens padded
tokens per process (source + target, 4096 by default, scaled to a CPU), and --gradient_accumulation_steps multiplies
it. Everything else is the Seq2SeqTrainer recipe's (`recipes.train_translation`): the same optimiser, schedule,
label smoothing, checkpoint averaging, evaluation and output folder. Multi-GPU, FSDP or DeepSpeed come from
Accelerate's own config (`accelerate config`); this file has no distributed code of its own.
"""

import json
import logging
import shutil
import signal
import sys
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
from hf_vanilla.checkpoints import list_checkpoints
from recipes.common import (
    ModelArguments,
    TokenBudgetBatchSampler,
    check_output_dir,
    command_line,
    get_tokenizer,
    non_finite_loss_error,
    padded_sizes,
    paper_generation_settings,
    parse_arguments,
    translation_features,
)
from recipes.data_args import DataArguments
from recipes.train_translation import TranslationArguments, finish

logger = logging.getLogger(__name__)


@dataclass
class LoopArguments:
    output_dir: str = field(default="outputs/translation-accelerate", metadata={"help": "Where everything goes."})
    max_tokens: int = field(default=4096, metadata={"help": "Padded source + target tokens per batch and process."})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "Batches per optimiser step."})
    learning_rate: float | None = field(default=None, metadata={"help": "Peak lr; default d_model^-0.5 * 4000^-0.5."})
    warmup_steps: int = field(default=400, metadata={"help": "Linear warm-up steps (the paper: 4000)."})
    label_smoothing: float = field(default=0.1, metadata={"help": "The paper's epsilon_ls."})
    max_steps: int = field(default=-1, metadata={"help": "Optimiser steps in all; -1: use --num_train_epochs."})
    num_train_epochs: int = field(default=5, metadata={"help": "Passes over the training data."})
    save_steps: int = field(default=500, metadata={"help": "Save a resumable checkpoint every N optimiser steps."})
    logging_steps: int = field(default=50, metadata={"help": "Log the loss every N optimiser steps."})
    mixed_precision: str | None = field(
        default=None, metadata={"help": "no, bf16 or fp16; default bf16 where the GPU supports it, else fp32."}
    )
    seed: int = field(default=42)
    torch_compile: bool = field(default=False, metadata={"help": "Compile the model's forward (torch.compile)."})
    resume_from_checkpoint: str | None = field(default=None, metadata={"help": "A checkpoint-<step> folder."})
    per_device_eval_batch_size: int = field(default=64)


def main(argv=None):
    parser = HfArgumentParser((ModelArguments, DataArguments, TranslationArguments, LoopArguments),
                              description=__doc__)
    model_args, data_args, args, loop = parse_arguments(parser, argv)
    data_args.default_to("libreoffice-help", "en-fr")
    has_accelerator = torch.accelerator.is_available() if hasattr(torch, "accelerator") else torch.cuda.is_available()
    mixed_precision = loop.mixed_precision or (
        "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no")
    # cpu=True is what makes Accelerate join a multi-process CPU run (gloo) under torchrun or accelerate launch
    accelerator = Accelerator(gradient_accumulation_steps=loop.gradient_accumulation_steps,
                              mixed_precision=mixed_precision, cpu=not has_accelerator)
    logging.basicConfig(format=f"%(asctime)s rank {accelerator.process_index} %(levelname)s: %(message)s",
                        level=logging.INFO if accelerator.is_main_process else logging.WARNING)
    transformers.utils.logging.set_verbosity_warning()
    if accelerator.is_main_process:
        check_output_dir(loop.output_dir, args.overwrite_output_dir, loop.resume_from_checkpoint)
    set_seed(loop.seed)
    output_dir = Path(loop.output_dir)

    # data and tokenizer: the main process fetches and trains first, the others then read its results
    with accelerator.main_process_first():
        raw = data_args.load("translation", args.max_train_samples, args.max_eval_samples,
                             args.max_predict_samples)
        if accelerator.is_main_process:
            output_dir.mkdir(parents=True, exist_ok=True)
            tokenizer = get_tokenizer(model_args, list(raw["train"]["source"]) + list(raw["train"]["target"]),
                                      output_dir)
        else:
            model_args.tokenizer_name = model_args.tokenizer_name or model_args.model_name_or_path or str(output_dir)
            tokenizer = get_tokenizer(model_args)
        train = raw["train"].map(
            translation_features(tokenizer, model_args.max_source_length, model_args.max_target_length),
            batched=True, remove_columns=raw["train"].column_names, desc="tokenizing",
        )

    if model_args.model_name_or_path:
        model = VanillaTransformerForConditionalGeneration.from_pretrained(model_args.model_name_or_path)
    else:
        model = VanillaTransformerForConditionalGeneration(model_args.config(tokenizer))
    learning_rate = loop.learning_rate or model.config.d_model**-0.5 * 4000**-0.5
    paper_generation_settings(model, args.num_beams, args.length_penalty, max(len(ids) for ids in train["input_ids"]))

    lengths = padded_sizes(train)
    collate = DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100)
    train = train.remove_columns("length")
    # its own generator: starting an epoch then draws no number from the global RNG that dropout uses, so a run
    # resumed mid-epoch continues the same random stream as one left alone
    loader = DataLoader(train, batch_sampler=TokenBudgetBatchSampler(lengths, loop.max_tokens, loop.seed),
                        collate_fn=collate, generator=torch.Generator().manual_seed(loop.seed))
    if loop.torch_compile:
        model.compile()  # in place: parameter names, saving and unwrapping stay as they are
    # fused: one kernel for the whole update, on GPUs (on CPU the default multi-tensor Adam is as fast)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate, betas=(0.9, 0.98), eps=1e-9,
                                 fused=accelerator.device.type == "cuda")
    scheduler = get_inverse_sqrt_schedule(optimizer, num_warmup_steps=loop.warmup_steps)
    # prepared, the scheduler is saved by save_state with the optimiser (a tensor file: no pickle to load back)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    steps_per_epoch = max(len(loader) // loop.gradient_accumulation_steps, 1)
    max_steps = loop.max_steps if loop.max_steps > 0 else steps_per_epoch * loop.num_train_epochs

    step, log_history = 0, []
    if loop.resume_from_checkpoint:
        accelerator.load_state(loop.resume_from_checkpoint)
        saved = json.loads((Path(loop.resume_from_checkpoint) / "loop_state.json").read_text())
        step, log_history = saved["step"], saved["log_history"]
        logger.info("resumed from %s at step %d", loop.resume_from_checkpoint, step)

    interrupted = []
    signal.signal(signal.SIGINT, lambda *a: interrupted.append(True))
    signal.signal(signal.SIGTERM, lambda *a: interrupted.append(True))

    def save_checkpoint():
        """Write aside, then rename: a crash mid-save leaves only a hidden partial folder, never a checkpoint-N
        that resuming would pick up half-written."""
        folder = output_dir / f"checkpoint-{step}"
        staging = output_dir / f".{folder.name}.partial"
        if accelerator.is_main_process and staging.exists():
            shutil.rmtree(staging)  # left by a run that crashed while saving
        accelerator.wait_for_everyone()
        accelerator.save_state(str(staging))  # model, optimiser, scheduler, RNG states of every process
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            accelerator.unwrap_model(model).save_pretrained(staging)  # weights as a loadable folder, for averaging
            (staging / "loop_state.json").write_text(json.dumps({"step": step, "log_history": log_history}))
            if folder.exists():
                shutil.rmtree(folder)
            staging.rename(folder)
            for old in list_checkpoints(output_dir)[: -max(args.average_last_n, 1)]:
                shutil.rmtree(old)
        accelerator.wait_for_everyone()
        return folder

    logger.info("%d optimiser steps, %d batches per epoch and process, peak lr %.2e, mixed precision: %s, %d processes",
                max_steps, len(loader), learning_rate, mixed_precision, accelerator.num_processes)
    progress = tqdm(total=max_steps, initial=step, desc="training", disable=not accelerator.is_local_main_process)
    model.train()
    running, counted = 0.0, 0
    while step < max_steps and not interrupted:
        loader.set_epoch(step // steps_per_epoch)
        batches = loader
        if loop.resume_from_checkpoint and step % steps_per_epoch:  # continue the epoch where it stopped
            batches = accelerator.skip_first_batches(loader, (step % steps_per_epoch) * loop.gradient_accumulation_steps)
        for batch in batches:
            with accelerator.accumulate(model):
                labels = batch.pop("labels")
                logits = model(**batch).logits
                loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), labels.view(-1),
                                       ignore_index=-100, label_smoothing=loop.label_smoothing)
                running, counted = running + loss.detach().float(), counted + 1
                # a NaN or inf since the last update stays in the running sum: check it once per update, on every
                # process together, before the optimiser step that would spread it into the weights
                if accelerator.sync_gradients:
                    sums = accelerator.gather(running)
                    if not torch.isfinite(sums).all():
                        error = non_finite_loss_error(sums.tolist(), step + 1, output_dir)
                        if accelerator.is_main_process:
                            print(f"\nerror: {error}", file=sys.stderr)
                        return 1
                accelerator.backward(loss)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            if not accelerator.sync_gradients:
                continue
            step += 1
            progress.update(1)
            if step % loop.logging_steps == 0:
                mean_loss = accelerator.gather(running / counted).mean().item()
                log_history.append({"step": step, "loss": mean_loss, "learning_rate": scheduler.get_last_lr()[0]})
                progress.set_postfix(loss=f"{mean_loss:.3f}")
                running, counted = 0.0, 0
            if step % loop.save_steps == 0 or step == max_steps:
                save_checkpoint()
            if step >= max_steps or interrupted:
                break
    progress.close()
    if interrupted:  # one checkpoint at the step reached, unless the schedule just wrote it
        checkpoint = output_dir / f"checkpoint-{step}"
        if not checkpoint.exists():
            save_checkpoint()
        if accelerator.is_main_process:
            print(f"\nstopped at step {step}; checkpoint saved in {checkpoint}\nresume with: {command_line()} "
                  f"--resume_from_checkpoint {checkpoint}", file=sys.stderr)
        return 130

    logger.info("rank %d finished training at step %d", accelerator.process_index, step)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        model = accelerator.unwrap_model(model)
        finish(model, tokenizer, raw, data_args, model_args, args, output_dir, log_history, step,
               batch_size=loop.per_device_eval_batch_size,
               training=f"{step} steps of a plain Accelerate loop on {accelerator.num_processes} process(es), "
                        f"batches of at most {loop.max_tokens} padded tokens per process x "
                        f"{loop.gradient_accumulation_steps} accumulation steps, Adam (0.9, 0.98, 1e-9), "
                        f"peak lr {learning_rate:.2e} after {loop.warmup_steps} warm-up steps, inverse-square-root "
                        f"decay, label smoothing {loop.label_smoothing}, {mixed_precision} mixed precision.")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    print(f"rank {accelerator.process_index} finished", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
