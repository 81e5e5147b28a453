"""Write the published tables from the result files, so that no figure is typed by hand.

    python benchmarks/tables.py           # rewrite every generated table in README.md, model_card.md and docs/*.md,
                                          # and model_card.md's Hub metadata (benchmarks/quality.py's)
    python benchmarks/tables.py --check   # exit 1 naming each table that differs from its result file

A generated table sits between `<!-- generated: NAME -->` and `<!-- end: NAME -->` in a document; NAME is a function
of TABLES below, which reads benchmarks/results/*.json (each with its provenance: commit, command, machine, date).
Outside the tables, every decimal figure in the prose must be a value of a result file that the document names (by
file name, `demo*.json` patterns included; a generated table's note names its file), at the precision printed (or
that value x 100, a percentage); both modes exit 1 naming the document, line and figure of any that is not. A figure
in `code` is a setting or an input (`--dropout 0.1`), not a measurement, and is not checked.
"""

import argparse
import fnmatch
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))  # the benchmark scripts own their tables' layout


def documents():
    """What publishes figures: README.md, model_card.md and every page of docs/ (relative to ROOT)."""
    return ["README.md", "model_card.md", *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))]


def _load(name):
    path = RESULTS / name
    if not path.is_file():
        raise FileNotFoundError(f"{path.relative_to(ROOT)} is missing: run the benchmark that writes it")
    return json.loads(path.read_text())


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows])


def _commit(provenance):
    return f"`{provenance['commit'][:7]}`" + ("+" if provenance.get("uncommitted_changes") else "")


def demo():
    """`make demo` at its budget and at 60% of it (a slower machine), from benchmarks/results/demo*.json."""
    rows = []
    for name, label in (("demo.json", "`make demo`"), ("demo-60.json", "`make demo` at 60% of the budget"),
                        ("demo-lr1.4e-3.json", "tried: token batches at 1.4e-3"),
                        ("demo-60-lr1.4e-3.json", "tried: token batches at 1.4e-3, at 60% of the budget"),
                        ("demo-tokens7e-4.json", "before: token batches at 7e-4"),
                        ("demo-60-tokens7e-4.json", "before: token batches at 7e-4, at 60% of the budget"),
                        ("demo-60-batch32.json", "before: batches of 32 sentences at 7e-4, at 60% of the budget"),
                        ("demo-peak9.88e-4.json", "before: batches of 32 sentences at 9.88e-4"),
                        ("demo-60-peak9.88e-4.json", "before: batches of 32 sentences at 9.88e-4, at 60% of the budget"),
                        ("demo-batch64.json", "before: batches of 64"),
                        ("demo-60-batch64.json", "before: batches of 64, at 60% of the budget")):
        run = _load(name)
        rows.append([label, _demo_flags(run["provenance"]["command"]), f"{run['budget_minutes']:g} min",
                     f"{run['steps']:,}", f"{run['validation_bleu']:.2f}", f"{run['test']['bleu']:.2f}",
                     f"{run['test']['chrf']:.2f}", f"{run['train_minutes']:.1f} min", f"{run['wall_minutes']:.1f} min",
                     _commit(run["provenance"])])
    machine = _load("demo.json")["provenance"]["machine"]
    return (_table(["run", "flags of `python -m recipes.demo`", "training budget", "steps reached",
                    "validation BLEU (200 sentences, chooses)", "test BLEU (500 sentences, beam 4)", "test chrF",
                    "training", "wall time (train + evaluate)", "commit"], rows)
            + f"\n\nMachine: {machine['cpu']}, {machine['cores']} cores, torch {machine['torch']}, fp32. "
              "Files: benchmarks/results/demo*.json.")


def _demo_flags(command):
    """The flags a recorded `python recipes/demo.py ...` command gave, its output folder left out; a run recorded
    before the demo took flags for its choices ran that commit's own choices."""
    words = command.split()[2:]
    if "--output_dir" in words:
        at = words.index("--output_dir")
        del words[at:at + 2]
    return f"`{' '.join(words)}`" if words else "none"


