"""The catalogue of bad inputs (docs/errors.md): each gets a clear error, and nothing is written or lost.

Every case raises a given exception type whose message names the field, file or value at fault; the files around
it (the case's own folder) are unchanged afterwards. `python tests/test_errors.py` prints the catalogue with the
messages as they are now, the source of docs/errors.md.
"""

import hashlib
import json
import shutil
import struct
import sys
from pathlib import Path

import pytest
import torch

from hf_vanilla import (
    VanillaTransformerConfig,
    VanillaTransformerForConditionalGeneration,
    VanillaTransformerForSequenceClassification,
)
from hf_vanilla.training.corpora import load_user_data

# run again against the oldest supported transformers (`make test-oldest`: the core model tests)
pytestmark = pytest.mark.core

DOC = Path(__file__).resolve().parents[1] / "docs" / "errors.md"
VOCAB = 40


def tiny(**overrides):
    return VanillaTransformerConfig.from_preset("tiny", vocab_size=VOCAB, max_position_embeddings=16, **overrides)


def seq2seq(**inputs):
    torch.manual_seed(0)
    defaults = {"input_ids": torch.tensor([[5, 6, 7]]), "decoder_input_ids": torch.tensor([[1, 5]])}
    VanillaTransformerForConditionalGeneration(tiny())(**{**defaults, **inputs})


def classify(**inputs):
    torch.manual_seed(0)
    VanillaTransformerForSequenceClassification(tiny(num_labels=2))(**{"input_ids": torch.tensor([[5, 6]]), **inputs})


def data_file(folder, name, content, task="classification"):
    path = folder / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    load_user_data(task, train_file=str(path))


def saved_model(folder, damage=None):
    path = folder / "model"
    VanillaTransformerForConditionalGeneration(tiny()).save_pretrained(path)
    if damage:
        damage(path)
    VanillaTransformerForConditionalGeneration.from_pretrained(path)


def retype_first_weight(path):
    """Change the first tensor's dtype in the safetensors header (same length: the file stays well-formed)."""
    weights = path / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data.replace(b'"dtype":"F32"', b'"dtype":"I32"', 1))


def truncate_weights(path):
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


def pickle_only(path):
    torch.save(VanillaTransformerForConditionalGeneration(tiny()).state_dict(), path / "pytorch_model.bin")
    (path / "model.safetensors").unlink()


def marian_folder(folder):
    from transformers import MarianConfig, MarianMTModel

    path = folder / "marian"
    MarianMTModel(MarianConfig(vocab_size=VOCAB, d_model=16, encoder_layers=1, decoder_layers=1, encoder_ffn_dim=16,
                               decoder_ffn_dim=16, encoder_attention_heads=2, decoder_attention_heads=2,
                               pad_token_id=0, decoder_start_token_id=1)).save_pretrained(path)
    VanillaTransformerForConditionalGeneration.from_pretrained(path)


def recipe(folder, module, *argv):
    """Run a recipe's main in-process; usage errors (SystemExit 2) become the exception, with stderr as message."""
    import importlib
    import io
    from contextlib import redirect_stderr

    stderr = io.StringIO()
    try:
        with redirect_stderr(stderr):
            status = importlib.import_module(module).main([str(a) for a in argv])
    except SystemExit as exit:
        assert exit.code == 2, f"a usage error exits 2, not {exit.code}: {stderr.getvalue()[-500:]}"
        raise UsageError(stderr.getvalue().strip().splitlines()[-1]) from exit
    if status:
        assert status == 2, f"a usage error exits 2, not {status}: {stderr.getvalue()[-500:]}"
        raise UsageError(stderr.getvalue().strip().splitlines()[-1])


class UsageError(Exception):
    """A recipe's command line was refused: exit status 2 and the message on stderr."""


def existing_output(folder):
    (folder / "out").mkdir()
    (folder / "out" / "keep.txt").write_text("mine")
    recipe(folder, "recipes.train_translation", "--train_file", folder / "pairs.csv", "--output_dir", folder / "out")


