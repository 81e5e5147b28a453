"""The top-level model_card.md starts with Hub metadata whose results are the ones benchmarks/quality.py measured."""

from pathlib import Path

from huggingface_hub import ModelCard

from benchmarks.quality import published_classification, published_translation

REPO = Path(__file__).resolve().parents[1]


def test_model_card_metadata_matches_the_benchmark_results():
    card = ModelCard.load(REPO / "model_card.md")
    data = card.data
    assert data.license == "apache-2.0" and data.library_name == "transformers" and data.language == ["en", "fr"]
    published = {(r.dataset_name, r.metric_type): r.metric_value for r in data.eval_results}
    # the published result files (benchmarks/results/, each with its provenance), nothing older
    vanilla = published_translation({})["models"]["hf_vanilla"]
    test = vanilla["results"][vanilla["chosen"]]["test"]
    assert published[("libreoffice-help en-fr", "bleu")] == round(test["bleu"], 4)
    assert published[("libreoffice-help en-fr", "chrf")] == round(test["chrf"], 4)
    classification = published_classification({})
    assert set(classification) == {"rotten-tomatoes", "bbc-news"}
    for corpus, run in classification.items():
        assert published[(f"{corpus} (from scratch)", "accuracy")] == round(run["hf_vanilla"]["accuracy"], 4)
        assert published[(f"{corpus} (from scratch)", "f1")] == round(run["hf_vanilla"]["macro_f1"], 4)
    # every published score is one of those (none from a file without provenance)
    assert len(published) == 2 + 2 * len(classification), sorted(published)
    assert "# hf_vanilla" in card.text


def test_every_recipe_card_states_the_model_from_its_live_config():
    """One "Model" line for every recipe's card (hf_vanilla.training.cards.model_description), read from the model
    itself: a changed config must show, whichever recipe wrote the card."""
    from conftest import tiny_config
    from transformers import MarianConfig, MarianMTModel

    from hf_vanilla import VanillaTransformerForConditionalGeneration, VanillaTransformerForSequenceClassification
    from hf_vanilla.training.cards import model_description

    seq2seq = VanillaTransformerForConditionalGeneration(tiny_config(norm_first=False, decoder_layers=1))
    line = model_description(seq2seq, "<mask> for the masked spans")
    assert line.startswith("`VanillaTransformerForConditionalGeneration`: d_model 64, 2+1 layers, 4 heads, ffn 256, "
                           "post-LN, a vocabulary of ")
    assert "<mask> for the masked spans" in line and f"{seq2seq.num_parameters() / 1e6:.1f}M parameters." in line
    classifier = VanillaTransformerForSequenceClassification(tiny_config(num_labels=3, classifier_pooling="max"))
    line = model_description(classifier, "max pooling", encoder_only=True)
    assert ", 2 encoder layers, " in line and "pre-LN" in line and "max pooling" in line
    marian = MarianMTModel(MarianConfig(vocab_size=99, d_model=32, encoder_layers=1, decoder_layers=1,
                                        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=48,
                                        decoder_ffn_dim=48, pad_token_id=1, decoder_start_token_id=1,
                                        eos_token_id=2, max_position_embeddings=16))
    assert "d_model 32, 1+1 layers, 2 heads, ffn 48, post-LN, a vocabulary of 99" in model_description(marian)