def demo_samples():
    run = _load("demo.json")
    return "\n".join(f"- {s['source']} -> {s['translation']}" for s in run["samples"])


def learning_speed():
    """Every run of benchmarks/learning_speed.py, grouped by step count, a row per seed."""
    runs = _load("learning_speed.json")["runs"]
    def loss(run, where):
        curve = run.get("train_loss") or []
        return f"{curve[where]:.2f}" if curve else "-"

    rows = [[r["name"], r["steps"], r["seed"], f"{r['validation_bleu']:.2f}", f"{r['test_bleu']:.2f}",
             f"{r['test_chrf']:.2f}", loss(r, 0), loss(r, -1),
             f"{r['steps_per_second']:.2f}" if r.get("steps_per_second") else "-", _commit(r["provenance"])]
            for r in sorted(runs, key=lambda r: (r["steps_requested"], r["name"], r["seed"]))]
    return _table(["variant", "steps", "seed", "validation BLEU (chooses)", "test BLEU", "test chrF",
                   "train loss, steps 1-50", "train loss, last 50 steps", "steps/s", "commit"], rows)


def learning_rate_grid():
    """The token-batch runs (900 steps, seed 42) as placement x peak learning rate: validation BLEU, each row's best
    in bold (the grid that chose the demo's peak)."""
    grid = {}
    for run in _load("learning_speed.json")["runs"]:
        flags = dict(zip(run["flags"][::2], run["flags"][1::2]))
        if run["steps_requested"] == 900 and run["seed"] == 42 and flags.get("--max_tokens") == "1536":
            placement = "post-LN" if flags.get("--norm_first") == "False" else "pre-LN"
            grid.setdefault(placement, {})[flags["--learning_rate"]] = run["validation_bleu"]
    peaks = sorted({peak for row in grid.values() for peak in row}, key=float)
    rows = []
    for placement in ("post-LN", "pre-LN"):
        best = max(grid[placement].values())
        rows.append([placement] + [("-" if peak not in grid[placement] else
                                    f"**{grid[placement][peak]:.2f}**" if grid[placement][peak] == best else
                                    f"{grid[placement][peak]:.2f}") for peak in peaks])
    return _table(["peak learning rate"] + peaks, rows)


def splits():
    """The built-in corpora's split sizes, counted from the data by benchmarks/corpora.py."""
    run = _load("corpora.json")
    rows = [[c["corpus"], c["pair"] or "-", f"{c['rows']['train']:,}", f"{c['rows']['validation']:,}",
             f"{c['rows']['test']:,}", c["licence"]] for c in run["corpora"]]
    return (_table(["corpus", "pair", "train", "validation", "test", "licence"], rows)
            + f"\n\nCounted at {_commit(run['provenance'])} by `python benchmarks/corpora.py` "
              "(benchmarks/results/corpora.json).")


def _machine(provenance):
    machine = provenance["machine"]
    return (f"Measured at {_commit(provenance)} on {machine['cpu']}, {machine['cores']} cores, torch "
            f"{machine['torch']}, fp32.")


def classification_ablation(name="classification_ablation.json"):
    """Every run of benchmarks/classification_ablation.py; test scores only for the variant chosen on validation."""
    from benchmarks.classification_ablation import table

    run = _load(name)
    commits = sorted({_commit(r["provenance"]) for r in run["runs"]})
    historic = f" Historic: {run['historic']}." if run.get("historic") else ""
    return table(run["runs"]) + f"\nCommit(s): {', '.join(commits)}. File: benchmarks/results/{name}.{historic}"


