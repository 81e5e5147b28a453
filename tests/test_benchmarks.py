"""The benchmarks' own rules: a reused run is the run these settings give, with its own measured time."""

import json

import pytest

from benchmarks.quality import RUN_RECORD, run_or_reuse


def test_reuse_keeps_a_run_with_the_same_settings_and_its_measured_minutes(tmp_path):
    calls = []

    def main(argv):
        calls.append(argv)
        (tmp_path / "results.json").write_text("{}")
        return 0

    minutes = run_or_reuse(main, ["--seed", "1"], tmp_path, reuse=True)
    assert len(calls) == 1 and json.loads((tmp_path / RUN_RECORD).read_text())["minutes"] == minutes
    record = json.loads((tmp_path / RUN_RECORD).read_text())
    record["minutes"] = 3.39  # what the real run measured: kept, not the time it takes to read the file
    (tmp_path / RUN_RECORD).write_text(json.dumps(record))
    assert run_or_reuse(main, ["--seed", "1"], tmp_path, reuse=True) == 3.39 and len(calls) == 1


def test_reuse_refuses_a_run_with_other_settings_or_no_record(tmp_path):
    (tmp_path / "results.json").write_text("{}")
    with pytest.raises(SystemExit, match="no benchmark_run.json"):
        run_or_reuse(lambda argv: 0, ["--seed", "1"], tmp_path, reuse=True)
    (tmp_path / RUN_RECORD).write_text(json.dumps({"argv": ["--seed", "1"], "minutes": 1.0}))
    with pytest.raises(SystemExit, match=r"other settings \(differing: \['1', '2'\]\)"):
        run_or_reuse(lambda argv: 0, ["--seed", "2"], tmp_path, reuse=True)


def test_every_published_mutation_survivor_is_explained_or_wants_a_test():
    """The last mutation pass's survivors are each in mutation.py's EQUIVALENT, with the reason no test can see it;
    a survivor that is not is a change to the model that the suite missed (write the test that kills it)."""
    from benchmarks.mutation import EQUIVALENT
    from benchmarks.tables import RESULTS

    result = json.loads((RESULTS / "mutation.json").read_text())
    assert result["counts"]["survived"] == len(result["survivors"]) > 0
    unexplained = [name for name in result["survivors"] if name not in EQUIVALENT]
    assert not unexplained, f"survivors with neither a test nor a reason: {unexplained} (mutmut show NAME)"
    assert all(reason.strip() for reason in EQUIVALENT.values())


def test_every_published_learning_speed_row_reruns_by_its_name():
    # the docs say `python benchmarks/learning_speed.py --variants NAME` reproduces a row: its name must still give
    # the flags the row was trained with
    from benchmarks.learning_speed import RESULTS, VARIANTS

    for run in json.loads((RESULTS / "learning_speed.json").read_text())["runs"]:
        assert VARIANTS.get(run["name"]) == run["flags"], f"{run['name']!r}: not in VARIANTS with its flags"
