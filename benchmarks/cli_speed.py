"""The translate command line end to end, as a user runs it: lines per second on a file, and one-sentence latency.

    python benchmarks/cli_speed.py                          # small and base dims, 2,000 lines
    python benchmarks/cli_speed.py --dims small --lines 500
    python benchmarks/speed.py --cli                        # the same

For each size, one joint BPE tokenizer (trained on the libreoffice-help en-fr training split) and, untrained with the
same seed, an hf_vanilla model (the recipe's preset) and an HF Marian of the very same dims, vocabulary and special
tokens (`benchmarks/quality.py`'s pair), each saved as a folder; hf_vanilla is also exported by `recipes.export` to
CTranslate2 float32 and int8. Each row is the command a user types,

    python -m recipes.translate --model FOLDER [--engine ctranslate2] --input FILE --num_beams B --length_penalty 0.6

timed from start to exit (loading included, each engine's default layout), on the first --lines English sentences
of the validation and test splits, greedy and beam 4. Marian runs through the same command (its folder is a plain
transformers folder): the same batching, the same length rule, `generate`. The models are untrained with the special
tokens' embeddings zeroed, so each decodes every line up to its length limit (input + 50 tokens) and every row does the
same work; the output tokens are counted and reported beside the lines to show it.

Start-up: the same command on a one-line file, greedy, start to exit (Python, the engine's imports, loading the
folder): what each file row pays before its first line, so that a row's lines per second can be read without it.

Latency: one sentence at a time through the same engine objects (`recipes.translate`'s), after a warm-up, in a fresh
process per engine: p50 and p95 over --latency_sentences sentences, beam 4 (what the page does per request).
Shared machines drift, so rows are measured in alternation (--repeats rounds) and medians compared.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hf_vanilla.training.cards import markdown_table  # noqa: E402
from hf_vanilla.training.provenance import ROOT, provenance  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
ENGINES = ["transformers", "ctranslate2 float32", "ctranslate2 int8", "marian"]


def prepare(dims, lines, workdir, seed):
    """The folders and the input file for one size (reused when present)."""
    import torch
    from quality import untrained_models
    from transformers import set_seed

    from hf_vanilla.training.corpora import load_corpus
    from hf_vanilla.training.tokenizer import train_bpe_tokenizer

    folder = workdir / dims
    done = folder / "ready"
    raw = load_corpus("libreoffice-help", "en-fr")
    sentences = (list(raw["validation"]["source"]) + list(raw["test"]["source"]))[:lines]
    if len(sentences) < lines:
        raise SystemExit(f"--lines {lines}: the validation and test splits hold only {len(sentences)} sentences")
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / f"input-{lines}.txt").write_text("\n".join(sentences) + "\n", encoding="utf-8")
    if not done.is_file():
        tokenizer = train_bpe_tokenizer(list(raw["train"]["source"]) + list(raw["train"]["target"]), vocab_size=8000)
        set_seed(seed)
        for name, model in untrained_models(tokenizer, dims).items():
            # untrained, a model echoes its input token (the start token <s>, over and over) or says </s> at once;
            # with the special tokens' (tied) embeddings zeroed their logits are 0 among thousands of spread ones, so
            # every engine decodes ordinary tokens up to the length limit and each row does the same work (checked:
            # the output token counts are reported)
            with torch.no_grad():
                for special in {model.config.bos_token_id, model.config.eos_token_id, model.config.pad_token_id}:
                    model.get_input_embeddings().weight[special] = 0
            model.generation_config.num_beams, model.generation_config.length_penalty = 4, 0.6
            model.save_pretrained(folder / name)
            tokenizer.save_pretrained(folder / name)
        for quantization in ("float32", "int8"):
            status = subprocess.call([sys.executable, "-m", "recipes.export", "--model", str(folder / "hf_vanilla"),
                                      "--format", "ctranslate2", "--output_dir", str(folder / f"ct2-{quantization}"),
                                      "--overwrite_output_dir", "True",
                                      *(["--quantization", "int8"] if quantization == "int8" else [])], cwd=ROOT)
            if status:
                raise SystemExit(f"recipes.export --quantization {quantization} exited {status}")
        done.write_text("")
    return folder, workdir / f"input-{lines}.txt"


def command(engine, folder):
    if engine == "transformers":
        return ["--model", str(folder / "hf_vanilla")]
    if engine == "marian":
        return ["--model", str(folder / "marian")]
    return ["--model", str(folder / f"ct2-{engine.split()[1]}"), "--engine", "ctranslate2"]


def run_cli(engine, folder, inputs, beams, tokenizer):
    argv = [sys.executable, "-m", "recipes.translate", *command(engine, folder), "--input", str(inputs),
            "--num_beams", str(beams), "--length_penalty", "0.6"]
    start = time.perf_counter()
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode:
        raise SystemExit(f"{' '.join(argv)} exited {result.returncode}: {result.stderr[-2000:]}")
    outputs = result.stdout.splitlines()
    tokens = sum(len(ids) for ids in tokenizer(outputs, add_special_tokens=False)["input_ids"])
    return {"seconds": seconds, "lines": len(outputs), "output_tokens": tokens,
            "command": " ".join(["python", *argv[1:]])}


LATENCY = """
import json, statistics, sys, time
from types import SimpleNamespace
from recipes.translate import CTranslate2Engine, TransformersEngine
args = SimpleNamespace(model=sys.argv[1], trust_remote_code=False, workers=None, threads=None)
engine = (CTranslate2Engine if sys.argv[2] == "ctranslate2" else TransformersEngine)(args)
sentences = open(sys.argv[3], encoding="utf-8").read().splitlines()[: int(sys.argv[4])]
for sentence in sentences[:3]:
    engine.submit([sentence], 4, 0.6)()