def cli_speed():
    """The translate command line end to end on 2,000 lines (benchmarks/cli_speed.py), one run a size: a run at both
    sizes is two hours and a quarter of this machine alone, so each size's run names its own commit and command."""
    from benchmarks.cli_speed import table

    runs = {name: _load(name) for name in ("cli_speed-2000.json", "cli_speed-2000-base.json")}
    for name, run in runs.items():
        if run["lines"] != 2000:
            raise ValueError(f"benchmarks/results/{name} ran on {run['lines']:,} lines, not the 2,000 of the table")
    sizes = {dims: result for run in runs.values() for dims, result in run["sizes"].items()}
    footers = [f"{', '.join(run['sizes'])}: {_source(run, name)}" for name, run in runs.items()]
    return table({"sizes": sizes}) + "\n\n2,000 lines per file row. " + " ".join(footers)


def english_text():
    """English text for pre-training, built-in and in the registries (benchmarks/english_text.py)."""
    from benchmarks.english_text import table

    run = _load("english_text.json")
    return (table(run) + f"\n\n{_machine(run['provenance'])} Command: `{run['provenance']['command']}` "
            f"({run['minutes']:.1f} minutes). File: benchmarks/results/english_text.json.")


def pretraining():
    """The pre-training runs the classification ablation starts from (benchmarks/results/pretrain_*.json)."""
    body, notes = [], []
    for path in sorted(RESULTS.glob("pretrain_*.json")):
        run = json.loads(path.read_text())
        where, settings = run["provenance"], run["settings"]
        body.append([f"`{run['folder']}`", run["objective"], settings["preset"], f"{settings['vocab_size']:,}",
                     settings["vocabulary_pairs"], ", ".join(settings["sources"]), f"{run['steps']:,}",
                     f"{run['validation_loss']:.3f}", f"{run['minutes']:.1f}", _commit(where)])
        historic = f"; historic: {run['historic']}" if run.get("historic") else ""
        notes.append(f"`{where['command']}` (benchmarks/results/{path.name}{historic})")
    return (_table(["folder", "objective", "preset", "vocabulary", "vocabulary also from", "English text of",
                    "steps", "held-out loss", "minutes", "commit"], body)
            + "\n\nCommands: " + "; ".join(notes) + ".")


def engine_ab():
    """Engines of the same network in rotating order, Marian against itself included (benchmarks/engine_ab.py)."""
    from benchmarks.engine_ab import differences_text, table

    run = _load("engine_ab.json")
    return (table(run) + f"\n\nWhat the engine loads, compared with Marian's export ({run['quantization']}): "
            + differences_text(run) + f"\n\n{run['dims']} dims, {run['quantization']}, {run['rounds']} rounds. "
            f"{_machine(run['provenance'])} Command: `{run['provenance']['command']}` ({run['minutes']:.0f} minutes). "
            "File: benchmarks/results/engine_ab.json.")


def _sourced(table, name, before=""):
    """`table(run)` of benchmarks/results/`name`, then where it comes from: the machine and commit, the command (and
    its minutes, when the file records them) and the file."""
    run = _load(name)
    return f"{table(run)}\n\n{before(run) if before else ''}{_source(run, name)}"


def _source(run, name):
    """Where a results file's run comes from: machine and commit, the command (and its minutes), the file."""
    minutes = f" ({run['minutes']:.1f} minutes)" if "minutes" in run else ""
    return (f"{_machine(run['provenance'])} Command: `{run['provenance']['command']}`{minutes}. "
            f"File: benchmarks/results/{name}.")


def quality_translation():
    """hf_vanilla (pre-LN and post-LN) against HF Marian under one recipe command (benchmarks/quality.py)."""
    from benchmarks.quality import translation_table

    return _sourced(translation_table, "quality_translation.json")


def quality_classification():
    """hf_vanilla classifiers from scratch beside TF-IDF + logistic regression (benchmarks/quality.py)."""
    from benchmarks.quality import classification_table

    return _sourced(classification_table, "quality_classification.json")


