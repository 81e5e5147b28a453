"""Does the CTranslate2 export decode what the model decodes? Token equality and BLEU on a real test split.

    python benchmarks/engine_quality.py --model outputs/demo                 # libreoffice-help en-fr test split
    python benchmarks/engine_quality.py --model outputs/demo --max_samples 100 --json /tmp/check.json   # a quick look

For a trained translation model folder: exports it to CTranslate2 in float32 and int8 (`export_ctranslate2`, what
`recipes.export` runs), translates every test source with the model's `generate` and with both engines, greedy and
beam 4 (length penalty 0.6), in the same batches and with the same "input length + 50" limit, and reports the share
of sentences whose token sequences are identical, and test BLEU / chrF of each. Written with its provenance (commit,
command, machine, date) and the model's own (its results.json and card) to benchmarks/results/engine_quality.json,
the README's `engine-quality` table (benchmarks/tables.py); a partial run (--max_samples) only where --json says.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import hf_vanilla  # noqa: E402,F401
from hf_vanilla.export_ctranslate2 import CTranslate2Translator, export_ctranslate2  # noqa: E402
from hf_vanilla.inference import DEFAULT_LENGTH_PENALTY, output_length_limit  # noqa: E402
from hf_vanilla.training.cards import markdown_table  # noqa: E402
from hf_vanilla.training.corpora import load_corpus  # noqa: E402
from hf_vanilla.training.metrics import translation_scores  # noqa: E402
from hf_vanilla.training.provenance import ROOT, provenance  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


@torch.no_grad()
def generate_ids(model, tokenizer, batches, num_beams):
    special = {model.config.pad_token_id, model.config.eos_token_id}
    outputs = []
    for batch in batches:
        padded = tokenizer.pad({"input_ids": batch}, return_tensors="pt")
        generated = model.generate(**padded, num_beams=num_beams, length_penalty=DEFAULT_LENGTH_PENALTY,
                                   early_stopping=True, max_length=output_length_limit(
                                       padded["input_ids"].shape[1], model.config.max_position_embeddings) + 1)
        outputs += [[t for t in row[1:] if t not in special] for row in generated.tolist()]
    return outputs


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a trained translation model folder")
    parser.add_argument("--corpus", default="libreoffice-help")
    parser.add_argument("--pair", default="en-fr")
    parser.add_argument("--max_samples", type=int, default=None, help="first N test sentences (default: all)")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--json", default=None, help="Where to write the results (default: the published "
                                                      "benchmarks/results/engine_quality.json, for a whole split).")
    args = parser.parse_args()
    if args.max_samples and not args.json:
        parser.error("--max_samples: a partial run is not published; give --json PATH to keep it")
    where = provenance()
    start_all = time.perf_counter()

    test = load_corpus(args.corpus, args.pair)["test"]
    if args.max_samples:
        test = test.select(range(min(args.max_samples, len(test))))
    model = AutoModelForSeq2SeqLM.from_pretrained(args.model, trust_remote_code=False).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.model, trust_remote_code=False)
    limit = model.config.max_position_embeddings - 1
    sources, references = list(test["source"]), list(test["target"])
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))  # batches of similar length, as translate
    ids = tokenizer([sources[i] for i in order], truncation=True, max_length=limit)["input_ids"]
    batches = [ids[start : start + args.batch_size] for start in range(0, len(ids), args.batch_size)]

    folder = Path(tempfile.mkdtemp(prefix="engine-quality-"))
    engines = {}
    for quantization in ("float32", "int8"):
        export_ctranslate2(args.model, folder / quantization, quantization=quantization)
        engines[f"ctranslate2 {quantization}"] = CTranslate2Translator(folder / quantization)

    def scores(token_lists):
        texts = [None] * len(order)
        for position, tokens in zip(order, tokenizer.batch_decode(token_lists, skip_special_tokens=True)):
            texts[position] = tokens.strip()
        found = translation_scores(texts, references)
        return {"bleu": found["bleu"], "chrf": found["chrf"]}

    summary = Path(args.model) / "results.json"  # the recipe's: steps and the weights chosen
    trained = json.loads(summary.read_text()) if summary.is_file() else {}
    report = {"provenance": where, "model": Path(args.model).name, "norm_first": model.config.norm_first,
              "trained_steps": trained.get("steps"), "trained_weights": trained.get("chosen"),
              "corpus": f"{args.corpus} {args.pair} test", "sentences": len(sources), "decoding": {}}
    for name, beams in (("greedy", 1), ("beam4", 4)):
        start = time.perf_counter()
        reference_ids = generate_ids(model, tokenizer, batches, beams)
        rows = {"transformers generate": {**scores(reference_ids), "seconds": time.perf_counter() - start}}
        for engine_name, engine in engines.items():
            start = time.perf_counter()
            waits = [engine.translate_tokens(batch, beams, DEFAULT_LENGTH_PENALTY, asynchronous=True)
                     for batch in batches]  # every batch queued: the engine's workers share them
            engine_ids = [out for wait in waits for out in wait()]
            seconds = time.perf_counter() - start
            same = sum(a == b for a, b in zip(reference_ids, engine_ids)) / len(reference_ids)
            rows[engine_name] = {**scores(engine_ids), "seconds": seconds, "identical_tokens_share": same}
        report["decoding"][name] = rows
        for engine_name, row in rows.items():
            print(f"{name:6} {engine_name:22} BLEU {row['bleu']:6.2f} chrF {row['chrf']:6.2f} "
                  f"{row['seconds']:7.1f} s" + (f"  identical to generate: {row['identical_tokens_share']:.2%}"
                                                  if "identical_tokens_share" in row else ""), flush=True)
    report["minutes"] = (time.perf_counter() - start_all) / 60
    path = Path(args.json) if args.json else RESULTS / "engine_quality.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {path}")


def table(run):
    """The README's rows: each decoding's BLEU through generate and both engines, and the share of identical
    outputs."""
    rows = []
    for name, label in (("beam4", "beam 4"), ("greedy", "greedy")):
        decoding = run["decoding"][name]
        generate = decoding["transformers generate"]
        rows.append([label, f"{generate['bleu']:.2f}", f"{generate['seconds']:.1f} s"] + [
            f"{decoding[engine]['bleu']:.2f} ({decoding[engine]['identical_tokens_share']:.1%} identical), "
            f"{decoding[engine]['seconds']:.1f} s" for engine in ("ctranslate2 float32", "ctranslate2 int8")])
    return markdown_table(["decoding", "generate BLEU", "generate time",
                           "CTranslate2 float32 BLEU (identical tokens), time",
                           "CTranslate2 int8 BLEU (identical tokens), time"], rows)


if __name__ == "__main__":
    main()