times = []
for sentence in sentences:
    start = time.perf_counter()
    engine.submit([sentence], 4, 0.6)()
    times.append(time.perf_counter() - start)
print(json.dumps(times))
"""


def run_latency(engine, folder, inputs, count):
    flags = command(engine, folder)
    kind = "ctranslate2" if "--engine" in flags else "transformers"
    result = subprocess.run([sys.executable, "-c", LATENCY, flags[1], kind, str(inputs), str(count)], cwd=ROOT,
                            capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"latency of {engine} failed: {result.stderr[-2000:]}")
    times = sorted(json.loads(result.stdout.splitlines()[-1]))
    return {"p50_ms": 1000 * statistics.median(times), "p95_ms": 1000 * times[int(0.95 * (len(times) - 1))],
            "sentences": len(times)}


def measure(dims, args, workdir):
    from transformers import AutoTokenizer

    folder, inputs = prepare(dims, args.lines, workdir, args.seed)
    tokenizer = AutoTokenizer.from_pretrained(folder / "hf_vanilla", trust_remote_code=False)
    rows = {beams: {engine: [] for engine in ENGINES} for beams in (1, 4)}
    # what every file row pays before its first line: starting Python, importing the engine's libraries (torch and
    # transformers come with hf_vanilla), loading the folder; timed as the same command on a one-line file
    one_line = inputs.with_name("input-1.txt")
    one_line.write_text(inputs.read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8")
    startup = {engine: [] for engine in ENGINES}
    for round_ in range(args.repeats):
        for engine in ENGINES:
            startup[engine].append(run_cli(engine, folder, one_line, 1, tokenizer)["seconds"])
            print(f"{dims} start-up {engine} (round {round_ + 1}): {startup[engine][-1]:.1f} s", flush=True)
        for beams in (1, 4):
            for engine in ENGINES:  # in alternation: drift hits every engine alike
                run = run_cli(engine, folder, inputs, beams, tokenizer)
                rows[beams][engine].append(run)
                print(f"{dims} beam {beams} {engine} (round {round_ + 1}): {run['lines'] / run['seconds']:.1f} "
                      f"lines/s, {run['output_tokens']:,} output tokens", flush=True)
    cli = {}
    for beams, engines in rows.items():
        for engine, runs in engines.items():
            seconds = statistics.median(r["seconds"] for r in runs)
            cli[f"beam {beams}, {engine}"] = {
                "beams": beams, "engine": engine, "lines": runs[0]["lines"], "seconds": seconds,
                "lines_per_second": runs[0]["lines"] / seconds, "seconds_each_round": [r["seconds"] for r in runs],
                "output_tokens": runs[0]["output_tokens"], "command": runs[0]["command"]}
    latency = {engine: run_latency(engine, folder, inputs, args.latency_sentences) for engine in ENGINES}
    for engine, value in latency.items():
        print(f"{dims} latency {engine}: p50 {value['p50_ms']:.1f} ms, p95 {value['p95_ms']:.1f} ms", flush=True)
    return {"cli": cli, "latency": latency,
            "startup_seconds": {engine: statistics.median(times) for engine, times in startup.items()}}


TARGETS = {"ctranslate2 float32": 2.0, "ctranslate2 int8": 5.0}  # lines/s over HF Marian's (the serving issue)


def table(results):
    """Lines per second through the command line, as ratios to Marian (same command) and absolute, with and without
    each command's start-up (a one-line run of it); the targets' verdicts; latency."""
    body = []
    for dims, result in results["sizes"].items():
        startups = result.get("startup_seconds", {})  # older files did not time it
        for beams in (1, 4):
            marian = result["cli"][f"beam {beams}, marian"]
            for engine in ENGINES:
                row = result["cli"][f"beam {beams}, {engine}"]
                latency, startup = result["latency"][engine], startups.get(engine)
                ratio = row["lines_per_second"] / marian["lines_per_second"]
                without = ((marian["seconds"] - startups["marian"]) / (row["seconds"] - startup)
                           if startup is not None else None)
                target = TARGETS.get(engine)
                verdict = ("" if target is None else f">= {target:g}x: met" if ratio >= target else
                           f">= {target:g}x: **missed by {target - ratio:.2f}x**")
                body.append([dims, "greedy" if beams == 1 else "beam 4", engine, f"{row['lines_per_second']:.1f}",
                             f"{ratio:.2f}x", f"{without:.2f}x" if without is not None else "", verdict,
                             f"{row['output_tokens']:,}",
                             f"{startup:.1f}" if startup is not None and beams == 1 else "",
                             f"{latency['p50_ms']:.0f} / {latency['p95_ms']:.0f}" if beams == 4 else ""])
    return markdown_table(["dims", "search", "engine (hf_vanilla unless Marian)", "lines/s", "vs Marian",
                           "vs Marian, start-up taken off both", "target", "output tokens",
                           "start-up: one line, start to exit, s", "one sentence, beam 4: p50 / p95 ms"], body)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dims", nargs="+", default=["small", "base"], choices=["small", "base"])
    parser.add_argument("--lines", type=int, default=2000)
    parser.add_argument("--latency_sentences", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=1, help="Rounds of every row, in alternation.")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--workdir", default="outputs/cli_speed")
    parser.add_argument("--output", default=str(RESULTS / "cli_speed.json"))
    args = parser.parse_args(argv)
    for name in ("lines", "latency_sentences", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} {getattr(args, name)}: must be at least 1")
    where = provenance()
    start = time.perf_counter()
    workdir = Path(args.workdir)
    results = {"lines": args.lines, "sizes": {dims: measure(dims, args, workdir) for dims in args.dims}}
    results.update(minutes=(time.perf_counter() - start) / 60, provenance=where)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
