"""What a few hundred CPU steps buy: the translation recipe at the demo's settings, one change at a time.

    python benchmarks/learning_speed.py                      # every variant at 600 steps
    python benchmarks/learning_speed.py --steps 1200 --variants pre-LN post-LN
    python benchmarks/learning_speed.py --reuse_runs         # keep the runs already done with the same settings

Each variant is `recipes.train_translation` on libreoffice-help en->fr with the demo's settings (small preset, batch
64 sentences, checkpoints every 100 steps), the same seed and the same step count; only its extra flags differ.
The validation BLEU (beam 4) is what a choice of defaults may look at; the test BLEU and chrF (500 sentences, beam 4)
are reported beside it. Writes benchmarks/results/learning_speed.json (with provenance) and prints a table.
"""

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hf_vanilla.training.provenance import ROOT, provenance  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"

# name -> the flags that differ from the common command. "pre-LN (old defaults)" pins what the recipe's defaults
# were before this ablation, so that the comparison stays meaningful after the defaults change.
OLD_DEFAULTS = ["--norm_first", "True", "--init_std", "0.02", "--learning_rate", "9.88e-4", "--warmup_steps", "300",
                "--dropout", "0.1", "--vocab_size", "8000"]
VARIANTS = {
    "pre-LN (old defaults)": [],
    "post-LN": ["--norm_first", "False"],
    "pre-LN, init std 0.0625 (d^-0.5)": ["--init_std", "0.0625"],
    "pre-LN, peak lr 2e-3": ["--learning_rate", "2e-3"],
    "pre-LN, dropout 0": ["--dropout", "0"],
    "pre-LN, vocabulary 4000": ["--vocab_size", "4000"],
    "pre-LN, warm-up 100": ["--warmup_steps", "100"],
    "post-LN, dropout 0": ["--norm_first", "False", "--dropout", "0"],
    "pre-LN, no embedding scale": ["--scale_embedding", "False"],
    "post-LN, dropout 0, vocabulary 4000": ["--norm_first", "False", "--dropout", "0", "--vocab_size", "4000"],
    "post-LN, dropout 0, warm-up 100": ["--norm_first", "False", "--dropout", "0", "--warmup_steps", "100"],
    "post-LN, dropout 0, batch 32": ["--norm_first", "False", "--dropout", "0", "--per_device_train_batch_size",
                                     "32"],
    # the demo's learning rate and batching, measured with --steps 900
    "post-LN, dropout 0, batch 32, peak lr 5e-4": ["--norm_first", "False", "--dropout", "0",
                                                   "--per_device_train_batch_size", "32", "--learning_rate", "5e-4"],
    "post-LN, dropout 0, batch 32, peak lr 7e-4": ["--norm_first", "False", "--dropout", "0",
                                                   "--per_device_train_batch_size", "32", "--learning_rate", "7e-4"],
}
# the demo's token batches without dropout, both placements on one grid of peaks (the first pair measured at 7e-4;
# pre-LN is said to tolerate a larger step than post-LN, Xiong et al. 2020): each placement at its best step size
TOKEN_BATCHES = ["--dropout", "0", "--max_tokens", "1536"]
for _peak in ("7e-4", "1e-3", "1.4e-3", "2e-3"):
    VARIANTS[f"post-LN, dropout 0, 1536-token batches, peak lr {_peak}"] = ["--norm_first", "False", *TOKEN_BATCHES,
                                                                          "--learning_rate", _peak]
    VARIANTS[f"pre-LN, dropout 0, 1536-token batches, peak lr {_peak}"] = [*TOKEN_BATCHES, "--learning_rate", _peak]
COMMON = ["--corpus", "libreoffice-help", "--pair", "en-fr", "--preset", "small", "--per_device_train_batch_size",
          "64", "--save_steps", "100", "--average_last_n", "3", "--eval_strategy", "no", "--max_eval_samples", "200",
          "--max_predict_samples", "500", "--logging_steps", "50", "--num_beams", "4"]


def flags_of(name, extra_variants):
    return extra_variants.get(name, VARIANTS.get(name))


def merged(base, change):
    """`base` flags with those in `change` replaced (flags come in --name value pairs)."""
    values = dict(zip(base[::2], base[1::2]))
    values.update(zip(change[::2], change[1::2]))
    return [item for pair in values.items() for item in pair]


def losses(log_text):
    """The training loss Trainer logged, every --logging_steps (50) steps: [mean of steps 1-50, 51-100, ...]."""
    return [float(value) for value in re.findall(r"'loss': '?([0-9.]+)", log_text)]


