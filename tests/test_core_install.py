"""The core install (torch, transformers, safetensors, tokenizers and what they need) is enough to use a model.

A subprocess runs with a site folder that holds only the distributions `pip install hf_vanilla` would install (the
closure of the core requirements, read from the installed metadata) and no site-packages: loading a saved folder,
generating, the classifier, its pipeline and `recipes.translate` must work there, and the training packages must be
missing (proof that the test environment does not leak them).
"""

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement

from hf_vanilla import (
    VanillaTransformerConfig,
    VanillaTransformerForConditionalGeneration,
    VanillaTransformerForSequenceClassification,
)
from hf_vanilla.training.tokenizer import train_bpe_tokenizer

REPO = Path(__file__).resolve().parents[1]
TRAINING_ONLY = ["datasets", "accelerate", "evaluate", "sacrebleu", "matplotlib", "sklearn", "ctranslate2", "onnx"]


def core_distributions():
    """Names of the distributions a core install holds: pyproject's dependencies, and theirs without extras."""
    seen, todo = set(), [Requirement(r) for r in tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "dependencies"]]
    while todo:
        requirement = todo.pop()
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        name = requirement.name.lower().replace("_", "-")
        if name in seen:
            continue
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # an optional platform dependency that is not installed here
        seen.add(name)
        todo += [Requirement(r) for r in distribution.requires or []]
    return seen


def core_site(folder):
    """A folder of symbolic links to the core distributions' top-level modules and metadata."""
    folder.mkdir()
    for name in core_distributions():
        distribution = importlib.metadata.distribution(name)
        site = Path(distribution.locate_file(""))
        tops = {Path(str(f)).parts[0] for f in distribution.files or [] if not str(f).startswith("..")}
        for top in tops:
            target = site / top
            if top.endswith(".pth") or top == "__pycache__" or not target.exists():
                continue
            link = folder / top
            if not link.exists():
                link.symlink_to(target)
    (folder / "hf_vanilla").symlink_to(REPO / "hf_vanilla")
    return folder


SCRIPT = """
import importlib, json, sys
for name in {training_only}:
    try:
        importlib.import_module(name)
    except ImportError:
        continue
    raise SystemExit(f"{{name}} is importable: the core environment leaks the full one")
import torch
import hf_vanilla
from transformers import AutoModelForSeq2SeqLM, AutoModelForSequenceClassification, AutoTokenizer, pipeline
from hf_vanilla.inference import translate
seq2seq, classifier = sys.argv[1], sys.argv[2]
tokenizer = AutoTokenizer.from_pretrained(seq2seq)
model = AutoModelForSeq2SeqLM.from_pretrained(seq2seq)
batch = tokenizer(["hello world", "a b c"], return_tensors="pt", padding=True)
generated = model.generate(**batch, num_beams=2, max_new_tokens=5)
texts = translate(model, tokenizer, ["hello world"])
scores = pipeline("text-classification", model=classifier)("hello world")
loaded = [m for m in {training_only} if m in sys.modules]
print(json.dumps({{"generated": generated.shape[0], "texts": len(texts), "label": scores[0]["label"],
                  "training_modules": loaded}}))
"""


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("core")
    tokenizer = train_bpe_tokenizer(["hello world", "a b c", "the cat sat"] * 20, vocab_size=300)
    config = VanillaTransformerConfig.from_preset("tiny", vocab_size=len(tokenizer), max_position_embeddings=32)
    seq2seq = VanillaTransformerForConditionalGeneration(config)
    seq2seq.save_pretrained(root / "seq2seq")
    tokenizer.save_pretrained(root / "seq2seq")
    classifier = VanillaTransformerForSequenceClassification(
        VanillaTransformerConfig.from_preset("tiny", vocab_size=len(tokenizer), max_position_embeddings=32,
                                             num_labels=2, id2label={0: "neg", 1: "pos"},
                                             label2id={"neg": 0, "pos": 1}))
    classifier.save_pretrained(root / "classifier")
    tokenizer.save_pretrained(root / "classifier")
    return root, core_site(root / "site")


def run_core(site, *command, **kwargs):
    env = {"PYTHONPATH": str(site), "PYTHONNOUSERSITE": "1", "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin",
           "HOME": str(site.parent)}
    return subprocess.run([sys.executable, "-S", *command], env=env, capture_output=True, text=True, timeout=600,
                          **kwargs)


def test_the_core_distributions_are_the_promised_ones():
    names = core_distributions()
    assert {"torch", "transformers", "safetensors", "tokenizers"} <= names
    assert not names & {"datasets", "accelerate", "evaluate", "sacrebleu", "matplotlib", "scikit-learn", "tqdm"} - {
        "tqdm"}  # tqdm comes with transformers itself


def test_load_generate_and_classify_with_the_core_install_only(folders):
    root, site = folders
    script = SCRIPT.format(training_only=TRAINING_ONLY)
    result = run_core(site, "-c", script, str(root / "seq2seq"), str(root / "classifier"))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"generated": 2, "texts": 1, "label": report["label"], "training_modules": []}
    assert report["label"] in ("neg", "pos")


def test_translate_cli_with_the_core_install_only(folders):
    root, site = folders
    result = run_core(site, "-m", "recipes.translate", "--model", str(root / "seq2seq"), input="hello world\n",
                      cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(result.stdout.splitlines()) == 1
