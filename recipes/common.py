"""What the recipes share: model arguments, the tokenizer, batched translation, output folders and model cards."""

import json
import os
import random
import shlex
import shutil
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoTokenizer, TrainerCallback
from transformers.trainer_pt_utils import LengthGroupedSampler

from hf_vanilla import PRESETS, VanillaTransformerConfig
from hf_vanilla.checkpoints import list_checkpoints
from hf_vanilla.metrics import translation_scores
from hf_vanilla.modeling_vanilla_transformer import check_model_folder
from hf_vanilla.tokenization import train_bpe_tokenizer


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
    max_source_length: int = field(default=128, metadata={"help": "Longer sources are truncated."})
    max_target_length: int = field(default=128, metadata={"help": "Longer targets are truncated."})
    attn_implementation: str = field(default="sdpa", metadata={"help": "sdpa or eager."})

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise ValueError(f"Unknown preset {self.preset!r}: choose one of {', '.join(PRESETS)}.")
        if self.attn_implementation not in ("sdpa", "eager"):
            raise ValueError(f"attn_implementation must be sdpa or eager, got {self.attn_implementation!r}.")

    def config(self, tokenizer, **extra):
        """The preset, sized to the tokenizer, with this run's overrides."""
        overrides = {"norm_first": self.norm_first, **({"dropout": self.dropout} if self.dropout is not None else {})}
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


def parse_arguments(parser, argv):
    """HfArgumentParser's dataclasses, with the arguments' own validation errors reported as usage errors."""
    try:
        return parser.parse_args_into_dataclasses(args=argv)
    except ValueError as error:
        parser.error(str(error))


def check_output_dir(output_dir, overwrite, resuming):
    """Refuse to write into a non-empty output folder unless asked to overwrite it or to resume from it."""
    path = Path(output_dir)
    if path.is_dir() and any(path.iterdir()) and not overwrite and not resuming:
        raise ValueError(
            f"The output folder {output_dir} exists and is not empty: pass --overwrite_output_dir to replace its "
            f"contents, --resume_from_checkpoint to continue its run, or choose another --output_dir."
        )


def get_tokenizer(model_args, texts=None, output_dir=None):
    """The given tokenizer, or a joint BPE trained on `texts` (source and target together, one vocabulary)."""
    name = model_args.tokenizer_name or model_args.model_name_or_path
    if name:
        return load_tokenizer(name)
    print(f"training a joint BPE tokenizer of {model_args.vocab_size} tokens", file=sys.stderr)
    tokenizer = train_bpe_tokenizer(texts, vocab_size=model_args.vocab_size)
    if output_dir:
        tokenizer.save_pretrained(output_dir)
    return tokenizer


def load_tokenizer(folder):
    """AutoTokenizer from a saved folder, with a clear error when the folder is missing or holds no tokenizer."""
    path = Path(folder)
    if not path.is_dir():
        raise FileNotFoundError(f"No tokenizer folder at {folder}: give a folder written by save_pretrained.")
    if not (path / "tokenizer.json").is_file() and not (path / "tokenizer_config.json").is_file():
        raise FileNotFoundError(f"{folder} holds no tokenizer (no tokenizer.json): give the output folder of a "
                                f"training run, or a folder written by tokenizer.save_pretrained.")
    return AutoTokenizer.from_pretrained(folder)


def checked_tokenizer(model, input_path=None):
    """The tokenizer of a saved --model folder, for the command-line tools, after checking --model and --input;
    a problem exits with status 2 and a usage line."""
    try:
        check_model_folder(model, model_type=None)
        tokenizer = load_tokenizer(model)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: --model: {error}", file=sys.stderr)
        sys.exit(2)
    check_input(input_path)
    return tokenizer


def check_input(input_path):
    """--input of the command-line tools: a text file when given (stdin otherwise); exits with status 2 if missing."""
    if input_path and not Path(input_path).is_file():
        print(f"error: --input {input_path} does not exist; give a text file with one text a line", file=sys.stderr)
        sys.exit(2)


def translation_features(tokenizer, max_source_length, max_target_length):
    """A batched `map` function: source -> input_ids/attention_mask, target -> labels, plus lengths for batching."""

    def tokenize(rows):
        features = tokenizer(rows["source"], max_length=max_source_length, truncation=True)
        targets = tokenizer(text_target=rows["target"], max_length=max_target_length, truncation=True)
        features["labels"] = targets["input_ids"]
        features["length"] = [len(s) + len(t) for s, t in zip(features["input_ids"], features["labels"])]
        return features

    return tokenize


