import os
import shutil
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from hf_vanilla import VanillaTransformerConfig, VanillaTransformerForConditionalGeneration

VOCAB = 40


def tiny_config(**overrides):
    kwargs = dict(vocab_size=VOCAB, dropout=0.0, max_position_embeddings=64)
    kwargs.update(overrides)
    return VanillaTransformerConfig.from_preset("tiny", **kwargs)


def scrambled(model, seed=0, std=0.3):
    """Give an untrained model large random weights, so that its generations depend on its input.

    A freshly initialised tied model mostly repeats its decoder start token, which would let generation tests pass
    for the wrong reason.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "layer_norm" not in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * std)
    return model.eval()


@pytest.fixture
def hf_logs(caplog):
    """caplog that sees transformers' warnings: its loggers propagate to the root logger (where caplog listens) only
    in some environments, so a test that asserts on them turns propagation on, and restores it afterwards. The cache
    of `logger.warning_once` is cleared first, so a warning an earlier test in the process gave is seen again."""
    import logging

    from transformers.utils import logging as hf_logging

    logging.Logger.warning_once.cache_clear()
    root = hf_logging._get_library_root_logger()
    before = root.propagate
    root.propagate = True
    try:
        with caplog.at_level("WARNING"):
            yield caplog
    finally:
        root.propagate = before


@pytest.fixture(scope="session")
def reversal_model(tmp_path_factory):
    """The `tiny` preset trained on sequence reversal by Seq2SeqTrainer (the demo's recipe), once per session.

    With HF_VANILLA_TEST_MODELS set (the mutation pass sets it), once in all: the first session trains it into that
    folder and later ones load it. The pass runs the tests once per mutant, and training it anew each time (about a
    minute on one thread) made the mutants those tests reach time out, counted as caught though no test failed."""
    from toy_tasks import train_reversal

    stored = os.environ.get("HF_VANILLA_TEST_MODELS")
    if not stored:
        return train_reversal(str(tmp_path_factory.mktemp("reversal")), max_steps=900, report=False)
    folder = Path(stored) / "reversal"
    if not (folder / "model.safetensors").is_file():
        partial = folder.with_name(f".reversal.{os.getpid()}.partial")  # published whole, by one rename
        train_reversal(str(partial), max_steps=900, report=False)
        try:
            partial.rename(folder)
        except OSError:  # another session published it first
            shutil.rmtree(partial, ignore_errors=True)
    return VanillaTransformerForConditionalGeneration.from_pretrained(folder).eval()


@pytest.fixture
def config():
    return tiny_config()


@pytest.fixture
def seq2seq(config):
    torch.manual_seed(0)
    return scrambled(VanillaTransformerForConditionalGeneration(config))


@pytest.fixture
def batch():
    """Three right-padded source sentences of lengths 7, 5 and 3, and labels."""
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(4, VOCAB, (3, 7), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 5:] = 0
    attention_mask[2, 3:] = 0
    input_ids = input_ids.masked_fill(attention_mask == 0, 0)
    labels = torch.randint(4, VOCAB, (3, 6), generator=generator)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def word_tokenizer(words):
    """A real fast tokenizer (word level) with the config's special ids: pad 0, bos 1, eos 2, unk 3."""
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3}
    for word in words:
        vocab.setdefault(word, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 2)])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        model_input_names=["input_ids", "attention_mask"],
    )


# a toy language pair: word-by-word substitution with one reordering (adjective after noun), so a model must learn
# both a lexicon and a little syntax
LEXICON = {"the": "le", "a": "un", "cat": "chat", "dog": "chien", "bird": "oiseau", "sees": "voit", "eats": "mange",
           "likes": "aime", "big": "grand", "small": "petit", "red": "rouge", "black": "noir", "today": "aujourd'hui"}


def toy_translation_pairs(count, seed=0):
    import random

    rng = random.Random(seed)
    nouns, verbs, adjectives = ["cat", "dog", "bird"], ["sees", "eats", "likes"], ["big", "small", "red", "black"]
    pairs = []
    for _ in range(count):
        subject, verb, obj, adjective = rng.choice(nouns), rng.choice(verbs), rng.choice(nouns), rng.choice(adjectives)
        english = f"the {adjective} {subject} {verb} a {obj}" + (" today" if rng.random() < 0.3 else "")
        french = f"le {LEXICON[subject]} {LEXICON[adjective]} {LEXICON[verb]} un {LEXICON[obj]}" + (
            " aujourd'hui" if english.endswith("today") else "")
        pairs.append({"source": english + ".", "target": french + "."})
    return pairs


def write_translation_csv(path, count=400):
    """The toy pairs as a csv file with `en` and `fr` columns."""
    import csv

    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["en", "fr"])
        writer.writeheader()
        for pair in toy_translation_pairs(count):
            writer.writerow({"en": pair["source"], "fr": pair["target"]})
    return path


@pytest.fixture
def translation_csv(tmp_path):
    return write_translation_csv(tmp_path / "pairs.csv")