def engine_quality():
    """The CTranslate2 export against generate on a trained model (benchmarks/engine_quality.py)."""
    from benchmarks.engine_quality import table

    def model(run):
        return (f"Model: `{run['model']}` ({'pre-LN' if run['norm_first'] else 'post-LN'}, {run['trained_steps']:,} "
                f"training steps, {run['trained_weights']} weights), all {run['sentences']:,} sentences of "
                f"{run['corpus']}. ")

    return _sourced(table, "engine_quality.json", model)


def quality_budget():
    """hf_vanilla from scratch within an hour of this machine (benchmarks/quality.py --tasks budget)."""
    run = _load("quality_budget.json")
    chosen = run["results"][run["chosen"]]
    test = chosen["test"]
    met = "met" if test["bleu"] >= 30 else f"**missed by {30 - test['bleu']:.2f}**"
    # a run also ends at the recipe's --num_train_epochs, which may come first
    ended = "the budget" if run["train_seconds"] >= 0.95 * 60 * run["budget_minutes"] else "its epochs, first"
    row = [f"{run['budget_minutes']:g} min", ended, f"{run['steps']:,}", f"{run['train_seconds'] / 60:.1f} min",
           run["chosen"], f"{chosen['validation']['bleu']:.2f}", f"{test['bleu']:.2f}", f"{test['chrf']:.2f}",
           f"{run['wall_minutes']:.1f} min", met]
    return (_table(["training budget", "ended at", "steps reached", "training", "weights (chosen on validation)",
                    "validation BLEU", "test BLEU (whole split, beam 4)", "test chrF", "wall time",
                    "target: 30 BLEU"], [row])
            + f"\n\n{_machine(run['provenance'])} Command: `{run['provenance']['command']}`, which runs "
              f"`{run['recipe']}`. File: benchmarks/results/quality_budget.json.")


def _speed_note(run):
    settings = run["settings"]
    return (f"\n\n{_machine(run['provenance'])} Command: `{run['provenance']['command']}` "
            f"({run['minutes']:.0f} minutes), training batch {settings['batch_size']} x {settings['length']} + "
            f"{settings['length']} tokens, generation batch {settings['gen_batch_size']} with {settings['new_tokens']} "
            f"new tokens, {settings['repeats']} rounds in alternation (medians). File: benchmarks/results/speed.json.")


def speed():
    """Model-level speed against HF Marian and torch.nn.Transformer (benchmarks/speed.py)."""
    from benchmarks.speed import models_table

    run = _load("speed.json")
    return models_table(run) + _speed_note(run)


def speed_engines():
    """CTranslate2 rows of the same run (benchmarks/speed.py)."""
    from benchmarks.speed import engines_table

    run = _load("speed.json")
    return engines_table(run) + _speed_note(run)


TABLES = {"speed": speed, "speed-engines": speed_engines, "quality-translation": quality_translation,
          "quality-budget": quality_budget, "quality-classification": quality_classification,
          "engine-quality": engine_quality, "demo": demo, "demo-samples": demo_samples,
          "learning-speed": learning_speed, "learning-rate-grid": learning_rate_grid, "splits": splits,
          "classification-ablation": classification_ablation,
          "classification-ablation-before-smoothing":
              lambda: classification_ablation("classification_ablation_before_smoothing.json"),
          "cli-speed": cli_speed,
          "engine-ab": engine_ab, "english-text": english_text,
          "pretraining": pretraining}
# a section indented under a list item is written with the same indent
_SECTION = re.compile(r"(( *)<!-- generated: ([\w-]+) -->\n)(.*?)( *<!-- end: \3 -->)", re.S)


def render(text):
    """`text` with every generated section rewritten from its result file (an empty section is filled too)."""
    def section(m):
        indent = m.group(2)
        table = "\n".join(indent + line if line else line for line in TABLES[m.group(3)]().split("\n"))
        return m.group(1) + table + "\n" + m.group(5)

    return _SECTION.sub(section, text)


