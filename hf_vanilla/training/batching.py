"""Batch orders that a resumed run reproduces exactly: each is a function of (seed, epoch) alone.

The stock samplers draw from the global random state when an epoch starts; resuming in the middle of an epoch,
that state is restored only after the draw, so the resumed epoch would see its examples in another order.
"""

import random

import torch
from transformers.trainer_pt_utils import LengthGroupedSampler


class EpochSeededLengthGroupedSampler(LengthGroupedSampler):
    """LengthGroupedSampler whose shuffle is a function of (seed, epoch) alone."""

    def __init__(self, batch_size, lengths, seed):
        super().__init__(batch_size, lengths=lengths, generator=torch.Generator())
        self.seed = seed
        self.set_epoch(0)

    def set_epoch(self, epoch):
        self.generator.manual_seed(self.seed + int(epoch))


def token_budget_batches(lengths, max_tokens, seed):
    """Index lists of similar-length examples whose padded size (count x longest) stays within `max_tokens`.

    Examples are sorted by length (with random tie-breaking) and cut greedily; the batch order is shuffled.
    """
    rng = random.Random(seed)
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], rng.random()))
    batches, batch, longest = [], [], 0
    for index in order:
        longest_if_added = max(longest, lengths[index])
        if batch and longest_if_added * (len(batch) + 1) > max_tokens:
            batches.append(batch)
            batch, longest_if_added = [], lengths[index]
        batch.append(index)
        longest = longest_if_added
    if batch:
        batches.append(batch)
    rng.shuffle(batches)
    return batches


def padded_sizes(dataset):
    """Padded size of each translation example: its longer side, counted twice (source and target batches pad
    separately). What a token budget is counted in."""
    return [2 * max(len(s), len(t)) for s, t in zip(dataset["input_ids"], dataset["labels"])]


class TokenBudgetBatchSampler(torch.utils.data.Sampler):
    """The paper's batching: batches of about `max_tokens` padded tokens (source + target), cut anew for each epoch
    from (seed, epoch) alone, so a run resumed mid-epoch sees the same batches as one left alone."""

    def __init__(self, lengths, max_tokens, seed):
        self.lengths, self.max_tokens, self.seed = list(lengths), max_tokens, seed
        self.set_epoch(0)

    def set_epoch(self, epoch):
        self.batches = token_budget_batches(self.lengths, self.max_tokens, self.seed + int(epoch))

    def __iter__(self):
        return iter(self.batches)

    def __len__(self):
        return len(self.batches)