# (id, what is wrong, trigger(folder), exception type, regex the message must match)
CATALOGUE = [
    # configs
    ("config-heads", "d_model not divisible by the heads", lambda f: tiny(d_model=100, num_attention_heads=8),
     ValueError, r"d_model=100 is not divisible by num_attention_heads=8"),
    ("config-layers", "zero layers", lambda f: tiny(encoder_layers=0),
     ValueError, r"encoder_layers must be a positive integer, got 0"),
    ("config-dropout", "dropout of 1", lambda f: tiny(dropout=1.0),
     ValueError, r"dropout must be a probability in \[0, 1\), got 1.0"),
    ("config-activation", "unknown activation", lambda f: tiny(activation_function="softmax"),
     ValueError, r"activation_function='softmax' is unknown: choose one of relu"),
    ("config-special-id", "pad id outside the vocabulary", lambda f: tiny(pad_token_id=VOCAB),
     ValueError, rf"pad_token_id={VOCAB} is outside the vocabulary.*vocab_size={VOCAB}"),
    ("config-pooling", "unknown pooling", lambda f: tiny(classifier_pooling="sum"),
     ValueError, r"classifier_pooling='sum' is unknown: choose one of mean, max, first"),
    ("config-preset", "unknown preset", lambda f: VanillaTransformerConfig.from_preset("huge"),
     ValueError, r"Unknown preset 'huge'.*tiny, small, base, big"),
    # tensors
    ("ids-out-of-vocabulary", "token id >= vocab_size", lambda f: seq2seq(input_ids=torch.tensor([[5, VOCAB]])),
     ValueError, rf"input_ids contains token id {VOCAB}.*vocab_size={VOCAB}"),
    ("ids-negative", "negative token id", lambda f: seq2seq(decoder_input_ids=torch.tensor([[1, -3]])),
     ValueError, r"decoder_input_ids contains token id -3"),
    ("ids-float", "float ids", lambda f: seq2seq(input_ids=torch.tensor([[5.0, 6.0]])),
     ValueError, r"input_ids must hold integer token ids, got dtype torch.float32"),
    ("mask-shape", "attention_mask of another shape",
     lambda f: seq2seq(attention_mask=torch.ones(1, 2, dtype=torch.long)),
     ValueError, r"attention_mask has shape \(1, 2\) but must be .*\(1, 3\)"),
    ("batch-empty", "no sequences", lambda f: seq2seq(input_ids=torch.zeros((0, 4), dtype=torch.long)),
     ValueError, r"input_ids is empty \(shape \(0, 4\)\)"),
    ("sequence-empty", "zero-length sequences", lambda f: seq2seq(input_ids=torch.zeros((2, 0), dtype=torch.long)),
     ValueError, r"input_ids is empty \(shape \(2, 0\)\): give at least one token"),
    ("sequence-too-long", "longer than the position table", lambda f: seq2seq(input_ids=torch.full((1, 17), 5)),
     ValueError, r"17 positions.*max_position_embeddings=16"),
    ("batch-mismatch", "more targets than sources",
     lambda f: seq2seq(decoder_input_ids=torch.tensor([[1, 5], [1, 6]])),
     ValueError, r"decoder_input_ids holds 2 sequences but the source batch 1"),
    ("labels-shape", "seq2seq labels flattened", lambda f: seq2seq(labels=torch.tensor([5, 6, 2])),
     ValueError, r"labels must have shape \(batch_size, target_length\), got \(3,\)"),
    ("labels-num-labels", "class label >= num_labels", lambda f: classify(labels=torch.tensor([5])),
     ValueError, r"labels contain 5, outside \[0, num_labels=2\)"),
    ("labels-count", "one label per text, but fewer", lambda f: classify(labels=torch.tensor([0, 1])),
     ValueError, r"labels have shape \(2,\); single-label classification expects \(1,\)"),
    # data files
    ("data-missing-file", "train file that does not exist",
     lambda f: load_user_data("classification", train_file=str(f / "nope.csv")),
     FileNotFoundError, r"The train file .*nope.csv does not exist"),
    ("data-format", "unsupported extension", lambda f: data_file(f, "data.txt", "text,label\n"),
     ValueError, r"Data files must share one of the formats .csv, .tsv"),
    ("data-missing-column", "no such column",
     lambda f: load_user_data("classification", train_file=str(_write(f / "d.csv", "review,stars\nok,1\n"))),
     ValueError, r"The train data has no column 'text' \(named by text_column\); its columns are \['review', "
                 r"'stars'\]"),
    ("data-empty-file", "0-byte file", lambda f: data_file(f, "empty.csv", ""),
     ValueError, r"The train file .*empty.csv is empty"),
    ("data-header-only", "header, no rows", lambda f: data_file(f, "head.csv", "text,label\n"),
     ValueError, r"has a header \(text, label\) but no data rows"),
    ("data-empty-strings", "every text empty", lambda f: data_file(f, "blank.csv", 'text,label\n"",a\n"  ",b\n'),
     ValueError, r"The train data has no usable rows \(every 'text' is empty\)"),
    ("data-not-utf8", "Latin-1 bytes", lambda f: data_file(f, "latin1.csv", b"text,label\ncaf\xe9,a\n"),
     ValueError, r"latin1.csv is not UTF-8: byte 0xe9 on line 2"),
    ("data-tsv-fields", "a TSV row with 3 fields",
     lambda f: data_file(f, "pairs.tsv", "source\ttarget\nhello\tbonjour\nx\ty\tz\n", "translation"),
     ValueError, r"pairs.tsv, line 3: 3 fields where the header \['source', 'target'\] has 2"),
    ("data-jsonl-line", "a jsonl line that is not JSON",
     lambda f: data_file(f, "d.jsonl", '{"text": "a", "label": 1}\n{text\n'),
     ValueError, r"d.jsonl, line 2, is not JSON"),
    ("data-too-small", "too few rows to cut validation and test",
     lambda f: data_file(f, "few.csv", "text,label\n" + "".join(f"t{i},a\n" for i in range(5))),
     ValueError, r"The train data has 5 distinct usable rows: at least 10 are needed"),
    # model and tokenizer folders
    ("folder-missing", "model folder that does not exist",
     lambda f: VanillaTransformerForConditionalGeneration.from_pretrained(f / "nope"),
     FileNotFoundError, r"No model folder at .*nope"),
    ("folder-other-model", "a Marian folder", marian_folder,
     ValueError, r"config.json describes a 'marian' model, not a 'vanilla_transformer' one"),
    ("folder-truncated-weights", "model.safetensors cut in half", lambda f: saved_model(f, truncate_weights),
     ValueError, r"model.safetensors is truncated or damaged: \d+ bytes where its header describes \d+"),
    ("folder-config-not-json", "config.json that is not JSON",
     lambda f: saved_model(f, lambda p: (p / "config.json").write_text("{oops")),
     ValueError, r"config.json is not valid JSON"),
    ("folder-weight-dtype", "a weight's dtype changed from F32 to I32 in the header",
     lambda f: saved_model(f, retype_first_weight),
     ValueError, r"model.safetensors stores the tensor '.*' as I32, but every weight of this model is floating point"),
    ("folder-generation-config-not-json", "generation_config.json that is not JSON",
     lambda f: saved_model(f, lambda p: (p / "generation_config.json").write_text("{oops")),
     ValueError, r"generation_config.json is not valid JSON"),
    # valid JSON, values generate cannot use: refused on loading, naming the file and the setting
    *[(f"folder-generation-{key}", f"generation_config.json with {key}={value!r}",
       lambda f, key=key, value=value: saved_model(f, lambda p: edit_json(p / "generation_config.json", key, value)),
       ValueError, rf"generation_config.json holds settings generate cannot use: {key} {expected}")
      for key, value, expected in [("num_beams", -1, "-1: must be a whole number, at least 1"),
                                   ("num_beams", "four", "'four': must be a whole number"),
                                   ("length_penalty", float("nan"), "nan: must be a finite number"),
                                   ("max_new_tokens", 0, "0: must be a whole number, at least 1"),
                                   ("eos_token_id", VOCAB + 5, f"{VOCAB + 5}: must be a token id from 0 to "
                                                              f"{VOCAB - 1}"),
                                   ("early_stopping", "maybe", "'maybe': must be true, false")]],
    ("tokenizer-damaged", "tokenizer.json cut short",
     lambda f: recipe(f, "recipes.translate", "--model", _saved(f, lambda p: (p / "tokenizer.json").write_text("{"))),
     UsageError, r"error: --model: .*tokenizer.json is damaged \(JSONDecodeError"),
    ("tokenizer-not-a-tokenizer", "tokenizer.json valid JSON of another shape",
     lambda f: recipe(f, "recipes.translate", "--model", _saved(f, lambda p: (p / "tokenizer.json").write_text(
         '{"version": "1.0", "model": {"type": "Nope"}}'))),
     UsageError, r"error: --model: .*tokenizer.json is damaged \(Exception: data did not match"),
    ("data-translation-lang", "HF translation format, a language it does not have",
     lambda f: load_user_data("translation", train_file=str(_write(f / "t.jsonl", '{"translation": {"en": "a", '
                                                                               '"fr": "b"}}\n')),
                              source_lang="en", target_lang="de"),
     ValueError, r"translation format with the languages en, fr: give target_lang as one of them \(not 'de'\)"),
    ("folder-no-config", "weights without config.json",
     lambda f: saved_model(f, lambda p: (p / "config.json").unlink()),
     FileNotFoundError, r"has no config.json, so it is not a saved model folder"),
    ("folder-pickle-weights", "only pytorch_model.bin", lambda f: saved_model(f, pickle_only),
     FileNotFoundError, r"has no model.safetensors, only pickle weights \(pytorch_model.bin\)"),
    ("tokenizer-missing", "model folder without a tokenizer",
     lambda f: recipe(f, "recipes.translate", "--model", _saved(f)),
     UsageError, r"error: --model: .* holds no tokenizer \(no tokenizer.json\)"),
    # command lines
    ("cli-unknown-corpus", "--corpus wiki", lambda f: recipe(f, "recipes.train_translation", "--corpus", "wiki"),
     UsageError, r"Unknown corpus 'wiki': choose one of libreoffice-help"),
    ("cli-unknown-preset", "--preset huge", lambda f: recipe(f, "recipes.train_classification", "--preset", "huge"),
     UsageError, r"Unknown preset 'huge': choose one of tiny, small, base, big"),
    ("cli-output-exists", "non-empty --output_dir", existing_output,
     UsageError, r"error: --output_dir: The output folder .*out exists and is not empty: pass --overwrite_output_dir"),
    ("cli-model-missing", "translate --model that does not exist",
     lambda f: recipe(f, "recipes.translate", "--model", f / "nope"),
     UsageError, r"error: --model: No model folder at .*nope"),
]


