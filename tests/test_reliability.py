"""Faults lose nothing: SIGKILL then resume is exact, a crash mid-save leaves the previous checkpoint, a NaN loss stops
training with the last good checkpoint kept; numerics stay finite; nothing unpickles weights.

Faults are injected into real recipe processes through a `sitecustomize` module on PYTHONPATH (Python imports it at
start-up), so the recipes run unmodified.
"""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_recipes import REPO, TRANSLATION_FLAGS, run_module
from transformers.trainer_utils import get_last_checkpoint

from hf_vanilla import (
    VanillaTransformerConfig,
    VanillaTransformerForConditionalGeneration,
    VanillaTransformerForSequenceClassification,
)

RECIPES = {
    # module, extra flags, checkpoint weights file
    "trainer": ("recipes.train_translation", ["--eval_strategy", "no"]),
    "accelerate": ("recipes.train_translation_accelerate", ["--max_tokens", "600"]),
    "trainer-token-budget": ("recipes.train_translation", ["--eval_strategy", "no", "--max_tokens", "600"]),
}
QUICK = ["--max_eval_samples", "4", "--max_predict_samples", "4", "--average_last_n", "1"]


def recipe_args(data, out, steps, save_steps):
    return ["--train_file", data, "--output_dir", out, *TRANSLATION_FLAGS, *QUICK, "--max_steps", steps,
            "--save_steps", save_steps]


