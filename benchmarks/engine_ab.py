"""Is an engine cell "under 0.95x Marian" the export's cost or the machine's noise? An A/B in CTranslate2.

    python benchmarks/engine_ab.py                       # small dims, int8, 4 rounds
    python benchmarks/engine_ab.py --dims base --quantization float32 --rounds 6

benchmarks/speed.py measures each CTranslate2 engine once per round, always in the same order, and compares medians
of three rounds. Here, for one size and quantization: hf_vanilla (pre-LN) and hf_vanilla post-LN exported by
`ctranslate2_spec`, HF Marian converted by CTranslate2's own converter, and that same Marian folder entered a second
time as if it were another engine. Every engine runs in a fresh process (speed.py's probe: a warm-up call, then the
median of three), in an order that rotates each round, greedy and beam 4, in both thread layouts. The Marian-vs-itself
ratio is what "no difference" measures on this machine; a cell is only a finding where it falls outside that spread.

It also compares the exported networks themselves: each spec's variables (name, shape, dtype after quantization) as
the engine receives them, so a difference in speed can be told from a difference in what is computed.
Writes benchmarks/results/engine_ab.json (with provenance) and prints a table.
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hf_vanilla.training.cards import markdown_table  # noqa: E402
from hf_vanilla.training.provenance import ROOT, provenance  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
MARIAN_AGAIN = "marian (same folder again)"


def spec_variables(spec):
    """{name: [shape, dtype]} of a validated, optimised spec: what the engine loads (an alias: the name it shares)."""
    return {name: ["alias", value] if isinstance(value, str) else [list(value.shape), str(value.dtype)]
            for name, value in spec.variables().items()}


def export(dims, quantization, folder):
    """The three folders, and how each hf_vanilla spec differs from Marian's (variables only in one, or changed)."""
    from speed import POST_LN, build_marian, build_vanilla, engine_spec_makers

    torch.manual_seed(0)
    models = {"hf_vanilla": build_vanilla(dims, 0.1), POST_LN: build_vanilla(dims, 0.1, norm_first=False),
              "marian": build_marian(dims, 0.1)}
    folders, variables = {}, {}
    for name, make in engine_spec_makers(models).items():
        spec = make()
        spec.validate()
        spec.optimize(quantization=quantization)
        variables[name] = spec_variables(spec)
        folders[name] = Path(folder) / name.replace(" ", "-")
        folders[name].mkdir(parents=True)
        spec.save(str(folders[name]))
    marian = variables["marian"]
    differences = {}
    for name in ("hf_vanilla", POST_LN):
        ours = variables[name]
        differences[name] = {
            "only_in_hf_vanilla": sorted(set(ours) - set(marian)),
            "only_in_marian": sorted(set(marian) - set(ours)),
            "changed": {key: {"hf_vanilla": ours[key], "marian": marian[key]}
                        for key in sorted(set(ours) & set(marian)) if ours[key] != marian[key]}}
    folders[MARIAN_AGAIN] = folders["marian"]
    return folders, differences


def main(argv=None):
    from speed import DIMS, ENGINE_LAYOUTS, batch, measure_engine

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dims", choices=list(DIMS), default="small")
    parser.add_argument("--quantization", choices=["float32", "int8"], default="int8")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--gen_batch_size", type=int, default=16)
    parser.add_argument("--length", type=int, default=32)
    parser.add_argument("--new_tokens", type=int, default=32)
    parser.add_argument("--output", default=str(RESULTS / "engine_ab.json"))
    args = parser.parse_args(argv)
    if args.rounds < 2:
        parser.error(f"--rounds {args.rounds}: at least 2, so that the order can rotate")
    where = provenance()
    start = time.perf_counter()
    folders, differences = export(DIMS[args.dims], args.quantization, tempfile.mkdtemp(prefix="engine-ab-"))
    source, _ = batch(args.gen_batch_size, args.length, torch.device("cpu"), seed=1)  # speed.py's generation batch
    names = list(folders)
    samples = {layout: {name: {"greedy": [], "beam4": []} for name in names} for layout in ENGINE_LAYOUTS}
    for round_ in range(args.rounds):
        order = names[round_ % len(names):] + names[:round_ % len(names)]  # each engine first in turn
        for layout in ENGINE_LAYOUTS:
            for name in order:
                found = measure_engine(folders[name], layout, source, args.new_tokens, torch.device("cpu"))
                for mode in ("greedy", "beam4"):
                    samples[layout][name][mode].append(found[mode]["tokens"] / found[mode]["seconds"])
        print(f"round {round_ + 1} of {args.rounds} done", flush=True)
    results = {"dims": args.dims, "quantization": args.quantization, "rounds": args.rounds,
               "differences_from_marian": differences, "samples_tokens_per_s": samples,
               "minutes": (time.perf_counter() - start) / 60, "provenance": where}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    return 0


def differences_text(results):
    """One sentence per hf_vanilla export: what the engine loads that Marian's export does not, or loads otherwise."""
    sentences = []
    for name, found in results["differences_from_marian"].items():
        def shape(key, side):
            return " x ".join(map(str, found["changed"][key][side][0]))

        parts = [f"only in it: {', '.join(found['only_in_hf_vanilla'])}" if found["only_in_hf_vanilla"] else "",
                 f"only in Marian's: {', '.join(found['only_in_marian'])}" if found["only_in_marian"] else "",
                 "other shapes or types: " + ", ".join(f"{key} ({shape(key, 'hf_vanilla')} against "
                                                       f"{shape(key, 'marian')})" for key in found["changed"])
                 if found["changed"] else ""]
        sentences.append(f"{name}: " + ("; ".join(part for part in parts if part) or "none"))
    return ". ".join(sentences) + "."


def table(results):
    """Per layout and search: each engine's median tokens/s, its ratio to Marian, and the spread of its rounds."""
    rows = []
    for layout, engines in results["samples_tokens_per_s"].items():
        for mode in ("greedy", "beam4"):
            marian = statistics.median(engines["marian"][mode])
            for name, modes in engines.items():
                values = modes[mode]
                median = statistics.median(values)
                rows.append([layout, "greedy" if mode == "greedy" else "beam 4", name, f"{median:,.0f}",
                             f"{median / marian:.2f}x", f"{min(values):,.0f} - {max(values):,.0f}"])
    return markdown_table(["layout", "search", "engine", "tok/s (median of rounds)", "vs Marian",
                           "rounds: lowest - highest"], rows)


if __name__ == "__main__":
    sys.exit(main())