def paper_generation_settings(model, num_beams, length_penalty, longest_source):
    """Beam 4 and length penalty 0.6 as the paper; the per-batch "input length + 50" limit is set by `translate`."""
    generation_config = model.generation_config
    generation_config.num_beams = num_beams
    generation_config.length_penalty = length_penalty
    generation_config.early_stopping = True
    # plain `model.generate` calls get a static limit: the paper's "input length + 50" for the longest training
    # source (max_length counts the decoder start token)
    generation_config.max_length = min(longest_source + 50, model.config.max_position_embeddings - 1) + 1
    return generation_config


@torch.no_grad()
def translate(model, tokenizer, texts, batch_size=64, num_beams=None, max_source_length=None, extra_length=50):
    """Translate `texts` in batches of similar length; each batch may output up to its input length + 50 tokens."""
    model.eval()
    texts = list(texts)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    outputs = [None] * len(texts)
    limit = model.config.max_position_embeddings - 1
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        batch = tokenizer([texts[i] for i in chunk], return_tensors="pt", padding=True, truncation=True,
                          max_length=max_source_length or limit).to(model.device)
        generated = model.generate(
            **batch,
            num_beams=num_beams or model.generation_config.num_beams,
            max_length=min(batch["input_ids"].shape[1] + extra_length, limit) + 1,  # + the decoder start token
        )
        for i, text in zip(chunk, tokenizer.batch_decode(generated, skip_special_tokens=True)):
            outputs[i] = text.strip()
    return outputs


def evaluate_translation(model, tokenizer, dataset, batch_size=64, num_beams=None, max_source_length=None):
    """BLEU and chrF (with sacreBLEU signatures) of the model's translations of `dataset`'s sources."""
    predictions = translate(model, tokenizer, dataset["source"], batch_size, num_beams, max_source_length)
    return {**translation_scores(predictions, list(dataset["target"])), "predictions": predictions}


