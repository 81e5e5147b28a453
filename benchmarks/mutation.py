"""The mutation-testing pass: how many changes to the model's code the fast tests catch.

    make mutation                                   # installs the [mutation] extra (mutmut), then runs this
    python benchmarks/mutation.py                   # the mutants of FOCUS (below)
    python benchmarks/mutation.py --all             # every mutant of the files in pyproject's [tool.mutmut]
    python benchmarks/mutation.py "hf_vanilla.modeling_vanilla_transformer.x_sinusoidal*"   # some of them

mutmut changes one thing at a time (an operator, a constant, an argument, a return value) in the model's forward code,
masks, positions, residual/LayerNorm, pooling, loss and cache code (hf_vanilla/modeling_vanilla_transformer.py), the
decoding defaults (hf_vanilla/inference.py) and the learning-rate schedule (hf_vanilla/training/budget.py), on the lines
the tests reach, and runs the tests that cover each change (pyproject's [tool.mutmut] names them). A mutant the tests
catch is "killed"; one they miss "survived". Writes benchmarks/results/mutation.json (with provenance): the counts,
the score (killed + timeout) / (killed + timeout + survived), and every survivor's name (`mutmut show NAME` prints
its diff), the survivors read and found equivalent apart (EQUIVALENT, with the reason each) and the score without them.
Run it alone: on a busy machine more mutants time out. benchmarks/results/mutation_before.json is the pass before the
tests written for its survivors.
mutmut keeps its work in mutants/ and resumes there; delete that folder to start over.
"""

import argparse
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hf_vanilla.training.provenance import ROOT, provenance  # noqa: E402

MUTMUT = Path(sys.executable).with_name("mutmut")
_M = "hf_vanilla.modeling_vanilla_transformer."
# what the pass covers by default (the list; `--all` takes every mutant): attention, masks, positions,
# residual/LayerNorm, pooling and loss, the cache, the decoding rule, the learning-rate schedule
FOCUS = [
    _M + "x_eager_attention_forward*", _M + "xǁVanillaTransformerAttentionǁ*", _M + "x__attention_interface*",
    _M + "x__cached_cross_attention*", _M + "x__padding_mask*", _M + "x__causal_mask*",
    _M + "x_sinusoidal_position_encoding*", _M + "xǁ_VanillaTransformerStackǁ_embed*",
    _M + "xǁVanillaTransformerScaledEmbeddingǁ*", _M + "xǁ_SubLayerMixinǁ_residual*",
    _M + "xǁ_VanillaTransformerStackǁ_final_norm*", _M + "xǁVanillaTransformerFeedForwardǁforward*",
    _M + "xǁVanillaTransformerForSequenceClassificationǁforward*",
    _M + "xǁVanillaTransformerForSequenceClassificationǁ_loss*", _M + "x__past_length*",
    _M + "x__static_cache_length*", _M + "xǁVanillaTransformerForConditionalGenerationǁ_rule_output_length*",
    _M + "x_shift_tokens_right*", "hf_vanilla.training.budget.*",
]
# Survivors read one by one and found to change no behaviour this suite can observe (the reason each), so no test can
# kill them; the results file lists them apart. Keyed by mutant name: a name is stable while its function is unchanged.
_CPU = "an explicit device (or none) is the same device for CPU tensors, the only device the suite runs on"
_F32 = "the same dtype in float32 (the suite's and every CPU run's dtype): the cast is there for reduced precision"
_NEWEST = ("this transformers keeps the static cache's count itself; `cache_position` is read by 5.0 only, where the "
           "oldest stack's static-cache test (make test-oldest) covers it")
_EQUIVALENT = {
    "x__attention_interface__mutmut_3": "another name for the eager fallback: an unknown name also gives eager",
    "x__attention_interface__mutmut_4": "another name for the eager fallback: an unknown name also gives eager",
    "x__attention_interface__mutmut_5": "the 5.0 lookup, which gives the same kernel on this transformers",
    "x__attention_interface__mutmut_9": "the 5.0 lookup, which gives the same kernel on this transformers",
    "x__attention_interface__mutmut_10": "the 5.0 lookup, which gives the same kernel on this transformers",
    "x__cached_cross_attention__mutmut_3": "None for False: both falsy",
    "x__cached_cross_attention__mutmut_5": "no default for False: None, falsy",
    "x__causal_mask__mutmut_3": _CPU, "x__causal_mask__mutmut_5": _CPU,
    "x__padding_mask__mutmut_25": "`<=` for `<`: at equality the mask is padded by zero slots, a no-op",
    # a static cache's slots past the mask lie after every query's position: the causal mask hides them anyway
    **{f"x__padding_mask__mutmut_{n}": "another value for the static cache's future slots, which causality hides"
       for n in (29, 32, 36)},
    "x__static_cache_length__mutmut_8": "getattr without a default: every cache class here has `layers`",
    "x_eager_attention_forward__mutmut_1": "a default the one caller always overrides (dropout)",
    "x_eager_attention_forward__mutmut_2": "a default the one caller always overrides (is_causal)",
    "x_eager_attention_forward__mutmut_15": "transpose(-1, 2) is transpose(-1, -2) on 4-D keys",
    "x_eager_attention_forward__mutmut_20": _CPU, "x_eager_attention_forward__mutmut_23": _CPU,
    "x_eager_attention_forward__mutmut_24": "shape[2:] is shape[-2:] on 4-D scores",
    "x_eager_attention_forward__mutmut_25": "a (h, T, S) lower-triangular mask broadcasts as the (T, S) one",
    "x_eager_attention_forward__mutmut_35": _F32, "x_eager_attention_forward__mutmut_38": _F32,
    "x_eager_attention_forward__mutmut_41": _F32,
    "x_eager_attention_forward__mutmut_50": "training=True with p=0.0 (what the caller passes in eval): no dropout",
    "x_sinusoidal_position_encoding__mutmut_4": "integer positions divided by float64 powers are float64 anyway",
    "x_sinusoidal_position_encoding__mutmut_6": "integer positions divided by float64 powers are float64 anyway",
    "x_sinusoidal_position_encoding__mutmut_30": "a float32 table of float64 values: the result is float32 anyway",
    "x_sinusoidal_position_encoding__mutmut_33": "a float32 table of float64 values: the result is float32 anyway",
    **{f"xǁVanillaTransformerAttentionǁforward__mutmut_{n}": _NEWEST for n in (36, 37, 38, 43, 47)},
    "xǁVanillaTransformerForSequenceClassificationǁ_loss__mutmut_33": "squeeze(1) is squeeze(-1) on 2-D logits",
    "xǁVanillaTransformerForSequenceClassificationǁ_loss__mutmut_38": "squeeze(1) is squeeze(-1) on 2-D logits",
    "xǁVanillaTransformerForSequenceClassificationǁforward__mutmut_56": _F32,
    "xǁ_VanillaTransformerStackǁ_embed__mutmut_25": _CPU, "xǁ_VanillaTransformerStackǁ_embed__mutmut_27": _CPU,
    "xǁ_VanillaTransformerStackǁ_embed__mutmut_30": "the position table is a buffer: it has the model's dtype already",
}
EQUIVALENT = {_M + name: reason for name, reason in _EQUIVALENT.items()}
EQUIVALENT["hf_vanilla.training.budget.xǁInverseSqrtScheduleǁ__call____mutmut_1"] = (
    "`<=` for `<` at the last warm-up step: step / warmup and sqrt(warmup / step) are both 1 there")
