"""The corpus cache: each built corpus is saved once with `save_to_disk` and its files' sha256, and loaded from there.

`$HF_VANILLA_CACHE/corpora/<corpus>[-<pair>]/` holds `data/` (the DatasetDict) and `meta.json` (provenance, split rule
and checksums, written last, so a folder without it is incomplete).
"""

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

import datasets

from hf_vanilla.files import atomic_folder

from .builtin import CORPORA
from .fetch import progress
from .splitting import split_by_hash, to_dataset_dict

logger = logging.getLogger(__name__)

CACHE_ENV = "HF_VANILLA_CACHE"
FORMAT_VERSION = 2  # bump when the cleaning or splitting changes, so that old caches are rebuilt


def default_cache_dir() -> Path:
    """`$HF_VANILLA_CACHE`, else `$XDG_CACHE_HOME/hf_vanilla`, else `~/.cache/hf_vanilla`."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")).expanduser() / "hf_vanilla"


def _sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _file_checksums(folder):
    """sha256 of every file in a freshly written cache (later `map` calls may add their own files beside them)."""
    folder = Path(folder)
    return {
        path.relative_to(folder).as_posix(): _sha256(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != "meta.json"
    }


def _intact(folder, checksums):
    """Every file recorded at creation is there with its recorded sha256 (files added since are not read)."""
    paths = {name: Path(folder) / name for name in checksums}
    return bool(checksums) and all(p.is_file() and _sha256(p) == checksums[n] for n, p in paths.items())


def _save_atomically(dataset_dict, folder, meta):
    """Write aside, then rename: an interrupted run never leaves a folder that loads as if complete."""
    with atomic_folder(folder) as staging:
        dataset_dict.save_to_disk(str(staging / "data"))
        meta = {**meta, "files": _file_checksums(staging)}
        (staging / "meta.json").write_text(json.dumps(meta, indent=2))  # written last: marks the cache complete


def _load_cached(folder, verify=True):
    """The cached DatasetDict, or None when there is no complete, intact cache."""
    meta_path = Path(folder) / "meta.json"
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError:
        return None
    if meta.get("format_version") != FORMAT_VERSION:
        return None
    if verify and not _intact(folder, meta.get("files", {})):
        logger.warning("The cache in %s does not match its recorded checksum: rebuilding it.", folder)
        return None
    # in memory: `map` on a dataset read from disk writes its cache files into the dataset's folder and reuses them
    # on the next run, unverified; in memory nothing is written here and every file read is one checksummed above
    return datasets.load_from_disk(str(Path(folder) / "data"), keep_in_memory=True)


def _parse_pair(corpus, pair):
    """'en-fr' -> (canonical pair, reversed?)."""
    if corpus.task != "translation":
        if pair:
            raise ValueError(f"--pair applies to translation corpora only; {corpus.name!r} is a classification corpus.")
        return None, False
    if pair is None:
        return corpus.pairs[0], False
    languages = tuple(pair.split("-"))
    for canonical in corpus.pairs:
        if languages == canonical:
            return canonical, False
        if languages == canonical[::-1]:
            return canonical, True
    offered = ", ".join(f"{a}-{b}, {b}-{a}" for a, b in corpus.pairs)
    raise ValueError(f"The corpus {corpus.name!r} has no language pair {pair!r}: choose one of {offered}.")


def load_corpus(name, pair=None, cache_dir=None):
    """A built-in corpus as a DatasetDict with train, validation and test splits (built and cached on first use).

    Translation corpora give `source` and `target` columns in the direction of `pair` ("en-fr" or "fr-en"; the
    split is the same for both directions); classification corpora give `text` and `label`.
    """
    if name not in CORPORA:
        raise ValueError(f"Unknown corpus {name!r}: choose one of {', '.join(CORPORA)}, or use your own files.")
    corpus = CORPORA[name]
    canonical, reverse = _parse_pair(corpus, pair)
    folder = _cache_folder(corpus, canonical, cache_dir)
    dataset_dict = _load_cached(folder)
    if dataset_dict is None:
        dataset_dict = _build(corpus, canonical, folder)
    if corpus.task == "translation":
        source, target = canonical[::-1] if reverse else canonical
        dataset_dict = dataset_dict.rename_columns({source: "source", target: "target"})
    return dataset_dict


def corpus_meta(name, pair=None, cache_dir=None):
    """Provenance of a cached corpus: description, licence, sizes and the split rule (for model cards)."""
    corpus = CORPORA[name]
    canonical, _ = _parse_pair(corpus, pair)
    meta_path = _cache_folder(corpus, canonical, cache_dir) / "meta.json"
    return json.loads(meta_path.read_text()) if meta_path.is_file() else None


def _cache_folder(corpus, canonical, cache_dir):
    leaf = f"{corpus.name}-{'-'.join(canonical)}" if canonical else corpus.name
    return Path(cache_dir or default_cache_dir()) / "corpora" / leaf


def _build(corpus, canonical, folder):
    with tempfile.TemporaryDirectory(prefix=f"hf_vanilla-{corpus.name}-") as workdir:
        rows = corpus.build(corpus.name, canonical, Path(workdir))
    texts = canonical if corpus.task == "translation" else ("text",)  # the first is the source, the split key
    key = texts[0]
    features = datasets.Features({column: datasets.Value("string") for column in texts})
    if corpus.task == "classification":
        features["label"] = datasets.ClassLabel(names=list(corpus.label_names))
    rows = [row for row in rows if all(row[column] for column in texts)]
    splits = split_by_hash(rows, key, corpus.validation_size, corpus.test_size)
    sizes = {split: len(split_rows) for split, split_rows in splits.items()}
    progress(corpus.name, f"{len(rows)} rows, {sum(sizes.values())} after deduplication: {sizes}")
    meta = {
        "format_version": FORMAT_VERSION,
        "corpus": corpus.name,
        "pair": "-".join(canonical) if canonical else None,
        "description": corpus.description,
        "licence": corpus.licence,
        "rows_before_deduplication": len(rows),
        "sizes": sizes,
        "split_rule": f"deduplicated on the {key!r} text, ordered by its sha256; the first {sizes['test']} are test, "
                      f"the next {sizes['validation']} validation, the rest train",
    }
    dataset_dict = to_dataset_dict(splits, features)
    _save_atomically(dataset_dict, folder, meta)
    progress(corpus.name, f"cached in {folder}")
    return _load_cached(folder, verify=False)