def _write(path, text):
    path.write_text(text)
    return path


def _saved(folder, damage=None):
    """A saved model without a tokenizer, or with one that `damage(folder)` then changes."""
    path = folder / ("untokenized" if damage is None else "tokenized")
    VanillaTransformerForConditionalGeneration(tiny()).save_pretrained(path)
    if damage is not None:
        from conftest import word_tokenizer

        word_tokenizer(["a", "b"]).save_pretrained(path)
        damage(path)
    return path


def edit_json(path, key, value):
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, key: value}))


def snapshot(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", CATALOGUE, ids=[case[0] for case in CATALOGUE])
def test_bad_input_gets_a_clear_error_and_nothing_is_written(case, tmp_path, monkeypatch):
    name, _, trigger, exception, message = case
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pairs.csv").write_text("source,target\n" + "".join(f"a{i},b{i}\n" for i in range(20)))
    before = snapshot(tmp_path)
    with pytest.raises(exception, match=message):
        trigger(tmp_path)
    after = snapshot(tmp_path)
    lost = {path for path in before if before[path] != after.get(path)}
    assert not lost, f"{name} changed or removed {lost}"
    # the only new files are the ones the case itself set up (a saved model folder, a data file)
    assert all(path.startswith(("model/", "marian/", "untokenized/", "tokenized/", "out/")) or path.count("/") == 0
               for path in after), sorted(after)
    if name == "cli-output-exists":
        assert sorted(after) == sorted([*before, "out/keep.txt"])


def test_the_catalogue_is_documented():
    doc = DOC.read_text()
    assert len(CATALOGUE) >= 25
    rows = {line.split("|")[1].strip(" `"): line.split("|")[3].strip() for line in doc.splitlines()
            if line.startswith("| `")}
    for name, _, _, exception, _ in CATALOGUE:
        assert rows.get(name) == ("exit 2" if exception is UsageError else exception.__name__), name


def test_safetensors_check_reads_only_the_header(tmp_path):
    """The check behind folder-truncated-weights: a well-formed file passes, a header promising more fails."""
    from hf_vanilla.loading_vanilla_transformer import safetensors_problem as _safetensors_problem

    path = tmp_path / "x.safetensors"
    header = b'{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}'
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 8)
    assert _safetensors_problem(path) is None
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 4)
    assert "truncated" in _safetensors_problem(path)
    path.write_bytes(b"not a safetensors file at all")
    assert "not a readable safetensors file" in _safetensors_problem(path)


if __name__ == "__main__":  # print the catalogue as it stands, for docs/errors.md
    import tempfile

    sys.path.insert(0, str(DOC.parents[1]))  # the recipes run from the repository root

    print("| id | bad input | error | message |\n|---|---|---|---|")
    for name, what, trigger, exception, _ in CATALOGUE:
        folder = Path(tempfile.mkdtemp())
        (folder / "pairs.csv").write_text("source,target\n" + "".join(f"a{i},b{i}\n" for i in range(20)))
        try:
            trigger(folder)
            got = "NO ERROR"
        except Exception as error:  # noqa: BLE001 - printing whatever it is
            kind = ("exit 2" if exception is UsageError else exception.__name__) if isinstance(error, exception) \
                else f"{type(error).__name__} (expected {exception.__name__})"
            message = str(error).replace(str(folder), "…").replace("|", "/")
            # in code: the program's words, not prose figures for benchmarks/tables.py to check
            got = f"{kind} | " + (f"`` {message} ``" if "`" in message else f"`{message}`")
        finally:
            shutil.rmtree(folder)
        print(f"| `{name}` | {what} | {got} |")
    sys.exit(0)
