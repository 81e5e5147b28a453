"""Export to CTranslate2: the engine computes what the model computes, and decodes the same tokens."""

import json

import numpy as np
import pytest
import torch
from conftest import scrambled, tiny_config, toy_translation_pairs, write_translation_csv
from test_recipes import TRANSLATION_FLAGS, run_module
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from hf_vanilla import VanillaTransformerForConditionalGeneration, sinusoidal_position_encoding

ctranslate2 = pytest.importorskip("ctranslate2", reason="the [ctranslate2] extra (ctranslate2) is not installed")
from hf_vanilla.export_ctranslate2 import (  # noqa: E402
    CTranslate2Translator,
    available_cores,
    ctranslate2_spec,
    engine_layout,
    export_ctranslate2,
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two small translation models trained by the recipe on the toy pairs: pre-LN and the paper's post-LN."""
    folder = tmp_path_factory.mktemp("ct2")
    data = write_translation_csv(folder / "pairs.csv")
    models = {}
    for name, norm_first in (("pre-LN", True), ("post-LN", False)):
        out = folder / name
        result = run_module("recipes.train_translation", "--train_file", data, "--output_dir", out,
                            *TRANSLATION_FLAGS, "--max_steps", 300, "--warmup_steps", 100, "--learning_rate", 1e-3,
                            "--average_last_n", 1, "--norm_first", norm_first, "--max_eval_samples", 4,
                            "--max_predict_samples", 4)
        assert result.returncode == 0, result.stderr[-3000:]
        models[name] = out
    return models


def sentences():
    """Unseen toy sentences (another seed than training) and a few off-distribution ones."""
    texts = [pair["source"] for pair in toy_translation_pairs(80, seed=7)]
    return texts + ["the cat.", "a", "today the big red black cat sees a dog and a bird and a cat today."]


def hf_tokens(model, tokenizer, texts, num_beams, batch_size=16):
    """model.generate's output ids per text (start, end and padding removed), batched as recipes.translate does."""
    outputs = []
    limit = model.config.max_position_embeddings - 1
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(texts[start : start + batch_size], return_tensors="pt", padding=True)
        generated = model.generate(**batch, num_beams=num_beams, length_penalty=0.6, early_stopping=True,
                                   max_length=min(batch["input_ids"].shape[1] + 50, limit) + 1)
        special = {model.config.pad_token_id, model.config.eos_token_id}
        outputs += [[t for t in row[1:] if t not in special] for row in generated.tolist()]
    return outputs


@pytest.mark.parametrize("name", ["pre-LN", "post-LN"])
def test_greedy_and_beam_tokens_equal_generate(name, trained, tmp_path):
    export_ctranslate2(trained[name], tmp_path / "ct2")
    model = AutoModelForSeq2SeqLM.from_pretrained(trained[name]).eval()
    tokenizer = AutoTokenizer.from_pretrained(trained[name])
    engine = CTranslate2Translator(tmp_path / "ct2")
    texts = sentences()
    for beams in (1, 4):
        expected = hf_tokens(model, tokenizer, texts, beams)
        got = []
        for start in range(0, len(texts), 16):
            got += engine.translate_tokens(tokenizer(texts[start : start + 16])["input_ids"], num_beams=beams,
                                           length_penalty=0.6)
        same = sum(a == b for a, b in zip(expected, got))
        assert same == len(texts), f"beam {beams}: {same}/{len(texts)} equal"
        assert len({tuple(t) for t in expected}) > 10  # the model's outputs depend on the input


def test_engine_scores_equal_the_model_log_probabilities(tmp_path):
    """Teacher-forced log-probabilities from the engine equal the model's: positions (our interleaved sin/cos
    table, handed over as is), scaled embeddings, pre-LN norms and tied projection are represented exactly."""
    from conftest import word_tokenizer

    torch.manual_seed(0)
    words = [f"w{i}" for i in range(36)]
    tokenizer = word_tokenizer(words)
    model = scrambled(VanillaTransformerForConditionalGeneration(tiny_config(vocab_size=len(tokenizer))), std=0.1)
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    export_ctranslate2(tmp_path / "model", tmp_path / "ct2")
    engine = ctranslate2.Translator(str(tmp_path / "ct2"))
    source = ["w1 w5 w9 w3 w30", "w7 w7 w2"]
    target = ["w4 w8 w15 w16 w23 w1 w2", "w3 w3"]
    results = engine.score_batch([tokenizer.tokenize(s) + ["</s>"] for s in source],
                                 [tokenizer.tokenize(t) for t in target])
    for s, t, result in zip(source, target, results):
        ids = tokenizer(s, return_tensors="pt")["input_ids"]
        labels = tokenizer(text_target=t, return_tensors="pt")["input_ids"]  # ends with </s>
        with torch.no_grad():
            logits = model(input_ids=ids, labels=labels).logits[0]
        expected = torch.log_softmax(logits, -1).gather(-1, labels[0][:, None])[:, 0]
        torch.testing.assert_close(torch.tensor(result.log_probs), expected, atol=1e-4, rtol=0)
    spec = ctranslate2_spec(model, [tokenizer.convert_ids_to_tokens(i) for i in range(len(tokenizer))], {})
    torch.testing.assert_close(torch.from_numpy(spec.encoder.position_encodings.encodings),
                               sinusoidal_position_encoding(model.config.max_position_embeddings, model.config.d_model))


def test_cli_export_and_translate_like_the_transformers_engine(trained, tmp_path):
    inputs = tmp_path / "in.txt"
    inputs.write_text("\n".join(sentences()[:12]) + "\n", encoding="utf-8")
    out = tmp_path / "ct2"
    export = run_module("recipes.export", "--model", trained["pre-LN"], "--format", "ctranslate2", "--output_dir", out)
    assert export.returncode == 0, export.stderr[-3000:]
    assert {"model.bin", "shared_vocabulary.json", "tokenizer.json", "generation_config.json"} <= {
        p.name for p in out.iterdir()}
    assert json.loads((out / "generation_config.json").read_text())["num_beams"] == 4
    engine = run_module("recipes.translate", "--engine", "ctranslate2", "--model", out, "--input", inputs)
    reference = run_module("recipes.translate", "--model", trained["pre-LN"], "--input", inputs)
    assert engine.returncode == 0 and reference.returncode == 0, engine.stderr[-3000:] + reference.stderr[-3000:]
    assert engine.stdout == reference.stdout and engine.stdout.count("\n") == 12
    # many batches in flight (one sentence each, 3 workers): the same lines, in the input's order
    spread = run_module("recipes.translate", "--engine", "ctranslate2", "--model", out, "--input", inputs,
                        "--batch_size", 1, "--workers", 3)
    assert spread.returncode == 0, spread.stderr[-3000:]
    assert spread.stdout == reference.stdout
    assert CTranslate2Translator(out).workers == available_cores()  # the default layout: a worker per core
    int8 = run_module("recipes.export", "--model", trained["pre-LN"], "--output_dir", tmp_path / "int8",
                      "--quantization", "int8")
    assert int8.returncode == 0, int8.stderr[-3000:]
    assert run_module("recipes.translate", "--engine", "ctranslate2", "--model", tmp_path / "int8", "--input",
                      inputs).stdout.count("\n") == 12


def test_the_engines_attention_is_the_models_and_the_cli_draws_it(trained, tmp_path):
    """The heatmap served from an engine folder shows what the transformers model shows: the last layer's
    cross-attention averaged over heads, row for row of the output."""
    from hf_vanilla.inference import cross_attention

    out = tmp_path / "ct2"
    export_ctranslate2(trained["pre-LN"], out)
    engine = CTranslate2Translator(out)
    model = AutoModelForSeq2SeqLM.from_pretrained(trained["pre-LN"])
    tokenizer = AutoTokenizer.from_pretrained(trained["pre-LN"])
    for sentence in sentences()[:3]:
        translation, weights, source, target = engine.cross_attention(sentence, num_beams=2)
        expected, reference, expected_source, expected_target = cross_attention(model, tokenizer, sentence, 2)
        assert (translation, source) == (expected, expected_source)
        rows = len(target)
        assert target == expected_target[:rows] and weights.shape == (rows, len(source))
        np.testing.assert_allclose(weights, reference[:rows], atol=1e-4)
    inputs = tmp_path / "in.txt"
    inputs.write_text(sentences()[0] + "\n", encoding="utf-8")
    drawn = run_module("recipes.translate", "--engine", "ctranslate2", "--model", out, "--input", inputs,
                       "--plot_attention", tmp_path / "att.png")
    assert drawn.returncode == 0, drawn.stderr[-3000:]
    assert (tmp_path / "att.png").read_bytes()[:4] == b"\x89PNG"


def test_the_engine_layout_is_a_worker_per_core_unless_told(monkeypatch):
    import hf_vanilla.export_ctranslate2 as engine

    monkeypatch.setattr(engine, "available_cores", lambda: 4)
    assert engine_layout() == (4, 1)  # files: a batch per worker, each on one thread (measured fastest)
    assert engine_layout(workers=2) == (2, 2) and engine_layout(workers=1) == (1, 4)
    assert engine_layout(threads=3) == (4, 3)
    assert engine_layout("cuda") == (1, 0)


def test_what_cannot_be_exported_is_refused_by_name(tmp_path):
    from conftest import word_tokenizer

    from hf_vanilla import VanillaTransformerForSequenceClassification

    tokenizer = word_tokenizer(["a", "b"])
    config = tiny_config(vocab_size=len(tokenizer), activation_function="tanh")
    model = VanillaTransformerForConditionalGeneration(config)
    model.save_pretrained(tmp_path / "tanh")
    tokenizer.save_pretrained(tmp_path / "tanh")
    result = run_module("recipes.export", "--model", tmp_path / "tanh", "--output_dir", tmp_path / "out")
    assert result.returncode == 2 and "activation_function='tanh'" in result.stderr, result.stderr
    classifier = VanillaTransformerForSequenceClassification(tiny_config(vocab_size=len(tokenizer)))
    classifier.save_pretrained(tmp_path / "cls")
    tokenizer.save_pretrained(tmp_path / "cls")
    result = run_module("recipes.export", "--model", tmp_path / "cls", "--output_dir", tmp_path / "out")
    assert result.returncode == 2 and "VanillaTransformerForSequenceClassification" in result.stderr, result.stderr
    result = run_module("recipes.export", "--model", tmp_path / "tanh", "--output_dir", tmp_path / "out",
                        "--quantization", "int3")
    assert result.returncode == 2 and "--quantization 'int3'" in result.stderr, result.stderr
    result = run_module("recipes.export", "--model", tmp_path / "tanh", "--output_dir", tmp_path / "tanh",
                        "--overwrite_output_dir")
    assert result.returncode == 2 and "is the --model folder" in result.stderr, result.stderr
    assert (tmp_path / "tanh" / "model.safetensors").is_file()
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*"))  # nothing written


@pytest.mark.parametrize("when", ["before writing", "while writing"])
def test_a_full_disk_on_export_is_reported_and_leaves_nothing(when, tmp_path, monkeypatch, capsys):
    import errno

    from conftest import word_tokenizer
    from ctranslate2.specs.model_spec import ModelSpec

    from hf_vanilla import files
    from recipes.export import main

    tokenizer = word_tokenizer(["a", "b"])
    VanillaTransformerForConditionalGeneration(tiny_config(vocab_size=len(tokenizer))).save_pretrained(tmp_path / "m")
    tokenizer.save_pretrained(tmp_path / "m")
    if when == "before writing":
        monkeypatch.setattr(files, "free_bytes", lambda folder: 100)
    else:
        def save(self, output_dir):  # the disk fills half-way through model.bin
            (tmp_path / "half").write_bytes(b"")
            with open(f"{output_dir}/model.bin", "wb") as handle:
                handle.write(b"half")
            raise OSError(errno.ENOSPC, "No space left on device")
        monkeypatch.setattr(ModelSpec, "save", save)
    assert main(["--model", str(tmp_path / "m"), "--output_dir", str(tmp_path / "out")]) == 1
    error = capsys.readouterr().err
    assert f"error: --output_dir: [Errno 28] no space to write {tmp_path / 'out'}: it needs about" in error, error
    assert (when == "while writing") == (tmp_path / "half").exists()  # the refusal came first, or the write failed
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*"))  # nothing left half-written
