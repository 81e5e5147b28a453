"""The top-level model_card.md starts with Hub metadata whose results are the ones benchmarks/quality.py measured."""

import json
from pathlib import Path

from huggingface_hub import ModelCard

REPO = Path(__file__).resolve().parents[1]


def test_model_card_metadata_matches_the_benchmark_results():
    card = ModelCard.load(REPO / "model_card.md")
    data = card.data
    assert data.license == "apache-2.0" and data.library_name == "transformers" and data.language == ["en", "fr"]
    published = {(r.dataset_name, r.metric_type): r.metric_value for r in data.eval_results}
    results = json.loads((REPO / "benchmarks" / "quality_cpu.json").read_text())
    vanilla = results["translation"]["models"]["hf_vanilla"]
    test = vanilla["results"][vanilla["chosen"]]["test"]
    assert published[("libreoffice-help en-fr", "bleu")] == round(test["bleu"], 4)
    assert published[("libreoffice-help en-fr", "chrf")] == round(test["chrf"], 4)
    for corpus, run in results["classification"].items():
        assert published[(f"{corpus} (from scratch)", "accuracy")] == round(run["hf_vanilla"]["accuracy"], 4)
        assert published[(f"{corpus} (from scratch)", "f1")] == round(run["hf_vanilla"]["macro_f1"], 4)
    for corpus, run in results.get("pretrained", {}).get("classification", {}).items():
        assert published[(f"{corpus} (from pre-trained)", "accuracy")] == round(run["accuracy"], 4)
    assert "# hf_vanilla" in card.text
