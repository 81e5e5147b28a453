import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModel, AutoModelForSeq2SeqLM, AutoModelForSequenceClassification

from hf_vanilla import (
    VanillaTransformerForConditionalGeneration,
    VanillaTransformerForSequenceClassification,
    VanillaTransformerModel,
)

# run again against the oldest supported transformers (`make test-oldest`: the core model tests)
pytestmark = pytest.mark.core


def test_round_trip_without_missing_keys_or_pickles(tmp_path, seq2seq, batch):
    seq2seq.save_pretrained(tmp_path)
    files = sorted(os.listdir(tmp_path))
    assert "model.safetensors" in files
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pth", ".pkl", ".ckpt"))]
    loaded, info = AutoModelForSeq2SeqLM.from_pretrained(tmp_path, output_loading_info=True)
    assert isinstance(loaded, VanillaTransformerForConditionalGeneration)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert loaded.lm_head.weight is loaded.model.shared.weight
    torch.testing.assert_close(loaded.eval()(**batch).logits, seq2seq(**batch).logits)
    # one copy of the shared matrix on disk, not three
    stored = load_file(tmp_path / "model.safetensors")
    assert sum(t.shape == seq2seq.model.shared.weight.shape for t in stored.values()) == 1


@pytest.mark.parametrize("tie", [True, False])
@pytest.mark.parametrize("head", [VanillaTransformerForConditionalGeneration, VanillaTransformerForSequenceClassification])
def test_trainer_reloads_a_checkpoint_without_missing_key_warnings(tmp_path, config, head, tie, hf_logs):
    """What Trainer does for load_best_model_at_end: load_state_dict(strict=False), then warn about missing keys
    unless they are exactly `_keys_to_ignore_on_save` (the tied copies, which it re-ties). An untied lm_head is saved."""
    from transformers import Trainer

    config.tie_word_embeddings = tie
    model = head(config)
    model.save_pretrained(tmp_path)
    stored = load_file(tmp_path / "model.safetensors")
    assert ("lm_head.weight" in stored) == (head is VanillaTransformerForConditionalGeneration and not tie)
    trainer = Trainer.__new__(Trainer)  # only its checkpoint-loading helper is exercised
    trainer.model = model
    trainer._issue_warnings_after_load(model.load_state_dict(stored, strict=False))
    clean = hf_logs.text
    hf_logs.clear()
    # the check can fail: a real missing key is reported where the test sees it
    trainer._issue_warnings_after_load(model.load_state_dict(
        {k: v for k, v in stored.items() if k != "model.encoder.layer_norm.weight"}, strict=False))
    broken = hf_logs.text
    assert "missing keys" not in clean
    assert "missing keys" in broken and "model.encoder.layer_norm.weight" in broken


def test_config_writes_auto_map_and_copies_the_code(tmp_path, seq2seq):
    seq2seq.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "vanilla_transformer"
    assert config["auto_map"]["AutoConfig"] == "configuration_vanilla_transformer.VanillaTransformerConfig"
    assert config["auto_map"]["AutoModelForSeq2SeqLM"] == (
        "modeling_vanilla_transformer.VanillaTransformerForConditionalGeneration"
    )
    assert config["auto_map"]["AutoModelForSequenceClassification"] == (
        "modeling_vanilla_transformer.VanillaTransformerForSequenceClassification"
    )
    assert config["auto_map"]["AutoModel"] == "modeling_vanilla_transformer.VanillaTransformerModel"
    assert (tmp_path / "modeling_vanilla_transformer.py").exists()
    assert (tmp_path / "configuration_vanilla_transformer.py").exists()


def test_base_model_loads_from_a_translation_folder(tmp_path, seq2seq, batch):
    seq2seq.save_pretrained(tmp_path)
    base = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(base, VanillaTransformerModel)
    decoder_input_ids = seq2seq.prepare_decoder_input_ids_from_labels(batch["labels"])
    expected = seq2seq.model(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], decoder_input_ids=decoder_input_ids
    ).last_hidden_state
    got = base(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
               decoder_input_ids=decoder_input_ids).last_hidden_state
    torch.testing.assert_close(got, expected)


