"""Every published table is written from its result file (benchmarks/tables.py): a table and its file never disagree,
and every result file says where it came from."""

import json
import shutil

import pytest

from benchmarks import tables


def test_published_tables_match_their_result_files():
    assert tables.main(["--check"]) == 0, "run: python benchmarks/tables.py"


def test_every_result_file_records_its_provenance():
    files = sorted(tables.RESULTS.glob("*.json"))
    assert files
    for path in files:
        data = json.loads(path.read_text())
        runs = data["runs"] if "runs" in data else [data]
        for run in runs:
            where = run["provenance"]
            assert len(where["commit"]) == 40 and where["command"] and where["date"], path
            assert where["machine"]["cores"] and where["machine"]["torch"], path


def test_a_number_changed_in_a_result_file_is_caught(tmp_path, monkeypatch):
    results = tmp_path / "benchmarks" / "results"
    shutil.copytree(tables.RESULTS, results)
    for name in tables.documents():
        if (tables.ROOT / name).is_file():
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(tables.ROOT / name, tmp_path / name)
    monkeypatch.setattr(tables, "ROOT", tmp_path)
    monkeypatch.setattr(tables, "RESULTS", results)
    assert tables.main(["--check"]) == 0
    demo = json.loads((results / "demo.json").read_text())
    demo["test"]["bleu"] += 1.0
    (results / "demo.json").write_text(json.dumps(demo))
    assert tables.main(["--check"]) == 1
    assert tables.main([]) == 0 and tables.main(["--check"]) == 0  # rewritten from the file
    assert f"{demo['test']['bleu']:.2f}" in (tmp_path / "README.md").read_text()


def test_an_unknown_table_name_is_a_usage_error(tmp_path, monkeypatch):
    (tmp_path / "README.md").write_text("<!-- generated: nosuch -->\n<!-- end: nosuch -->\n")
    monkeypatch.setattr(tables, "ROOT", tmp_path)
    with pytest.raises(SystemExit) as stop:
        tables.main(["--check"])
    assert stop.value.code == 2


def test_provenance_counts_only_changes_to_what_is_measured(tmp_path, monkeypatch):
    """A result file being written (benchmarks/results/) is no uncommitted change; any other edited file is."""
    import subprocess

    from hf_vanilla.training import provenance

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "benchmarks" / "results" / "run.json").write_text("{}\n")
    (tmp_path / "model.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "start")
    monkeypatch.setattr(provenance, "ROOT", tmp_path)
    (tmp_path / "benchmarks" / "results" / "run.json").write_text('{"a": 1}\n')  # the first status line: " M ..."
    assert provenance.provenance(["bench.py"])["uncommitted_changes"] is False
    (tmp_path / "model.py").write_text("x = 2\n")
    assert provenance.provenance(["bench.py"])["uncommitted_changes"] is True


def test_a_table_under_a_list_item_keeps_the_items_indent(monkeypatch):
    monkeypatch.setitem(tables.TABLES, "toy", lambda: "| a |\n|---|\n| 1 |")
    text = "- item\n\n  <!-- generated: toy -->\n  <!-- end: toy -->\n"
    assert tables.render(text) == "- item\n\n  <!-- generated: toy -->\n  | a |\n  |---|\n  | 1 |\n  <!-- end: toy -->\n"
    assert tables.render(tables.render(text)) == tables.render(text)  # rewriting is stable


def test_a_figure_typed_into_the_prose_is_caught(tmp_path, monkeypatch, capsys):
    """Outside the generated tables a decimal figure must be some result file's value at its printed precision
    (or x 100); versions, exponents and the paper's section numbers are not figures."""
    values = {30.7456, 0.7612, 2700.0}
    text = ("The demo reached 30.75 BLEU (76.12% accuracy, 2700.0 s), torch 2.13.0, lr 1.4e-3, see section 3.4.\n"
            "<!-- generated: demo -->\n| 99.99 |\n<!-- end: demo -->\n"
            "Then 30.74 by hand, and pre-LN trails by 2.64.\n")
    assert tables.unsourced_figures(text, values) == [(5, "30.74"), (5, "2.64")]

    for name in tables.documents():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(tables.ROOT / name, tmp_path / name)
    monkeypatch.setattr(tables, "ROOT", tmp_path)
    assert tables.main(["--check"]) == 0  # the published prose as it stands
    page = tmp_path / "docs" / "learning_speed.md"
    page.write_text(page.read_text() + "\nA later run reached 12.3456 BLEU.\n")
    assert tables.main(["--check"]) == 1
    lines = page.read_text().count("\n")
    assert f"docs/learning_speed.md:{lines}: 12.3456" in capsys.readouterr().err


def test_a_figure_counts_only_from_a_result_file_its_document_names(tmp_path, monkeypatch, capsys):
    """A figure typed by hand can match some value of an unrelated result file; it is sourced only by a file its
    document names (a `demo*.json` pattern counts). A figure in `code` is a setting or an input, not checked."""
    names = ["demo.json", "demo-60.json", "speed.json", "learning_speed.json"]
    assert tables.named_results("see benchmarks/results/demo*.json and `speed.json`", names) == \
        ["demo-60.json", "demo.json", "speed.json"]
    assert tables.named_results("every file of benchmarks/results/*.json", names) == []

    for name in tables.documents():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(tables.ROOT / name, tmp_path / name)
    monkeypatch.setattr(tables, "ROOT", tmp_path)
    page = tmp_path / "docs" / "learning_speed.md"
    text = page.read_text()
    values = tables.result_values()
    named, other = tables.values_named_by(tables.render(text), values), values["english_text.json"]
    figure = next(f"{v:.2f}" for v in sorted(other) if 1 < v < 1000 and not tables.unsourced_figures(
        f"{v:.2f}", other) and tables.unsourced_figures(f"{v:.2f}", named))
    page.write_text(text + f"\nThe corpus holds {figure} of them.\n")
    assert tables.main(["--check"]) == 1
    assert f"docs/learning_speed.md:{text.count(chr(10)) + 2}: {figure}" in capsys.readouterr().err
    page.write_text(text + f"\nThe corpus holds {figure} of them (english_text.json).\n")
    assert tables.main(["--check"]) == 0
    page.write_text(text + f"\nRun it with `--ratio {figure}`.\n")
    assert tables.main(["--check"]) == 0
