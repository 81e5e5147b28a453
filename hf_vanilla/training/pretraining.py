"""Self-supervised pre-training data: unlabelled English text, and BART's text infilling as the objective.

The text is the English side (training splits only) of every built-in corpus, so that no validation or test text of
a corpus scored later is ever seen, plus the user's own files. The encoder reads the text with spans replaced by a
single `<mask>` each (span lengths drawn from Poisson(3), about 30% of the tokens masked, as BART); the decoder
writes the original text back. Reconstructing whole spans from context trains the encoder for classification as
well as the decoder for generation.
"""

import math
import random
from pathlib import Path

import torch

from .corpora import CORPORA, load_corpus

MASK_TOKEN = "<mask>"


def english_training_texts(cache_dir=None, corpora=None):
    """{corpus: (licence, texts)}: the English training-split text of each built-in corpus (the source side of an
    en-xx translation corpus, the text of a classification corpus)."""
    sources = {}
    for name in CORPORA if corpora is None else corpora:  # an empty list is none, not all
        corpus = CORPORA[name]
        if corpus.task == "translation":
            english_pairs = [pair for pair in corpus.pairs if pair[0] == "en"]
            data = load_corpus(name, "-".join(english_pairs[0]), cache_dir)["train"]
            texts = list(data["source"])
        else:
            texts = list(load_corpus(name, None, cache_dir)["train"]["text"])
        sources[name] = (corpus.licence, texts)
    return sources


def read_text_files(paths):
    """One text per non-blank line of each UTF-8 file (a clear error names a file that is not UTF-8)."""
    texts = []
    for path in paths:
        data = Path(path).read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            line = data[: error.start].count(b"\n") + 1
            raise ValueError(f"{path} is not UTF-8 (line {line}): give text files in UTF-8.") from error
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if not lines:
            raise ValueError(f"{path} holds no text (only blank lines): give a file with one text a line.")
        texts += lines
    return texts


def chunk_ids(token_ids, length):
    """Token id lists cut into pieces of at most `length` (long articles become several examples)."""
    return [ids[start : start + length] for ids in token_ids for start in range(0, len(ids), length) if ids]


def infill(ids, mask_id, rng, mask_ratio=0.3, poisson_lambda=3.0):
    """BART's text infilling: spans with Poisson(lambda) lengths replaced by one mask token each until about
    `mask_ratio` of the tokens are masked (a length-0 span inserts a mask)."""
    budget = round(len(ids) * mask_ratio)
    masked = list(ids)
    while budget > 0 and masked:
        span = min(_poisson(rng, poisson_lambda), budget, len(masked))
        start = rng.randrange(len(masked) - span + 1)
        masked[start : start + span] = [mask_id]  # a span of 0 inserts a mask
        budget -= max(span, 1)
    return masked


def _poisson(rng, lam):
    """A Poisson draw (Knuth's method; lambda is small)."""
    threshold, k, product = math.exp(-lam), 0, rng.random()
    while product > threshold:
        k += 1
        product *= rng.random()
    return k


class InfillingCollator:
    """Batches for denoising: `input_ids` (infilled, padded), `attention_mask`, `labels` (the original, ending with
    </s>, padded with -100). The masking is drawn anew for every batch, from a generator seeded once."""

    def __init__(self, tokenizer, mask_ratio=0.3, poisson_lambda=3.0, seed=0):
        self.pad_id, self.eos_id = tokenizer.pad_token_id, tokenizer.eos_token_id
        self.mask_id = tokenizer.convert_tokens_to_ids(MASK_TOKEN)
        if self.mask_id is None or self.mask_id == tokenizer.unk_token_id:
            raise ValueError(f"The tokenizer has no {MASK_TOKEN} token: pre-training needs one.")
        self.mask_ratio, self.poisson_lambda = mask_ratio, poisson_lambda
        self.rng = random.Random(seed)

    def __call__(self, examples):
        originals = [list(example["input_ids"]) for example in examples]
        sources = [infill(ids[:-1], self.mask_id, self.rng, self.mask_ratio, self.poisson_lambda) + [self.eos_id]
                   for ids in originals]  # the original ends with </s>: keep it out of the masking
        width, target_width = max(map(len, sources)), max(map(len, originals))
        input_ids = torch.full((len(sources), width), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(sources), width), dtype=torch.long)
        labels = torch.full((len(originals), target_width), -100, dtype=torch.long)
        for row, (source, original) in enumerate(zip(sources, originals)):
            input_ids[row, : len(source)] = torch.tensor(source)
            attention_mask[row, : len(source)] = 1
            labels[row, : len(original)] = torch.tensor(original)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