def test_classifier_from_a_translation_folder_gets_its_encoder(tmp_path, seq2seq):
    seq2seq.save_pretrained(tmp_path)
    classifier = AutoModelForSequenceClassification.from_pretrained(tmp_path, num_labels=3)
    assert isinstance(classifier, VanillaTransformerForSequenceClassification)
    source = dict(seq2seq.model.encoder.named_parameters())
    target = dict(classifier.model.encoder.named_parameters())
    assert source.keys() == target.keys() and len(source) > 10
    for name in source:
        assert torch.equal(source[name], target[name]), name
    assert torch.equal(classifier.model.shared.weight, seq2seq.model.shared.weight)
    assert classifier.model.encoder.embed_tokens.weight is classifier.model.shared.weight


REMOTE_CODE = textwrap.dedent(
    """
    import sys, json
    sys.modules["hf_vanilla"] = None  # `import hf_vanilla` now raises ImportError: only the folder's code is there
    import torch
    from transformers import AutoModelForSeq2SeqLM
    try:
        import hf_vanilla
        raise SystemExit("hf_vanilla was importable")
    except ImportError:
        pass
    folder, inputs = sys.argv[1], json.loads(sys.argv[2])
    model = AutoModelForSeq2SeqLM.from_pretrained(folder, trust_remote_code=True).eval()
    assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
    out = model.generate(input_ids=torch.tensor(inputs["input_ids"]), attention_mask=torch.tensor(inputs["mask"]),
                         max_new_tokens=8, num_beams=2)
    from transformers import AutoModelForSequenceClassification
    classifier = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True, num_labels=2)
    assert torch.equal(classifier.model.shared.weight, model.model.shared.weight)
    print(json.dumps(out.tolist()))
    """
)


def test_trust_remote_code_without_the_package(tmp_path, reversal_model):
    from toy_tasks import _PadOnly, reversal_examples

    sources = _PadOnly().pad(reversal_examples(4, seed=7))
    folder = tmp_path / "model"
    reversal_model.save_pretrained(folder)
    expected = reversal_model.generate(**sources, max_new_tokens=8, num_beams=2).tolist()
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": ""}
    inputs = json.dumps({"input_ids": sources["input_ids"].tolist(), "mask": sources["attention_mask"].tolist()})
    result = subprocess.run(
        [sys.executable, "-c", REMOTE_CODE, str(folder), inputs],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == expected


def test_feature_extraction_works_on_translation_folders_and_refuses_classifier_folders(tmp_path):
    """As for BART: AutoModel's forward shifts the source right when no decoder input is given. A classifier folder
    has no decoder: AutoModel would have initialised it at random (features differing on every load), so it is
    refused, naming the class that loads it."""
    from transformers import pipeline

    from hf_vanilla import VanillaTransformerConfig, VanillaTransformerForSequenceClassification
    from hf_vanilla.training.tokenizer import train_bpe_tokenizer

    tokenizer = train_bpe_tokenizer(["hello world", "the cat sat"] * 20, vocab_size=300)
    config = VanillaTransformerConfig.from_preset("tiny", vocab_size=len(tokenizer), max_position_embeddings=32)
    for name, model in [("seq2seq", VanillaTransformerForConditionalGeneration(config)),
                        ("classifier", VanillaTransformerForSequenceClassification(config))]:
        model.save_pretrained(tmp_path / name)
        tokenizer.save_pretrained(tmp_path / name)
    features = pipeline("feature-extraction", model=str(tmp_path / "seq2seq"))("hello world")
    length = len(tokenizer("hello world")["input_ids"])
    assert len(features[0]) == length and len(features[0][0]) == config.d_model
    with pytest.raises(ValueError, match="54 weights are missing.*AutoModelForSequenceClassification"):
        pipeline("feature-extraction", model=str(tmp_path / "classifier"))
