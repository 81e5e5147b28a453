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
