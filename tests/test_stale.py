"""benchmarks/stale.py: a results file is fresh only when its commit is in history and nothing it depends on changed."""

import ast
import json
import subprocess

import pytest

from benchmarks import stale


def git(*args):
    return subprocess.run(["git", *args], cwd=stale.ROOT, capture_output=True, text=True, check=True).stdout.strip()


def write(folder, name, commit, command, dirty=False, **fields):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps({**fields, "provenance": {"commit": commit, "command": command,
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


def test_a_change_to_comments_and_docstrings_only_is_not_a_change_of_code():
    source = 'def f(x):\n    """Twice x."""\n    return 2 * x  # doubled\n'
    assert stale.code_of(source) == stale.code_of('def f(x):\n    """Two x, said again."""\n\n    return 2 * x\n')
    assert stale.code_of(source) == stale.code_of("# a new comment\ndef f(x):\n    return 2 * x\n")
    assert stale.code_of(source) != stale.code_of('def f(x):\n    """Twice x."""\n    return 3 * x\n')
    assert stale.code_of("X = 'a'\n") != stale.code_of("X = 'b'\n")  # a string that is not a docstring is code


def test_a_results_file_stays_fresh_through_a_comment_only_change_not_a_code_change(monkeypatch):
    sources = {("old", "recipes/demo.py"): "A = 1  # chosen on validation\n",
               ("HEAD", "recipes/demo.py"): "A = 1  # chosen on validation (runs at HEAD)\n",
               ("old", "recipes/x.py"): "B = 1\n", ("HEAD", "recipes/x.py"): "B = 2\n"}

    def fake_git(*args):
        out = {"merge-base": "", "rev-list": "2", "diff": "recipes/demo.py\nrecipes/x.py\nconstraints.txt"}.get(args[0])
        if args[0] == "show":
            commit, path = args[1].split(":", 1)
            out = sources.get((commit, path))
        return subprocess.CompletedProcess(args, 0 if out is not None else 128, out or "", "")

    monkeypatch.setattr(stale, "git", fake_git)
    in_history, since, changed = stale.status("old", "recipes/demo.py", dirty=False)
    assert in_history and since == 2 and changed == ["recipes/x.py", "constraints.txt"]


def test_a_historic_file_is_listed_with_its_reason_and_does_not_fail_strict(tmp_path, monkeypatch, capsys):
    """A file kept on purpose as a record of an earlier state (mutation_before.json) is neither fresh nor stale;
    --strict still fails on a stale one beside it."""
    head = git("rev-parse", "HEAD")
    write(tmp_path, "before.json", "0" * 40, "python benchmarks/mutation.py", historic="the pass before the tests")
    write(tmp_path, "now.json", head, "python benchmarks/corpora.py")
    monkeypatch.setattr(stale, "RESULTS", tmp_path)
    assert stale.main(["--strict"]) == 0
    out = capsys.readouterr().out
    assert "historic: the pass before the tests" in out and "1 of 1 recorded runs are fresh" in out
    write(tmp_path, "old.json", "0" * 40, "python benchmarks/corpora.py")
    assert stale.main(["--strict"]) == 1
    assert "1 of 2 recorded runs are fresh" in capsys.readouterr().out
    assert json.loads((stale.ROOT / "benchmarks/results/mutation_before.json").read_text())["historic"]


def test_a_change_confined_to_the_argument_ranges_keeps_a_run_fresh_unless_it_refuses_the_command(monkeypatch):
    """hf_vanilla.cli.RANGES only refuses arguments before any work: a new range cannot move the number of a run it
    lets through. It can refuse the recorded command, and then the row is stale, naming the flag."""
    old = "import sys\nRANGES = {}\n\n\ndef f():\n    return 1\n"
    new_range = old.replace("RANGES = {}", 'RANGES = {"seed": (lambda v: v >= 0, "zero or positive")}')
    sources = {"old": old, "HEAD": new_range}

    def fake_git(*args):
        out = {"merge-base": "", "rev-list": "1", "diff": "hf_vanilla/cli.py"}.get(args[0])
        if args[0] == "show":
            out = sources[args[1].split(":", 1)[0]]
        return subprocess.CompletedProcess(args, 0, out, "")

    monkeypatch.setattr(stale, "git", fake_git)
    monkeypatch.setitem(stale.cli.RANGES, "seed", (lambda v: v >= 0, "zero or positive"))
    stale.sources.cache_clear()
    assert stale.status("old", None, False, ("python -m recipes.pretrain --seed 7",))[2] == []
    _, _, changed = stale.status("old", None, False, ("python -m recipes.pretrain --seed=-3 --max_train_minutes 45",))
    assert changed == ["hf_vanilla/cli.py (its RANGES now refuse --seed -3)"]
    sources["HEAD"] = new_range.replace("return 1", "return 2")  # the same new range, and code changed beside it
    stale.sources.cache_clear()
    assert stale.status("old", None, False, ("python -m recipes.pretrain --seed 7",))[2] == ["hf_vanilla/cli.py"]
    stale.sources.cache_clear()


def test_the_refusal_tables_are_read_only_where_arguments_are_refused():
    """The rule above holds while the table's one use is to refuse: only argument_problems (and stale.py) reads it."""
    for path, table in stale.REFUSAL_TABLES.items():
        readers = set()
        for source in (file for package in stale.PACKAGES for file in (stale.ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(source.read_text())):
                if isinstance(node, ast.FunctionDef) and any(
                        table in (getattr(n, "id", None), getattr(n, "attr", None)) for n in ast.walk(node)):
                    readers.add(f"{source.relative_to(stale.ROOT)}:{node.name}")
        assert readers == {f"{path}:argument_problems", "benchmarks/stale.py:refused"}, readers
