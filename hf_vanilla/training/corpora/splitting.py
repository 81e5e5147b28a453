"""Deterministic splits: deduplicate on the source text, order by its hash, cut test, validation and train."""

import hashlib

import datasets


def _text_hash(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def split_by_hash(rows, key, validation_size, test_size):
    """Deduplicate on `rows[i][key]`, then split by a hash of it: stable across runs, no text in two splits.

    The rows are ordered by the hash of their key; the first `test_size` go to test, the next `validation_size` to
    validation and the rest to train. Sizes shrink to a tenth of the data each when the data is small.
    """
    unique = {}
    for row in rows:
        unique.setdefault(row[key], row)  # the first occurrence wins
    ordered = sorted(unique.values(), key=lambda row: _text_hash(row[key]))
    test_size = min(test_size, len(ordered) // 10)
    validation_size = min(validation_size, len(ordered) // 10)
    return {
        "train": ordered[test_size + validation_size :],
        "validation": ordered[test_size : test_size + validation_size],
        "test": ordered[:test_size],
    }


def to_dataset_dict(splits, features):
    return datasets.DatasetDict(
        {name: datasets.Dataset.from_list(rows, features=features) for name, rows in splits.items()}
    )
