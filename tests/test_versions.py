"""The supported transformers range: the import-time check, and folders that cross between its two ends.

`make test` and `make test-oldest` point HF_VANILLA_OTHER_PYTHON at the interpreter of the other end of the range,
so a folder saved here is loaded and generated from there, and a folder saved there is loaded here.
"""

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch
import transformers
from toy_tasks import _PadOnly, reversal_examples
from transformers import AutoModelForSeq2SeqLM

from hf_vanilla.configuration_vanilla_transformer import SUPPORTED_TRANSFORMERS, _check_transformers_version

# run again against the oldest supported transformers (`make test-oldest`: the core model tests)
pytestmark = pytest.mark.core

REPO = Path(__file__).resolve().parents[1]
OTHER_PYTHON = os.environ.get("HF_VANILLA_OTHER_PYTHON")
if OTHER_PYTHON and not os.path.isabs(OTHER_PYTHON):  # relative to the repository, where make runs
    OTHER_PYTHON = str(REPO / OTHER_PYTHON)


def test_older_transformers_is_a_clear_error():
    with pytest.raises(ImportError, match=r"needs transformers >= 5.0.0 .*transformers 4.57.1 is installed"):
        _check_transformers_version("4.57.1")


def test_newer_transformers_warns_naming_both_versions():
    with pytest.warns(UserWarning, match=r"tested with transformers 5.0.0 to below 5.25.0; transformers 5.30.0"):
        _check_transformers_version("5.30.0")


def test_supported_versions_pass_quietly():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for version in ("5.0.0", "5.12.1", "5.24.0", transformers.__version__):
            _check_transformers_version(version)
    assert SUPPORTED_TRANSFORMERS[0].release == (5, 0, 0)


OTHER_SIDE = textwrap.dedent(
    """
    import json, sys
    folder, inputs, mode, save_to = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
    if mode == "remote":
        sys.modules["hf_vanilla"] = None  # only the folder's own code
    else:
        import hf_vanilla  # noqa: F401
    import torch, transformers
    from transformers import AutoModelForSeq2SeqLM
    model = AutoModelForSeq2SeqLM.from_pretrained(folder, trust_remote_code=(mode == "remote")).eval()
    out = model.generate(input_ids=torch.tensor(inputs["input_ids"]), attention_mask=torch.tensor(inputs["mask"]),
                         max_new_tokens=10, num_beams=2)
    if save_to != "-":
        model.save_pretrained(save_to)
    print(json.dumps({"version": transformers.__version__, "tokens": out.tolist()}))
    """
)


def generate_in(python, folder, sources, mode, save_to, tmp_path):
    """Load `folder` with another interpreter (with the package, or its remote code only), generate, maybe save."""
    inputs = json.dumps({"input_ids": sources["input_ids"].tolist(), "mask": sources["attention_mask"].tolist()})
    modules = tmp_path / f"modules-{mode}-{Path(python).parent.parent.name}"  # one remote-code cache per install
    env = {**os.environ, "HF_MODULES_CACHE": str(modules), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([python, "-c", OTHER_SIDE, str(folder), inputs, mode, str(save_to)],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(OTHER_PYTHON is None, reason="set HF_VANILLA_OTHER_PYTHON (make test does) to the other end")
@pytest.mark.parametrize("mode", ["package", "remote"])
def test_folders_cross_between_the_ends_of_the_range(mode, reversal_model, tmp_path):
    sources = _PadOnly().pad(reversal_examples(5, seed=11))
    expected = reversal_model.generate(**sources, max_new_tokens=10, num_beams=2).tolist()
    here = tmp_path / "saved-here"
    reversal_model.save_pretrained(here)

    there = tmp_path / "saved-there"
    other = generate_in(OTHER_PYTHON, here, sources, mode, there, tmp_path)
    assert other["version"] != transformers.__version__, "HF_VANILLA_OTHER_PYTHON runs the same transformers"
    assert other["tokens"] == expected  # saved here, generated there

    if mode == "remote":  # saved there, generated here from the folder's own code
        assert generate_in(sys.executable, there, sources, mode, "-", tmp_path)["tokens"] == expected
    else:
        model = AutoModelForSeq2SeqLM.from_pretrained(there).eval()
        assert model.generate(**sources, max_new_tokens=10, num_beams=2).tolist() == expected
        torch.testing.assert_close(model.model.shared.weight, reversal_model.model.shared.weight)
