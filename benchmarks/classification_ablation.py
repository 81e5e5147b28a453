"""Where the classifier loses to TF-IDF: `recipes.train_classification`, one change at a time, chosen on validation.

    python benchmarks/classification_ablation.py                                  # every variant, both corpora
    python benchmarks/classification_ablation.py --corpora bbc-news --variants defaults "max pooling"
    python benchmarks/classification_ablation.py --combine "tiny, max=--preset tiny --classifier_pooling max"

Each variant is the recipe from scratch on the corpus's fixed splits with the same seed; only its extra flags differ.
Validation accuracy is what a choice may look at. The test split is scored by the recipe for every run (it is one
command), but the table (`--table`) shows test accuracy and macro-F1 only for the variant chosen on validation.
Writes benchmarks/results/classification_ablation.json (with provenance) and prints a table.
"""

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hf_vanilla.training.cards import markdown_table  # noqa: E402
from hf_vanilla.training.provenance import ROOT, provenance  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"

# "defaults" is the recipe as it stands (label smoothing 0.1 since the first ablation chose it; that ablation, whose
# "defaults" were without it, is kept in classification_ablation_before_smoothing.json)
VARIANTS = {
    "defaults": [],
    "no label smoothing": ["--label_smoothing_factor", "0"],
    "tiny preset": ["--preset", "tiny"],
    "max pooling": ["--classifier_pooling", "max"],
    "first-token pooling": ["--classifier_pooling", "first"],
    "dropout 0.3": ["--dropout", "0.3"],
    "vocabulary 4000": ["--vocab_size", "4000"],
    "vocabulary 16000": ["--vocab_size", "16000"],
    "peak lr 1e-3": ["--learning_rate", "1e-3"],
    "peak lr 2e-4": ["--learning_rate", "2e-4"],
    "10 epochs": ["--num_train_epochs", "10"],
    "label smoothing 0.1": ["--label_smoothing_factor", "0.1"],
    "weight decay 0.1": ["--weight_decay", "0.1"],
    # later flags win: on bbc-news this reads twice the default 256 tokens of each article (most of one)
    "source length 512": ["--max_source_length", "512"],
}
# bbc-news articles are long: the first 256 tokens, as benchmarks/quality.py trains them
PER_CORPUS = {"bbc-news": ["--max_source_length", "256"], "rotten-tomatoes": []}
COMMON = ["--save_total_limit", "1", "--logging_steps", "50"]


def run(corpus, name, flags, seed, workdir):
    slug = re.sub(r"[^a-zA-Z0-9]+", "-", name).strip("-")
    out = workdir / corpus / slug
    command = [sys.executable, "-m", "recipes.train_classification", "--corpus", corpus, *COMMON,
               *PER_CORPUS[corpus], "--seed", str(seed), "--output_dir", str(out), "--overwrite_output_dir", *flags]
    log = workdir / f"{corpus}-{slug}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.time()
    with open(log, "w") as handle:
        status = subprocess.call(command, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT)
    minutes = (time.time() - start) / 60
    if status:
        raise SystemExit(f"{corpus} / {name}: the recipe exited {status}; see {log}")
    scores = json.loads((out / "results.json").read_text())
    runtime = re.findall(r"'train_runtime': '?([0-9.]+)", log.read_text())
    return {"flags": flags, "command": " ".join(command[1:]), "minutes": minutes,
            "train_seconds": float(runtime[-1]) if runtime else None,
            "validation_accuracy": scores["validation"]["validation_accuracy"],
            "validation_macro_f1": scores["validation"]["validation_macro_f1"],
            "test_accuracy": scores["test"]["test_accuracy"], "test_macro_f1": scores["test"]["test_macro_f1"]}


def table(runs, baselines=None):
    """Per corpus: every variant's validation accuracy; test scores only for the one chosen on validation."""
    lines = []
    for corpus in dict.fromkeys(run_["corpus"] for run_ in runs):
        rows = [r for r in runs if r["corpus"] == corpus]
        chosen = max(rows, key=lambda r: r["validation_accuracy"])
        body = [[r["name"] + (" (chosen)" if r is chosen else ""), f"{100 * r['validation_accuracy']:.2f}",
                 f"{100 * r['test_accuracy']:.2f}" if r is chosen else "",
                 f"{100 * r['test_macro_f1']:.2f}" if r is chosen else "", f"{r['minutes']:.1f}"] for r in rows]
        lines += [f"{corpus}:", "", markdown_table(["variant", "validation accuracy %", "test accuracy %",
                                                    "test macro-F1 %", "minutes"], body), ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpora", nargs="+", default=list(PER_CORPUS), choices=list(PER_CORPUS))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), help="Names from VARIANTS (or --combine).")
    parser.add_argument("--combine", nargs="+", default=[], metavar="NAME=FLAGS",
                        help='Extra variants, e.g. "tiny, max=--preset tiny --classifier_pooling max".')
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--workdir", default="outputs/classification_ablation")
    parser.add_argument("--output", default=str(RESULTS / "classification_ablation.json"))
    parser.add_argument("--reuse_runs", action="store_true",
                        help="Keep a run already in --output with the same corpus, flags and seed (its own times).")
    parser.add_argument("--table", action="store_true", help="Only print the table of --output.")
    args = parser.parse_args(argv)
    variants = {**VARIANTS, **{name: flags.split() for name, _, flags in
                               (item.partition("=") for item in args.combine)}}
    unknown = [name for name in args.variants if name not in variants]
    if unknown:
        parser.error(f"--variants: unknown {', '.join(map(repr, unknown))}; known: {', '.join(variants)}")
    output = Path(args.output)
    runs = json.loads(output.read_text())["runs"] if output.is_file() else []
    if args.table:
        print(table(runs))
        return 0
    for corpus in args.corpora:
        for name in args.variants:
            flags = variants[name]
            same = [r for r in runs if (r["corpus"], r["name"], r["seed"]) == (corpus, name, args.seed)]
            if args.reuse_runs and same and same[0]["flags"] == flags:
                print(f"reusing {corpus} / {name} (run at {same[0]['provenance']['commit']})", flush=True)
                continue
            print(f"training {corpus} / {name}", flush=True)
            where = provenance()  # before the run: the commit and tree that trained it
            result = {"corpus": corpus, "name": name, "seed": args.seed,
                      **run(corpus, name, flags, args.seed, Path(args.workdir)), "provenance": where}
            runs = [r for r in runs if (r["corpus"], r["name"], r["seed"]) != (corpus, name, args.seed)] + [result]
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(json.dumps({"runs": runs}, indent=2, ensure_ascii=False) + "\n")
            print(f"  validation accuracy {100 * result['validation_accuracy']:.2f}%, "
                  f"{result['minutes']:.1f} min", flush=True)
    print(table(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
