"""Reliability, round two: nothing lost and nothing silently wrong where a hostile user found it (docs/errors.md).

Each test also checks that the refused run wrote, changed or removed nothing it should not have.
"""

import hashlib
import json
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSeq2SeqLM

from hf_vanilla import VanillaTransformerConfig, VanillaTransformerForConditionalGeneration
from hf_vanilla.training.corpora import CORPORA, Corpus, load_corpus, load_user_data
from hf_vanilla.training.tokenizer import train_bpe_tokenizer
from hf_vanilla.training.translation import paper_generation_settings

REPO = Path(__file__).resolve().parents[1]
FLAGS = ["--preset", "tiny", "--vocab_size", "300", "--source_column", "en", "--target_column", "fr",
         "--max_eval_samples", "10", "--max_predict_samples", "10", "--logging_steps", "5", "--eval_steps", "1000"]


def run_module(module, *args, input=None, timeout=300):
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, input=input)


def snapshot(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def translator(tmp_path_factory):
    """A tiny translation folder written by plain save_pretrained (no beam settings in its generation config)."""
    folder = tmp_path_factory.mktemp("plain") / "model"
    tokenizer = train_bpe_tokenizer(["the cat sat on the mat", "le chat est assis"] * 30, vocab_size=300)
    config = VanillaTransformerConfig.from_preset("tiny", vocab_size=len(tokenizer), max_position_embeddings=24)
    torch.manual_seed(0)
    VanillaTransformerForConditionalGeneration(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


# ---- 1. greedy decoding does not break checkpoint saves -----------------------------------------------------------


def test_greedy_generation_settings_save(tmp_path):
    model = VanillaTransformerForConditionalGeneration(VanillaTransformerConfig.from_preset("tiny", vocab_size=50))
    paper_generation_settings(model, num_beams=1, length_penalty=0.6)
    model.save_pretrained(tmp_path / "greedy")  # raised "GenerationConfig is invalid" before
    saved = json.loads((tmp_path / "greedy" / "generation_config.json").read_text())
    assert saved["num_beams"] == 1 and "length_penalty" not in saved


def test_num_beams_1_run_saves_every_checkpoint(tmp_path, translation_csv):
    out = tmp_path / "out"
    result = run_module("recipes.train_translation", "--train_file", translation_csv, "--output_dir", out, *FLAGS,
                        "--max_steps", 6, "--save_steps", 3, "--num_beams", 1, "--average_last_n", 2)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / "checkpoint-3").is_dir() and (out / "checkpoint-6").is_dir()
    assert not list(out.glob(".*.partial"))


# ---- 2. resuming keeps the tokenizer and refuses other data -------------------------------------------------------


def test_resume_with_other_data_is_refused_and_changes_nothing(tmp_path, translation_csv):
    out = tmp_path / "out"
    first = run_module("recipes.train_translation", "--train_file", translation_csv, "--output_dir", out, *FLAGS,
                       "--max_steps", 3, "--save_steps", 3, "--average_last_n", 1)
    assert first.returncode == 0, first.stderr[-3000:]
    other = tmp_path / "other.csv"
    lines = translation_csv.read_text().splitlines()
    other.write_text("\n".join([lines[0]] + [line.replace("cat", "horse") for line in lines[1:]]) + "\n")
    before = snapshot(out)
    result = run_module("recipes.train_translation", "--train_file", other, "--output_dir", out, *FLAGS,
                        "--max_steps", 6, "--save_steps", 3, "--resume_from_checkpoint", out / "checkpoint-3")
    assert result.returncode == 2
    assert "--resume_from_checkpoint" in result.stderr and "train_sha256" in result.stderr
    assert "data: " in result.stderr  # the data named in the run's record and now
    assert snapshot(out) == before  # tokenizer.json above all


# ---- 3. one run per output folder ----------------------------------------------------------------------------------


def test_a_second_run_on_a_busy_output_dir_is_refused(tmp_path, translation_csv):
    out = tmp_path / "out"
    first = subprocess.Popen([sys.executable, "-m", "recipes.train_translation", "--train_file", str(translation_csv),
                              "--output_dir", str(out), *FLAGS, "--max_steps", "100000", "--save_steps", "5"],
                             cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 240
        while not list(out.glob("checkpoint-*")) and time.time() < deadline and first.poll() is None:
            time.sleep(1)
        assert first.poll() is None, first.stderr.read()[-3000:]
        second = run_module("recipes.train_translation", "--train_file", translation_csv, "--output_dir", out, *FLAGS,
                            "--max_steps", 2, "--overwrite_output_dir")
        assert second.returncode == 2
        assert "--output_dir" in second.stderr and "in use by another run" in second.stderr
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # the lock died with its holder: the same command now runs
    third = run_module("recipes.train_translation", "--train_file", translation_csv, "--output_dir", out, *FLAGS,
                       "--max_steps", 2, "--save_steps", 2, "--overwrite_output_dir", "--average_last_n", 1)
    assert third.returncode == 0, third.stderr[-3000:]


# ---- 4. translate streams, and bad lines do not lose the others ----------------------------------------------------


def test_translate_prints_each_batch_before_the_input_ends(translator):
    process = subprocess.Popen([sys.executable, "-m", "recipes.translate", "--model", str(translator),
                                "--batch_size", "2", "--num_beams", "1"], cwd=REPO, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        process.stdin.write("the cat\nsat on the mat\n")
        process.stdin.flush()  # stdin stays open: the first batch must come out anyway
        first = process.stdout.readline()
        assert first, process.stderr.read()[-3000:]
        process.stdin.write("le chat\n")
        process.stdin.close()
        rest = process.stdout.read().splitlines()
        assert process.wait(timeout=120) == 0
        assert 1 + len(rest) == 3
    finally:
        process.kill()


def test_translate_reports_undecodable_and_truncated_lines_and_keeps_the_others(translator, tmp_path):
    path = tmp_path / "input.txt"
    path.write_bytes(b"the cat\ncaf\xe9 latin-1\n" + b"the mat " * 40 + b"\nsat on the mat\n")
    result = subprocess.run([sys.executable, "-m", "recipes.translate", "--model", str(translator), "--input",
                             str(path), "--num_beams", "1"], cwd=REPO, capture_output=True, timeout=300)
    stderr = result.stderr.decode()
    assert result.returncode == 1, stderr[-3000:]
    assert len(result.stdout.decode().splitlines()) == 3  # lines 1, 3 and 4
    assert "line 2: not UTF-8 (byte 0xe9" in stderr
    assert "line 3:" in stderr and "truncated to the model's 23" in stderr
    strict = subprocess.run([sys.executable, "-m", "recipes.translate", "--model", str(translator), "--input",
                             str(path), "--errors", "strict"], cwd=REPO, capture_output=True, timeout=300)
    assert strict.returncode == 1 and len(strict.stdout.decode().splitlines()) == 0


def test_translate_works_on_a_plain_save_pretrained_folder(translator, monkeypatch, capsys):
    """No beam size in the folder's generation config: the documented defaults (beam 4, length penalty 0.6)."""
    import io

    from recipes.translate import main

    generation = json.loads((translator / "generation_config.json").read_text())
    assert "num_beams" not in generation and "length_penalty" not in generation  # a plain save_pretrained folder
    seen = []
    generate = VanillaTransformerForConditionalGeneration.generate

    def spy(self, *args, **kwargs):
        seen.append({key: kwargs.get(key) for key in ("num_beams", "length_penalty")})
        return generate(self, *args, **kwargs)

    monkeypatch.setattr(VanillaTransformerForConditionalGeneration, "generate", spy)
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"the cat\n")))
    assert main(["--model", str(translator)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1
    assert seen == [{"num_beams": 4, "length_penalty": 0.6}]


# ---- 5. damaged folders are refused --------------------------------------------------------------------------------


def change_first_dtype(folder, new=b"I32"):
    path = folder / "model.safetensors"
    data = bytearray(path.read_bytes())
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    name = sorted(k for k in header if k != "__metadata__")[0]
    old = json.dumps(header[name]["dtype"]).encode()
    start = data.index(old, 8)
    data[start : start + len(old)] = json.dumps(new.decode()).encode()
    path.write_bytes(bytes(data))
    return name


def test_a_changed_weight_dtype_is_refused_naming_the_tensor(translator, tmp_path):
    folder = tmp_path / "damaged"
    folder.mkdir()
    for file in translator.iterdir():
        (folder / file.name).write_bytes(file.read_bytes())
    name = change_first_dtype(folder)
    with pytest.raises(ValueError, match=rf"stores the tensor '{name}' as I32, but every weight of this model is "
                                         r"floating point"):
        AutoModelForSeq2SeqLM.from_pretrained(folder)


def test_a_damaged_generation_config_is_refused(translator, tmp_path):
    folder = tmp_path / "damaged"
    folder.mkdir()
    for file in translator.iterdir():
        (folder / file.name).write_bytes(file.read_bytes())
    (folder / "generation_config.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"generation_config.json is not valid JSON"):
        AutoModelForSeq2SeqLM.from_pretrained(folder)
    result = run_module("recipes.translate", "--model", folder, input="the cat\n")
    assert result.returncode == 2 and "error: --model:" in result.stderr and "generation_config.json" in result.stderr


# ---- 6. the corpus cache: nothing is read that was not verified ----------------------------------------------------


def test_map_writes_nothing_into_the_corpus_cache(tmp_path, monkeypatch):
    rows = [{"en": f"sentence {i}", "fr": f"phrase {i}"} for i in range(100)]
    monkeypatch.setitem(CORPORA, "fake", Corpus("fake", "translation", lambda *a: rows, 10, 10, "synthetic", "none",
                                                pairs=(("en", "fr"),)))
    data = load_corpus("fake", cache_dir=tmp_path)
    before = snapshot(tmp_path)
    data.map(lambda row: {"length": len(row["source"])})
    assert snapshot(tmp_path) == before


# ---- 7. data that is fine loads ------------------------------------------------------------------------------------


def test_a_long_csv_field_loads(tmp_path):
    path = tmp_path / "long.csv"
    path.write_text("text,label\n" + "".join(f"{'word ' * (30000 if i == 0 else 3)}{i},{i % 2}\n" for i in range(20)))
    data = load_user_data("classification", train_file=str(path))
    assert max(len(t) for split in data.values() for t in split["text"]) > 131072


def test_numbers_in_a_text_column_are_text(tmp_path):
    path = tmp_path / "numbers.csv"
    path.write_text("text,label\n" + "".join(f"{1000 + i},{i % 2}\n" for i in range(20)))
    data = load_user_data("classification", train_file=str(path))
    assert sum(len(split) for split in data.values()) == 20
    assert "1000" in [t for split in data.values() for t in split["text"]]


def test_hf_translation_format_with_source_and_target_lang(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps({"translation": {"en": f"cat {i}", "fr": f"chat {i}"}}) + "\n"
                            for i in range(30)))
    data = load_user_data("translation", train_file=str(path), source_lang="en", target_lang="fr")
    row = data["train"][0]
    assert row["source"].startswith("cat") and row["target"].startswith("chat")
    with pytest.raises(ValueError, match=r"translation format with the languages en, fr: give target_lang"):
        load_user_data("translation", train_file=str(path), source_lang="en", target_lang="de")


def test_recipe_reads_hf_translation_format(tmp_path):
    path = tmp_path / "train.jsonl"
    words = ["cat", "dog", "bird", "house", "tree", "car"]
    path.write_text("".join(json.dumps({"translation": {"en": f"the {w} {i}", "fr": f"le {w} {i}"}}) + "\n"
                            for i in range(20) for w in words))
    flags = [f for f in FLAGS if f not in ("--source_column", "en", "--target_column", "fr")]
    result = run_module("recipes.train_translation", "--train_file", path, "--source_lang", "en", "--target_lang",
                        "fr", "--output_dir", tmp_path / "out", *flags, "--max_steps", 2, "--save_steps", 2,
                        "--average_last_n", 1)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "en -> fr" in (tmp_path / "out" / "README.md").read_text()