class SaveOnInterrupt(TrainerCallback):
    """Ctrl-C (or SIGTERM) finishes the current step, saves a checkpoint and stops, so the run can be resumed."""

    def __init__(self):
        self.interrupted = False
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._request_stop)

    def _request_stop(self, signum, frame):
        if self.interrupted:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self.interrupted = True
        print("\ninterrupted: saving a checkpoint after this step (Ctrl-C again to stop at once)", file=sys.stderr)

    def on_step_end(self, args, state, control, **kwargs):
        if self.interrupted:
            control.should_save = True
            control.should_training_stop = True
        return control


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; the step that produced it was not applied."""


def non_finite_loss_error(loss, step, output_dir):
    checkpoints = list_checkpoints(output_dir)
    last = (f"the last good checkpoint is {checkpoints[-1]}; resume from it with --resume_from_checkpoint "
            f"{checkpoints[-1]} after the change" if checkpoints else "no checkpoint had been saved yet")
    return NonFiniteLossError(
        f"The training loss is {loss} at step {step}: training stopped before this step changed the weights, and no "
        f"checkpoint was written from it; {last}. Lower the learning rate (--learning_rate) or look for broken "
        f"examples in the data."
    )


class EpochSeededLengthGroupedSampler(LengthGroupedSampler):
    """LengthGroupedSampler whose shuffle is a function of (seed, epoch) alone.

    The stock sampler draws from the global RNG when an epoch starts; resuming in the middle of an epoch, Trainer
    restores that RNG only after the draw, so the resumed epoch would see its examples in another order."""

    def __init__(self, batch_size, lengths, seed):
        super().__init__(batch_size, lengths=lengths, generator=torch.Generator())
        self.seed = seed
        self.set_epoch(0)

    def set_epoch(self, epoch):
        self.generator.manual_seed(self.seed + int(epoch))


def token_budget_batches(lengths, max_tokens, seed):
    """Index lists of similar-length examples whose padded size (count x longest) stays within `max_tokens`.

    Examples are sorted by length (with random tie-breaking) and cut greedily; the batch order is shuffled.
    """
    rng = random.Random(seed)
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], rng.random()))
    batches, batch, longest = [], [], 0
    for index in order:
        longest_if_added = max(longest, lengths[index])
        if batch and longest_if_added * (len(batch) + 1) > max_tokens:
            batches.append(batch)
            batch, longest_if_added = [], lengths[index]
        batch.append(index)
        longest = longest_if_added
    if batch:
        batches.append(batch)
    rng.shuffle(batches)
    return batches


def padded_sizes(dataset):
    """Padded size of each translation example: its longer side, counted twice (source and target batches pad
    separately). What a token budget is counted in."""
    return [2 * max(len(s), len(t)) for s, t in zip(dataset["input_ids"], dataset["labels"])]


class TokenBudgetBatchSampler(torch.utils.data.Sampler):
    """The paper's batching: batches of about `max_tokens` padded tokens (source + target), cut anew for each epoch
    from (seed, epoch) alone, so a run resumed mid-epoch sees the same batches as one left alone."""

    def __init__(self, lengths, max_tokens, seed):
        self.lengths, self.max_tokens, self.seed = list(lengths), max_tokens, seed
        self.set_epoch(0)

    def set_epoch(self, epoch):
        self.batches = token_budget_batches(self.lengths, self.max_tokens, self.seed + int(epoch))

    def __iter__(self):
        return iter(self.batches)

    def __len__(self):
        return len(self.batches)


class ReliableTrainerMixin:
    """Three guards for the recipes' Trainer subclasses (list it before the Trainer class).

    - Checkpoints are written aside, in `.checkpoint-N.partial`, and renamed into place once complete: Trainer writes
      `checkpoint-N` in place, so a crash mid-save would leave a half-written folder that resuming picks up.
    - A NaN or infinite loss stops training before the optimiser applies it, naming the last good checkpoint.
    - Length-grouped batches are shuffled by (seed, epoch), so a resumed run sees the same batches as one left alone.
    """

    _staging_dir = None

    def _get_train_sampler(self, *args, **kwargs):
        sampler = super()._get_train_sampler(*args, **kwargs)
        if type(sampler) is LengthGroupedSampler and sampler.generator is None:
            seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
            return EpochSeededLengthGroupedSampler(sampler.batch_size, sampler.lengths, seed)
        return sampler

    def _get_output_dir(self, trial):
        return self._staging_dir or super()._get_output_dir(trial)

    def _save_checkpoint(self, model, trial):
        run_dir = Path(super()._get_output_dir(trial))
        name = f"checkpoint-{self.state.global_step}"
        staging, final = run_dir / f".{name}.partial", run_dir / name
        if self.args.should_save and staging.exists():
            shutil.rmtree(staging)  # left by a run that crashed while saving
        self.accelerator.wait_for_everyone()
        self._staging_dir = str(staging)
        try:
            super()._save_checkpoint(model, trial)  # writes <staging>/checkpoint-N; every process adds its files
        except BaseException:
            if self.args.should_save:
                shutil.rmtree(staging, ignore_errors=True)
            raise
        finally:
            self._staging_dir = None
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            if self.state.best_model_checkpoint == str(staging / name):  # Trainer recorded the staging path
                self.state.best_model_checkpoint = str(final)
                self.state.save_to_json(str(staging / name / "trainer_state.json"))
            if final.exists():
                shutil.rmtree(final)
            os.replace(staging / name, final)  # the moment the checkpoint appears, it is complete
            staging.rmdir()
            self._rotate(run_dir)
        self.accelerator.wait_for_everyone()

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
        if not torch.isfinite(loss).all():  # before the optimiser step that would spread it into the weights
            raise non_finite_loss_error(loss.item(), self.state.global_step + 1, self.args.output_dir)
        return loss


def command_line():
    """The exact command that ran, for the model card."""
    module = Path(sys.argv[0]).with_suffix("").as_posix().replace("/", ".")
    module = module[module.index("recipes.") :] if "recipes." in module else module
    return "python -m " + " ".join([module] + [shlex.quote(a) for a in sys.argv[1:]])


def write_json(path, data):
    Path(path).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def write_model_card(output_dir, title, sections):
    """`README.md` of a saved model folder: a title and (heading, markdown) sections."""
    lines = [f"# {title}", ""]
    for heading, body in sections:
        lines += [f"## {heading}", "", body.strip(), ""]
    (Path(output_dir) / "README.md").write_text("\n".join(lines))


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
