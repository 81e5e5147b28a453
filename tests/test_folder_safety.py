"""Folders are inputs a user may not control: no folder's own code runs unless the user asked, nothing is ever read
from stdin for a prompt, and no command deletes or replaces a folder it did not write (reliability round three)."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import tiny_config, word_tokenizer
from test_recipes import REPO

from hf_vanilla import VanillaTransformerForConditionalGeneration, VanillaTransformerForSequenceClassification

WORDS = "the cat dog red car yes".split()
LINES = "the cat\nthe dog\nyes\nred car\n"  # "yes" is what transformers' own prompt would have taken as consent
# the folder's own tokenizer code: importing it writes a marker file
EVIL = """import os, pathlib
pathlib.Path(os.environ["HF_VANILLA_TEST_MARKER"]).write_text("the folder's code ran")
from transformers import PreTrainedTokenizerFast
class EvilTokenizerFast(PreTrainedTokenizerFast):
    pass
"""


def with_own_tokenizer_code(folder):
    """Make `folder`'s tokenizer one that only its own code (auto_map) can build, as a hostile folder would."""
    config_file = Path(folder) / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    config.update(tokenizer_class="EvilTokenizerFast", auto_map={"AutoTokenizer": [None, "evil.EvilTokenizerFast"]})
    config_file.write_text(json.dumps(config))
    (Path(folder) / "evil.py").write_text(EVIL)
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("untrusted")
    torch.manual_seed(0)
    tokenizer = word_tokenizer(WORDS)
    VanillaTransformerForConditionalGeneration(tiny_config()).save_pretrained(root / "translation")
    tokenizer.save_pretrained(root / "translation")
    classifier = VanillaTransformerForSequenceClassification(tiny_config(num_labels=2))
    classifier.save_pretrained(root / "classifier")
    tokenizer.save_pretrained(root / "classifier")
    folders = {"transformers": root / "translation", "classify": root / "classifier"}
    try:
        from hf_vanilla.export_ctranslate2 import export_ctranslate2

        folders["ctranslate2"] = export_ctranslate2(root / "translation", root / "ct2")
    except ImportError:
        pass
    for folder in folders.values():
        with_own_tokenizer_code(folder)
    return folders


def piped(module, *args, marker):
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=REPO, input=LINES,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_VANILLA_TEST_MARKER": str(marker)})


def command(kind, folder):
    if kind == "classify":
        return ["recipes.classify", "--model", folder]
    return ["recipes.translate", "--engine", kind, "--model", folder, "--num_beams", "1"]


@pytest.mark.parametrize("kind", ["transformers", "ctranslate2", "classify"])
def test_folder_code_never_runs_unasked_and_stdin_is_never_a_prompt(kind, folders, tmp_path):
    if kind not in folders:
        pytest.skip("the [ctranslate2] extra (ctranslate2) is not installed")
    marker = tmp_path / "marker"
    refused = piped(*command(kind, folders[kind]), marker=marker)
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert "--model" in refused.stderr and "--trust_remote_code True" in refused.stderr
    assert "Do you wish to run the custom code" not in refused.stdout + refused.stderr
    assert not marker.exists() and refused.stdout == ""
    # asked for: the code runs, no prompt takes a line, and every line (the "yes" too) gets its output line
    allowed = piped(*command(kind, folders[kind]), "--trust_remote_code", "True", marker=marker)
    assert allowed.returncode == 0, allowed.stderr[-2000:]
    assert marker.exists() and "Do you wish" not in allowed.stdout + allowed.stderr
    assert len(allowed.stdout.splitlines()) == len(LINES.splitlines())


# what loads a folder through transformers' Auto machinery (which resolves a folder's auto_map)
_AUTO_LOADS = ("from_pretrained", "pipeline")