_RESULT = re.compile(r"^\s*(\S+):\s+(killed|survived|timeout|suspicious|no tests|skipped|not checked|segfault"
                     r"|caught by type check|check was interrupted by user)\s*$")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="mutmut mutant names or globs (default: FOCUS)")
    parser.add_argument("--all", action="store_true", help="every mutant of the files in [tool.mutmut]")
    parser.add_argument("--max_children", type=int, default=2, help="mutants tested at once (one per core)")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "mutation.json"))
    args = parser.parse_args(argv)
    if not MUTMUT.is_file() and not shutil.which("mutmut"):
        parser.error("mutmut is not installed: `make mutation`, or pip install -e '.[mutation]' -c constraints.txt")
    if args.max_children < 1:
        parser.error(f"--max_children {args.max_children}: at least 1")
    mutmut = str(MUTMUT) if MUTMUT.is_file() else shutil.which("mutmut")
    where, start = provenance(), time.time()
    names = [] if args.all else (args.names or FOCUS)
    # one thread per worker: the workers are the parallelism (and torch's thread pool does not survive a fork)
    # and the tests' trained reversal model is trained once for the pass, not once per mutant (tests/conftest.py)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
           "HF_VANILLA_TEST_MODELS": str(ROOT / "mutants" / "test-models")}
    status = subprocess.call([mutmut, "run", "--max-children", str(args.max_children), *names], cwd=ROOT, env=env)
    minutes = (time.time() - start) / 60
    listing = subprocess.run([mutmut, "results", "--all", "true"], cwd=ROOT, capture_output=True, text=True)
    outcomes = {m.group(1): m.group(2) for line in listing.stdout.splitlines() if (m := _RESULT.match(line))}
    if names:  # the mutants this run was asked about
        outcomes = {name: outcome for name, outcome in outcomes.items()
                    if any(fnmatch.fnmatchcase(name, pattern) for pattern in names)}
    if not outcomes:
        print(f"mutmut (exit {status}) reported no mutants:\n{listing.stdout[-2000:]}{listing.stderr[-2000:]}",
              file=sys.stderr)
        return 1
    counts = Counter(outcomes.values())
    survivors = sorted(name for name, outcome in outcomes.items() if outcome == "survived")
    # the survivors read and found equivalent (no test can see them) are listed apart, with the reason
    survivors_open = [name for name in survivors if name not in EQUIVALENT]
    # a timeout is a mutant the tests noticed (it made them run past mutmut's limit), so it counts as caught; the file
    # keeps the counts apart
    caught = counts["killed"] + counts["timeout"]
    by_file = Counter(name.split(".x")[0].rsplit(".", 1)[-1] for name in outcomes)
    result = {"provenance": where, "minutes": minutes, "names": names or ["(all)"], "counts": dict(counts),
              "score": caught / (caught + len(survivors)) if caught + len(survivors) else None,
              "mutants_per_module": dict(by_file), "survivors": survivors,
              "equivalent": {name: EQUIVALENT[name] for name in survivors if name in EQUIVALENT},
              "survivors_open": survivors_open}
    if caught + len(survivors_open):
        result["score_without_equivalent"] = caught / (caught + len(survivors_open))
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(f"mutation score {result['score']:.3f}: {counts['killed']} killed, {counts['timeout']} timed out, "
          f"{counts['survived']} survived ({len(result['equivalent'])} of them equivalent: "
          f"{result.get('score_without_equivalent') or 0:.3f} without them), {counts['no tests']} reached by no "
          f"selected test ({minutes:.1f} min); written to {args.output}")
    for name in result["survivors_open"]:
        print(f"  survived: {name} (mutmut show {name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
