"""benchmarks/stale.py: a results file is fresh only when its commit is in history and nothing it depends on changed."""

import json
import subprocess

import pytest

from benchmarks import stale


def git(*args):
    return subprocess.run(["git", *args], cwd=stale.ROOT, capture_output=True, text=True, check=True).stdout.strip()


def write(folder, name, commit, command, dirty=False):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps({"provenance": {"commit": commit, "command": command,
                                                          "uncommitted_changes": dirty}}))


def test_the_demo_depends_on_the_model_and_the_translation_recipe_not_on_pretraining():
    files = stale.dependencies("recipes/demo.py")
    assert "recipes/train_translation.py" in files  # run as -m recipes.train_translation or imported
    assert "hf_vanilla/modeling_vanilla_transformer.py" in files
    assert "hf_vanilla/training/corpora/builtin.py" in files
    assert "hf_vanilla/training/pretraining.py" not in files


def test_head_is_fresh_an_unknown_commit_and_a_dirty_run_are_not(tmp_path):
    head = git("rev-parse", "HEAD")
    write(tmp_path, "a.json", head, "python benchmarks/corpora.py")
    write(tmp_path, "b.json", "0" * 40, "python benchmarks/corpora.py")
    write(tmp_path, "c.json", head, "python benchmarks/corpora.py", dirty=True)
    found = {row["file"]: row for row in stale.rows(tmp_path)}
    assert found["a.json"]["fresh"] and found["a.json"]["since"] == 0
    assert not found["b.json"]["fresh"] and not found["b.json"]["in_history"]
    assert not found["c.json"]["fresh"]
    assert "not in this branch's history" in stale.table(list(found.values()))


@pytest.mark.skipif(git("rev-parse", "--is-shallow-repository") == "true", reason="needs the history")
def test_a_change_to_a_file_the_script_runs_makes_its_results_stale(tmp_path):
    changed = git("log", "-1", "--format=%H", "--", "recipes/pretrain.py")  # the last change to the recipe
    write(tmp_path, "pretrain.json", git("rev-parse", f"{changed}^"), "python benchmarks/quality.py")
    row, = stale.rows(tmp_path)
    assert row["in_history"] and not row["fresh"] and "recipes/pretrain.py" in row["changed"]


def test_the_script_of_a_recorded_command():
    assert stale.script_of("python benchmarks/speed.py --repeats 3") == "benchmarks/speed.py"
    assert stale.script_of("python -m recipes.pretrain --objective masked_lm") == "recipes/pretrain.py"
    assert stale.script_of("make demo") is None