def fault_env(tmp_path, code):
    """An environment whose Python processes run `code` at start-up (before the recipe is imported)."""
    folder = tmp_path / "faults"
    folder.mkdir(exist_ok=True)
    (folder / "sitecustomize.py").write_text(textwrap.dedent(code))
    return {"PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])}


def weights(checkpoint):
    return load_file(str(Path(checkpoint) / "model.safetensors"))


def max_difference(a, b):
    assert a.keys() == b.keys()
    return max((a[name].double() - b[name].double()).abs().max().item() for name in a)


# ---- exact resumption after SIGKILL ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", RECIPES)
def test_sigkill_then_resume_ends_with_the_same_weights(kind, tmp_path, translation_csv):
    module, extra = RECIPES[kind]
    steps, save_steps = 60, 10
    reference = tmp_path / "reference"
    assert run_module(module, *recipe_args(translation_csv, reference, steps, save_steps), *extra).returncode == 0

    killed = tmp_path / "killed"
    args = [*recipe_args(translation_csv, killed, steps, save_steps), *extra]
    process = subprocess.Popen([sys.executable, "-m", module, *map(str, args)], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    while time.time() < deadline and not (killed / f"checkpoint-{save_steps}").exists():
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    checkpoint = get_last_checkpoint(str(killed))  # what a user resumes from: the newest complete checkpoint
    assert checkpoint is not None and int(checkpoint.rsplit("-", 1)[1]) < steps, "the run ended before the kill"

    resumed = run_module(module, *args, "--resume_from_checkpoint", checkpoint)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    final = f"checkpoint-{steps}"
    assert max_difference(weights(reference / final), weights(killed / final)) <= 1e-6


# ---- a crash in the middle of a save -----------------------------------------------------------------------------

# the Nth safetensors write of the process dies half-way through: the file is half there, the process is gone
CRASH_ON_SAVE = """
    import os, safetensors.torch as st
    _save, _calls = st.save_file, [0]
    def save_file(tensors, filename, *args, **kwargs):
        _calls[0] += 1
        if _calls[0] == {n}:
            _save(tensors, filename, *args, **kwargs)
            with open(filename, "r+b") as handle:
                handle.truncate(os.path.getsize(filename) // 2)
            os._exit(137)
        return _save(tensors, filename, *args, **kwargs)
    st.save_file = save_file
"""


# Trainer writes one safetensors file per checkpoint; the Accelerate loop two (save_state, then save_pretrained):
# crash in the second checkpoint, after its first file
@pytest.mark.parametrize("kind, crash_on", [("trainer", 2), ("accelerate", 3)])
def test_crash_while_saving_leaves_the_previous_checkpoint(kind, crash_on, tmp_path, translation_csv):
    module, extra = RECIPES[kind]
    out = tmp_path / "run"
    args = [*recipe_args(translation_csv, out, 20, 5), *extra]
    crashed = run_module(module, *args, env=fault_env(tmp_path, CRASH_ON_SAVE.format(n=crash_on)))
    assert crashed.returncode == 137, crashed.stderr[-3000:]

    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-5"]  # no half-written checkpoint-10
    assert [p.name for p in out.glob(".checkpoint-10.partial")]  # it stayed aside
    assert get_last_checkpoint(str(out)).endswith("checkpoint-5")
    model = VanillaTransformerForConditionalGeneration.from_pretrained(out / "checkpoint-5")
    assert all(torch.isfinite(p).all() for p in model.parameters())

    resumed = run_module(module, *args, "--resume_from_checkpoint", out / "checkpoint-5")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-20"]
    assert not list(out.glob(".checkpoint-*.partial"))  # the leftover was cleared when step 10 was saved again


# ---- a full disk at a checkpoint -------------------------------------------------------------------------------

# the disk fills while the second checkpoint writes the file `name`: as on a real full disk, an OSError ENOSPC, or
# torch's zip writer's "unexpected pos"; half a file is left behind
DISK_FULL_ON_SAVE = """
    import errno, os, safetensors.torch as st, torch
    _save_file, _save = st.save_file, torch.save
    def full(filename, write):
        if ".checkpoint-10.partial" in str(filename) and os.path.basename(filename) == "{name}":
            with open(filename, "wb") as handle:
                handle.write(b"half")
            {raise_}
        return write()
    st.save_file = lambda tensors, filename, *a, **k: full(filename, lambda: _save_file(tensors, filename, *a, **k))
    def save(obj, f, *a, **k):
        return full(f, lambda: _save(obj, f, *a, **k)) if isinstance(f, (str, os.PathLike)) else _save(obj, f, *a, **k)
    torch.save = save
"""
DISK_FULL = {"ENOSPC": "raise OSError(errno.ENOSPC, 'No space left on device', filename)",
             "torch zip writer": "raise RuntimeError('[enforce fail at inline_container.cc:664] . unexpected pos 64 "
                                 "vs 0')"}


@pytest.mark.parametrize("kind, name", [("trainer", "optimizer.pt"), ("accelerate", "model.safetensors")])
@pytest.mark.parametrize("failure", DISK_FULL)
def test_a_full_disk_at_a_checkpoint_keeps_the_previous_one_and_says_so(kind, name, failure, tmp_path,
                                                                        translation_csv):
    module, extra = RECIPES[kind]
    out = tmp_path / "run"
    args = [*recipe_args(translation_csv, out, 20, 5), *extra]
    fault = DISK_FULL_ON_SAVE.format(name=name, raise_=DISK_FULL[failure])
    full = run_module(module, *args, env=fault_env(tmp_path, fault))
    assert full.returncode == 1, full.stderr[-3000:]
    assert "Traceback" not in full.stderr, full.stderr[-3000:]
    message = full.stderr[full.stderr.index("error: "):]
    assert "no space to write" in message and "checkpoint-10" in message and "is free there" in message, message
    assert f"The last complete checkpoint is {out / 'checkpoint-5'}" in message, message
    assert sorted(p.name for p in out.iterdir() if "checkpoint" in p.name) == ["checkpoint-5"]  # no partial left
    VanillaTransformerForConditionalGeneration.from_pretrained(out / "checkpoint-5")  # whole, checked on loading


def test_space_for_refuses_before_writing(tmp_path, monkeypatch):
    from hf_vanilla import files

    monkeypatch.setattr(files, "free_bytes", lambda folder: 1000)
    with pytest.raises(files.NoSpaceError, match=r"no space to write .*checkpoint-5: it needs about 2.0 KiB and "
                                                 r"1000 bytes is free there"):
        with files.space_for(tmp_path / "checkpoint-5", 2048):
            raise AssertionError("nothing may be written")
    with files.space_for(tmp_path / "small", 500):
        pass
    with pytest.raises(RuntimeError, match="another failure"):  # not every error is a full disk
        with files.space_for(tmp_path / "small", 500):
            raise RuntimeError("another failure")


# ---- a NaN loss stops training -----------------------------------------------------------------------------------

# from the 8th training forward pass on, the model's logits are NaN (as after an overflow)
NAN_AFTER = """
    import functools
    import hf_vanilla.modeling_vanilla_transformer as m
    _forward, _calls = m.VanillaTransformerForConditionalGeneration.forward, [0]
    @functools.wraps(_forward)  # Trainer reads forward's signature to pick the dataset's columns
    def forward(self, *args, **kwargs):
        output = _forward(self, *args, **kwargs)
        if self.training:
            _calls[0] += 1
            if _calls[0] >= 8:
                output.logits = output.logits * float("nan")
                if output.loss is not None:
                    output.loss = output.loss * float("nan")
        return output
    m.VanillaTransformerForConditionalGeneration.forward = forward
"""


@pytest.mark.parametrize("kind", RECIPES)
def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(kind, tmp_path, translation_csv):
    module, extra = RECIPES[kind]
    out = tmp_path / "run"
    result = run_module(module, *recipe_args(translation_csv, out, 20, 5), *extra,
                        env=fault_env(tmp_path, NAN_AFTER))
    assert result.returncode == 1, result.stderr[-3000:]
    assert re.search(r"The training loss is \[?nan\]? at step 8: training stopped before this step changed the "
                     r"weights.*the last good checkpoint is .*checkpoint-5", result.stderr), result.stderr[-3000:]
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-5"]
    assert all(torch.isfinite(t).all() for t in weights(out / "checkpoint-5").values())
    assert not (out / "model.safetensors").exists()  # no final model from a broken run


# ---- numerics ----------------------------------------------------------------------------------------------------


def tiny_model(head, implementation, **overrides):
    torch.manual_seed(0)
    config = VanillaTransformerConfig.from_preset("tiny", vocab_size=50, max_position_embeddings=64, num_labels=3,
                                                  attn_implementation=implementation, **overrides)
    return head(config).eval()


def forward(model, ids, mask):
    if isinstance(model, VanillaTransformerForSequenceClassification):
        return model(input_ids=ids, attention_mask=mask, labels=torch.zeros(len(ids), dtype=torch.long))
    return model(input_ids=ids, attention_mask=mask, decoder_input_ids=ids, labels=ids)


@pytest.mark.parametrize("head", [VanillaTransformerForConditionalGeneration,
                                  VanillaTransformerForSequenceClassification])
@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
@pytest.mark.parametrize("precision", ["fp32", "bf16-autocast", "fp16-autocast", "bf16-weights"])
@pytest.mark.parametrize("length", [1, 64])
def test_finite_for_padding_rows_extreme_lengths_and_low_precision(head, implementation, precision, length):
    model = tiny_model(head, implementation, norm_first=length == 1)  # post-LN too
    ids = torch.randint(4, 50, (3, length), generator=torch.Generator().manual_seed(length))
    mask = torch.ones_like(ids)
    mask[1] = 0  # a row that is all padding
    mask[2, length // 2 + 1 :] = 0
    if precision == "bf16-weights":
        model = model.to(torch.bfloat16)
    dtype = {"bf16-autocast": torch.bfloat16, "fp16-autocast": torch.float16}.get(precision)
    with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        output = forward(model, ids, mask)
    assert torch.isfinite(output.logits.float()).all() and torch.isfinite(output.loss.float())


def test_masks_use_the_dtypes_own_minimum():
    """-1e9 overflows fp16 (max 65504) to -inf, and -inf rows give NaN; the dtype's minimum does neither."""
    from hf_vanilla.modeling_vanilla_transformer import eager_attention_forward

    module = torch.nn.Module().eval()
    for dtype in (torch.float16, torch.bfloat16, torch.float32):
        q = torch.randn(1, 2, 3, 4, dtype=dtype)
        mask = torch.tensor([[False, False, False]]).view(1, 1, 1, 3)  # nothing to attend to
        output, weights = eager_attention_forward(module, q, q, q, mask, scaling=0.5, dropout=0.0)
        assert torch.isfinite(output).all() and torch.isfinite(weights).all(), dtype


# ---- security ----------------------------------------------------------------------------------------------------


def test_pickle_weights_are_never_loaded(tmp_path):
    model = tiny_model(VanillaTransformerForConditionalGeneration, "sdpa")
    model.save_pretrained(tmp_path)
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="only pickle weights"):
        VanillaTransformerForConditionalGeneration.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="use_safetensors=False is not supported"):
        VanillaTransformerForConditionalGeneration.from_pretrained(tmp_path, use_safetensors=False)


def test_code_never_unpickles_or_trusts_remote_code_by_itself():
    """No call in any project file (package, recipes, benchmarks, tests) loads a pickle; none outside the tests
    (which load saved folders with their code on purpose) passes trust_remote_code=True on its own."""
    import ast

    paths = [p for folder in ("hf_vanilla", "recipes", "benchmarks", "tests") for p in (REPO / folder).rglob("*.py")]
    assert any("training" in p.parts for p in paths) and any("corpora" in p.parts for p in paths)  # subpackages too
    assert not list(REPO.glob("*.py")), "a Python file at the top level: add its folder to the scan"
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and "trust_remote_code" in [a.arg for a in node.args.args]:
                defaults = dict(zip([a.arg for a in node.args.args][::-1], node.args.defaults[::-1]))
                assert ast.unparse(defaults["trust_remote_code"]) == "False", f"{path}: {node.name}"
            if isinstance(node, ast.Import | ast.ImportFrom):
                assert "pickle" not in [alias.name for alias in node.names] + [getattr(node, "module", None)], path
            if not isinstance(node, ast.Call):
                continue
            keywords = {k.arg: k.value for k in node.keywords}
            name = ast.unparse(node.func)
            if name in ("torch.load", "load"):
                assert ast.unparse(keywords.get("weights_only", ast.Constant(None))) == "True", f"{path}: {name}"
            if "trust_remote_code" in keywords and "tests" not in path.relative_to(REPO).parts:
                passed = ast.unparse(keywords["trust_remote_code"])
                # never True on its own: the user's flag (any spelling of it) or an explicit False
                assert passed == "False" or ("trust_remote_code" in passed and "True" not in passed), (path, passed)


def test_accelerate_checkpoints_hold_nothing_loaded_by_unpickling(tmp_path, translation_csv):
    """Accelerate loads its own `custom_checkpoint_*.pkl` files with weights_only=False: the loop registers none."""
    out = tmp_path / "run"
    result = run_module(RECIPES["accelerate"][0], *recipe_args(translation_csv, out, 2, 2), "--max_tokens", "600")
    assert result.returncode == 0, result.stderr[-3000:]
    files = {p.name for p in (out / "checkpoint-2").iterdir()}
    assert not [name for name in files if name.startswith("custom_checkpoint")], files
    assert {"model.safetensors", "optimizer.bin", "scheduler.bin", "loop_state.json"} <= files
    assert json.loads((out / "checkpoint-2" / "loop_state.json").read_text())["step"] == 2


# ---- a kill at each stage of a recipe: the same command (or a resume) then completes, nothing half-written ---------

# each patch kills the process (os._exit, as SIGKILL would) when the recipe reaches that stage
KILL_AT = {
    "tokenizer-training": """
        import os, tokenizers
        _train = tokenizers.Tokenizer.train_from_iterator
        def train_from_iterator(self, *args, **kwargs):
            os._exit(137)
        tokenizers.Tokenizer.train_from_iterator = train_from_iterator
    """,
    "final-evaluation": """
        import os, hf_vanilla.training.translation as t
        def evaluate_translation(*args, **kwargs):
            os._exit(137)
        t.evaluate_translation = evaluate_translation
    """,
    # the final model's safetensors file (after the checkpoints' 2) is half-written when the process dies
    "final-save": CRASH_ON_SAVE.format(n=3),
}


@pytest.mark.parametrize("stage", KILL_AT)
def test_a_kill_at_each_stage_then_the_same_command_completes(stage, tmp_path, translation_csv):
    out = tmp_path / "run"
    args = [*recipe_args(translation_csv, out, 10, 5), "--eval_strategy", "no"]
    killed = run_module("recipes.train_translation", *args, env=fault_env(tmp_path, KILL_AT[stage]))
    assert killed.returncode == 137, killed.stderr[-3000:]
    assert not (out / "model.safetensors").exists()  # no final model, whole or half
    checkpoint = get_last_checkpoint(str(out)) if out.is_dir() else None
    again = run_module("recipes.train_translation", *args,
                       *(["--resume_from_checkpoint", checkpoint] if checkpoint else []))
    assert again.returncode == 0, again.stderr[-3000:]
    assert "test BLEU" in again.stdout
    assert not list(out.glob(".*partial*")), "a staging folder was left behind"
    VanillaTransformerForConditionalGeneration.from_pretrained(out)  # whole, checked on loading