def backfill_losses(runs, workdir):
    """Add the logged losses to runs recorded before the file kept them, from each run's own log (never re-run)."""
    for run_ in runs:
        name = re.sub(r"[^a-zA-Z0-9]+", "-", run_["name"]).strip("-")
        log = Path(workdir) / f"{name}-{run_['steps_requested']}.log"
        if "train_loss" not in run_ and log.is_file():
            run_["train_loss"] = losses(log.read_text())
            run_["train_loss_source"] = f"backfilled from {log.name}, the run's own log"
    return runs


def run(name, flags, steps, seed, workdir):
    out = workdir / re.sub(r"[^a-zA-Z0-9]+", "-", name).strip("-") / f"steps-{steps}"
    command = [sys.executable, "-m", "recipes.train_translation", *COMMON, "--max_steps", str(steps), "--seed",
               str(seed), "--output_dir", str(out), "--overwrite_output_dir", *merged(OLD_DEFAULTS, flags)]
    start = time.time()
    log = workdir / (out.parent.name + f"-{steps}.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as handle:
        status = subprocess.call(command, stdout=handle, stderr=subprocess.STDOUT,
                                 cwd=Path(__file__).resolve().parents[1])
    minutes = (time.time() - start) / 60
    if status:
        raise SystemExit(f"{name}: the recipe exited {status}; see {log}")
    text = log.read_text()
    runtime = re.findall(r"'train_runtime': '?([0-9.]+)", text)
    results = json.loads((out / "results.json").read_text())
    chosen = results["results"][results["chosen"]]
    return {"flags": flags, "command": " ".join(command[1:]), "steps": results["steps"], "minutes": minutes,
            "train_loss": losses(text),
            "train_seconds": float(runtime[-1]) if runtime else None,
            "steps_per_second": results["steps"] / float(runtime[-1]) if runtime else None,
            "chosen": results["chosen"], "validation_bleu": chosen["validation"]["bleu"],
            "validation_by_candidate": {k: v["validation"]["bleu"] for k, v in results["results"].items()},
            "test_bleu": chosen["test"]["bleu"], "test_chrf": chosen["test"]["chrf"],
            "bleu_signature": chosen["test"]["bleu_signature"]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, nargs="+", default=[600])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), help="Names from VARIANTS (or --combine).")
    parser.add_argument("--combine", nargs="+", default=[], metavar="NAME=FLAGS",
                        help='Extra variants, e.g. "combined=--init_std 0.0625 --learning_rate 2e-3".')
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--workdir", default="outputs/learning_speed")
    parser.add_argument("--output", default=str(RESULTS / "learning_speed.json"))
    parser.add_argument("--backfill_losses", nargs="*", metavar="WORKDIR",
                        help="Only add the logged training losses to recorded runs, from their logs in these folders.")
    parser.add_argument("--reuse_runs", action="store_true",
                        help="Keep a run already in --output with the same flags, steps and seed (its own times).")
    args = parser.parse_args(argv)
    extra = {}
    for item in args.combine:
        name, _, flags = item.partition("=")
        extra[name] = flags.split()
    for name in args.variants:
        if flags_of(name, extra) is None:
            parser.error(f"--variants: unknown variant {name!r}; known: {', '.join([*VARIANTS, *extra])}")
    if any(step < 100 for step in args.steps):
        parser.error("--steps: at least 100 (a checkpoint every 100 steps)")
    output = Path(args.output)
    done = json.loads(output.read_text()) if output.is_file() else {"runs": []}
    runs = done["runs"]
    if args.backfill_losses is not None:
        for workdir in args.backfill_losses or [args.workdir]:
            runs = backfill_losses(runs, workdir)
        output.write_text(json.dumps({"runs": runs}, indent=2, ensure_ascii=False) + "\n")
        return 0
    for steps in args.steps:
        for name in args.variants:
            flags = flags_of(name, extra)
            same = [r for r in runs if r["name"] == name and r["steps_requested"] == steps and r["seed"] == args.seed]
            if args.reuse_runs and same and same[0]["flags"] == flags:
                print(f"reusing {name} at {steps} steps (run at {same[0]['provenance']['commit']})", flush=True)
                continue
            print(f"training {name} for {steps} steps", flush=True)
            where = provenance()  # before the run: the commit and tree that trained it
            result = {"name": name, "steps_requested": steps, "seed": args.seed, **run(name, flags, steps, args.seed,
                                                                                       Path(args.workdir)),
                      "provenance": where}
            runs = [r for r in runs if not (r["name"] == name and r["steps_requested"] == steps and
                                            r["seed"] == args.seed)] + [result]
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(json.dumps({"runs": runs}, indent=2, ensure_ascii=False) + "\n")
            print(f"  validation BLEU {result['validation_bleu']:.2f}, test BLEU {result['test_bleu']:.2f}, "
                  f"{result['steps_per_second'] or 0:.2f} steps/s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