def _unguarded_loads(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
        auto = (name == "from_pretrained" and owner.startswith("Auto")) or name == "pipeline"
        keywords = {keyword.arg for keyword in node.keywords}
        if auto and "trust_remote_code" not in keywords and None not in keywords:
            yield f"{path.relative_to(REPO)}:{node.lineno}"


def test_every_auto_load_in_the_project_passes_trust_remote_code():
    """The rule, not the cases: a load left to transformers' default may prompt on stdin (the bug above)."""
    files = [p for part in ("hf_vanilla", "recipes", "benchmarks") for p in sorted((REPO / part).rglob("*.py"))]
    assert len(files) > 20
    offenders = [where for path in files for where in _unguarded_loads(path)]
    assert offenders == [], f"Auto*.from_pretrained / pipeline without an explicit trust_remote_code: {offenders}"


def snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


@pytest.fixture
def model_in_parent(tmp_path):
    """parent/model (a saved translation model) beside the user's own file parent/notes.txt."""
    torch.manual_seed(0)
    model = tmp_path / "parent" / "model"
    VanillaTransformerForConditionalGeneration(tiny_config()).save_pretrained(model)
    word_tokenizer(WORDS).save_pretrained(model)
    (tmp_path / "parent" / "notes.txt").write_text("the user's own file")
    return model


def export(model, output, *extra):
    pytest.importorskip("ctranslate2", reason="the [ctranslate2] extra (ctranslate2) is not installed")
    return subprocess.run([sys.executable, "-m", "recipes.export", "--model", str(model), "--output_dir", str(output),
                           "--overwrite_output_dir", *extra], cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("spelling", ["parent", "model itself", "inside", "dot-dot", "symlink to parent"])
def test_export_never_replaces_or_deletes_its_own_input(spelling, model_in_parent, tmp_path):
    parent = model_in_parent.parent
    output = {"parent": parent, "model itself": model_in_parent, "inside": model_in_parent / "ct2",
              "dot-dot": model_in_parent / ".." / ".." / "parent", "symlink to parent": tmp_path / "link"}[spelling]
    if spelling == "symlink to parent":
        output.symlink_to(parent, target_is_directory=True)
    before = snapshot(parent)
    result = export(model_in_parent, output)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "error: --output_dir:" in result.stderr and "--model folder" in result.stderr, result.stderr[-2000:]
    assert snapshot(parent) == before  # nothing deleted, nothing added


def test_overwrite_replaces_only_an_earlier_export(model_in_parent, tmp_path):
    output = tmp_path / "ct2"
    assert export(model_in_parent, output).returncode == 0
    assert export(model_in_parent, output).returncode == 0  # an earlier export: replaced
    (output / "my_notes.txt").write_text("keep me")
    result = export(model_in_parent, output)
    assert result.returncode == 2 and "my_notes.txt" in result.stderr, result.stderr[-2000:]
    assert (output / "my_notes.txt").read_text() == "keep me" and (output / "model.bin").is_file()
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    result = export(model_in_parent, a_file)
    assert result.returncode == 2 and "is a file" in result.stderr and a_file.read_text() == "x"


def test_training_output_may_not_overlap_its_inputs_or_overwrite_users_files(model_in_parent, translation_csv,
                                                                           tmp_path):
    from test_recipes import TRANSLATION_FLAGS, run_module

    parent = model_in_parent.parent
    before = snapshot(parent)
    for output in (parent, model_in_parent, model_in_parent / "run"):
        result = run_module("recipes.train_translation", "--model_name_or_path", model_in_parent, "--train_file",
                            translation_csv, "--output_dir", output, "--overwrite_output_dir", *TRANSLATION_FLAGS,
                            "--max_steps", 1)
        assert result.returncode == 2 and "--model_name_or_path folder" in result.stderr, result.stderr[-2000:]
    assert snapshot(parent) == before
    # the data file inside the output folder is an input too
    result = run_module("recipes.train_translation", "--train_file", translation_csv, "--output_dir",
                        translation_csv.parent, "--overwrite_output_dir", *TRANSLATION_FLAGS, "--max_steps", 1)
    assert result.returncode == 2 and "--train_file" in result.stderr, result.stderr[-2000:]
    # --overwrite_output_dir over a folder holding files no run writes: refused, naming them
    user = tmp_path / "mine"
    user.mkdir()
    (user / "thesis.tex").write_text("keep me")
    result = run_module("recipes.train_translation", "--train_file", translation_csv, "--output_dir", user,
                        "--overwrite_output_dir", *TRANSLATION_FLAGS, "--max_steps", 1)
    assert result.returncode == 2 and "thesis.tex" in result.stderr, result.stderr[-2000:]
    assert sorted(p.name for p in user.iterdir()) == ["thesis.tex"]


def test_make_demo_twice_replaces_the_first_demos_folder(tmp_path):
    """`make demo` writes demo.json beside the model it trained; the next `make demo` (--overwrite_output_dir into
    the same folder) must accept it, while a user's file there is still refused."""
    from hf_vanilla.files import OutputFolderRefused
    from hf_vanilla.training.policies import check_output_dir
    from recipes.demo import RESULT_FILE

    folder = tmp_path / "demo"
    (folder / "checkpoint-1600").mkdir(parents=True)
    # what a `make demo` folder held (the modeling files are copied by save_pretrained)
    for name in ("README.md", "config.json", "configuration_vanilla_transformer.py", "generation_config.json",
                 "model.safetensors", "modeling_vanilla_transformer.py", "results.json", "run_settings.json",
                 "tokenizer.json", "tokenizer_config.json", "training_curves.png", RESULT_FILE):
        (folder / name).write_text("{}")
    check_output_dir(folder, overwrite=True, resuming=False)
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(OutputFolderRefused, match="notes.txt"):
        check_output_dir(folder, overwrite=True, resuming=False)


def free_port():
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _WritesMarker:
    """Unpickling this runs code: it writes the marker file, as a hostile pytorch_model.bin can."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('unpickled')",))


@pytest.fixture
def pickled(tmp_path):
    """A translation folder whose only weights are a pickle that writes a marker file when loaded."""
    folder, marker = tmp_path / "pickled", tmp_path / "marker"
    VanillaTransformerForConditionalGeneration(tiny_config()).save_pretrained(folder)
    word_tokenizer(WORDS).save_pretrained(folder)
    (folder / "model.safetensors").unlink()
    torch.save({"model.shared.weight": _WritesMarker(marker)}, folder / "pytorch_model.bin")
    return folder, marker


def test_the_pickle_marker_works(pickled):
    """What the test below guards against is real: loading this file the unsafe way writes the marker."""
    folder, marker = pickled
    # in another process, from a string: the guard in test_reliability.py forbids such a load in any project file
    subprocess.run([sys.executable, "-c", "import sys, torch; torch.load(sys.argv[1], weights_only=False)",
                    str(folder / "pytorch_model.bin")], check=True, capture_output=True)
    assert marker.read_text() == "unpickled"


@pytest.mark.parametrize("how", ["from_pretrained", "AutoModel", "recipes.translate", "recipes.export",
                                 "recipes.serve"])
def test_pickle_weights_are_refused_and_never_unpickled(how, pickled):
    folder, marker = pickled
    if how in ("from_pretrained", "AutoModel"):
        from transformers import AutoModelForSeq2SeqLM

        loader = (VanillaTransformerForConditionalGeneration.from_pretrained if how == "from_pretrained"
                  else AutoModelForSeq2SeqLM.from_pretrained)
        with pytest.raises(FileNotFoundError, match="only pickle weights .pytorch_model.bin."):
            loader(folder)
    else:
        args = {"recipes.translate": ["--model", folder], "recipes.serve": ["--model", folder, "--port", free_port()],
                "recipes.export": ["--model", folder, "--output_dir", folder.parent / "exported"]}[how]
        if how == "recipes.export":
            pytest.importorskip("ctranslate2", reason="the [ctranslate2] extra is not installed")
        if how == "recipes.serve":
            pytest.importorskip("gradio", reason="the [web] extra is not installed")
        result = piped(how, *args, marker=marker)
        assert result.returncode == 2, result.stderr[-2000:]
        assert "only pickle weights (pytorch_model.bin)" in result.stderr, result.stderr[-2000:]
    assert not marker.exists(), "the pickle was loaded"
