"""Self-supervised pre-training data: unlabelled English text, and two objectives.

The text is the English side (training splits only) of every built-in corpus, so that no validation or test text of
a corpus scored later is ever seen, plus the user's own files.

- `infilling` (BART): the encoder reads the text with spans replaced by a single `<mask>` each (span lengths drawn from
  Poisson(3), about 30% of the tokens masked); the decoder writes the original text back. It trains the decoder for
  generation as well as the encoder.
- `masked_lm` (BERT): 15% of the tokens are chosen (80% become `<mask>`, 10% a random token, 10% stay) and the
  encoder's own states predict them through the shared output projection. Every gradient reaches the encoder, the
  only part a classifier keeps.
"""

import math
import random
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import DataCollatorForLanguageModeling

from .corpora import CORPORA, load_corpus

MASK_TOKEN = "<mask>"
OBJECTIVES = {"infilling": 0.3, "masked_lm": 0.15}  # each objective's share of masked tokens (BART's, BERT's)


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


class MaskedLMCollator:
    """Batches for the encoder-only masked LM: BERT's masking by transformers' `DataCollatorForLanguageModeling`
    (`input_ids`, `attention_mask`, `labels` = the chosen tokens' ids, -100 elsewhere), plus a one-token
    `decoder_input_ids` so that the encoder-decoder's forward runs; `masked_lm_loss` reads only the encoder."""

    def __init__(self, tokenizer, decoder_start_token_id, mask_ratio=0.15, seed=0):
        if tokenizer.mask_token != MASK_TOKEN:
            raise ValueError(f"The tokenizer has no {MASK_TOKEN} token: pre-training needs one.")
        self.collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=mask_ratio, seed=seed,
                                                        return_tensors="pt")
        self.decoder_start_token_id = decoder_start_token_id

    def __call__(self, examples):
        batch = self.collator(examples)
        batch["decoder_input_ids"] = torch.full((len(examples), 1), self.decoder_start_token_id, dtype=torch.long)
        return batch


def masked_lm_loss(output_embeddings):
    """Trainer's `compute_loss_func` for the masked LM: cross-entropy of the encoder's last states at the chosen
    positions through the shared output projection (summed, over the accumulated batch's chosen tokens when Trainer
    gives their count)."""

    def loss(outputs, labels, num_items_in_batch=None):
        chosen = labels != -100  # (B, T)
        logits = output_embeddings(outputs.encoder_last_hidden_state[chosen])  # (chosen tokens, V): the rest unused
        total = F.cross_entropy(logits.float(), labels[chosen], reduction="sum")
        # the decoder's one-token pass joins the graph with weight 0, so that data-parallel engines see every
        # parameter take part
        total = total + 0.0 * outputs.logits.sum()
        return total / (num_items_in_batch if num_items_in_batch is not None else chosen.sum().clamp(min=1))

    return loss