# a decimal figure of the prose: not a version (3.11.7), an exponent (1.4e-3) or the paper's "section 3.4"
_FIGURE = re.compile(r"(?<![\w.])(?<!section )(\d+\.\d+)(?!\w|\.\d)")


def _values(data, into):
    """Every number in a result file, those inside its strings (commands, notes) included."""
    if isinstance(data, dict):
        data = list(data.values())
    if isinstance(data, list):
        for item in data:
            _values(item, into)
    elif isinstance(data, (int, float)) and not isinstance(data, bool):
        into.add(float(data))
    elif isinstance(data, str):
        into.update(float(figure) for figure in re.findall(r"\d+\.\d+", data))
    return into


_FILE_NAME = re.compile(r"[\w.*-]+\.json")
_CODE = re.compile(r"`[^`\n]*`")


def result_values():
    """{file name: every number in it} for each file of benchmarks/results/."""
    return {path.name: _values(json.loads(path.read_text()), set()) for path in sorted(RESULTS.glob("*.json"))}


def named_results(text, names):
    """The result files (of `names`) that a document names: `demo.json`, benchmarks/results/demo*.json, ... (not
    `*.json`, which names no source)."""
    patterns = {pattern for pattern in _FILE_NAME.findall(text) if pattern.strip("*.") != "json"}
    return sorted(name for name in names if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns))


def values_named_by(text, values):
    """The numbers (of `values`, from result_values) of the result files that a document names: its figures' sources."""
    return set().union(*(values[name] for name in named_results(text, values)))


def unsourced_figures(text, values):
    """[(line, figure)] of the prose's decimal figures (generated tables and `code` left out) found in no value of
    `values`, the numbers of the result files the document names.

    A figure derived by hand (a difference, a ratio) is reported too: the prose gives the figures it comes from."""
    prose = _SECTION.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    found = []
    for number, line in enumerate(prose.split("\n"), 1):
        for match in _FIGURE.finditer(_CODE.sub("", line)):
            figure = match.group(1)
            places, value = len(figure.split(".")[1]), float(figure)
            if not any(round(v, places) == value or round(v * 100, places) == value for v in values):
                found.append((number, figure))
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="Change nothing; exit 1 if a table is out of date.")
    args = parser.parse_args(argv)
    stale, texts = [], {name: (ROOT / name).read_text() for name in documents() if (ROOT / name).is_file()}
    rendered = {}  # each document as written from the result files (its tables name their files)
    for name, text in texts.items():
        path = ROOT / name
        for match in _SECTION.finditer(text):
            if match.group(3) not in TABLES:
                parser.error(f"{name}: unknown generated table {match.group(3)!r}; known: {', '.join(TABLES)}")
        new = render(text)
        if name == "model_card.md":  # its Hub metadata comes from the same result files (benchmarks/quality.py's)
            from benchmarks.quality import with_model_card_metadata

            new = with_model_card_metadata(new, {})
        rendered[name] = new
        if new != text:
            stale.append(name)
            if not args.check:
                path.write_text(new)
    written = {m.group(3) for text in rendered.values() for m in _SECTION.finditer(text)}  # rendering keeps sections
    if set(TABLES) - written:
        print(f"no document holds the table(s) {', '.join(sorted(set(TABLES) - written))}", file=sys.stderr)
        return 1
    values = result_values()
    unsourced = [f"{name}:{line}: {figure}" for name, text in rendered.items()
                 for line, figure in unsourced_figures(text, values_named_by(text, values))]
    if unsourced:
        print("figures in no file of benchmarks/results/ that their document names (typed by hand, derived, or "
              "from a file the document does not name: give the figures they come from and name the file; a "
              "setting goes in `code`):\n  " + "\n  ".join(unsourced), file=sys.stderr)
        return 1
    if args.check and stale:
        print(f"out of date with benchmarks/results/: {', '.join(stale)} (run python benchmarks/tables.py)",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
