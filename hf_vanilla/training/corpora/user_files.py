"""The user's own data: local csv / tsv / json / jsonl / parquet files or a datasets hub id, checked line by line
and renamed to this project's columns (`source`/`target` or `text`/`label`)."""

import csv
import json
import logging
import sys
from pathlib import Path

import datasets

from .builtin import CORPORA
from .fetch import CorpusError
from .splitting import split_by_hash, to_dataset_dict

logger = logging.getLogger(__name__)

_FORMATS = {".csv": ("csv", {}), ".tsv": ("csv", {"delimiter": "\t"}), ".jsonl": ("json", {}),
            ".json": ("json", {}), ".parquet": ("parquet", {})}


class DataError(ValueError):
    """The user's data or the arguments naming it are wrong; `argument` names the argument to change (`train_file`,
    `source_column`, ...), the message what is wrong and what would be right."""

    def __init__(self, argument, message):
        super().__init__(message)
        self.argument = argument


class DataFileNotFoundError(FileNotFoundError):
    """A data file that does not exist; `argument` names the argument that gave it."""

    def __init__(self, argument, message):
        super().__init__(message)
        self.argument = argument


def _load_files(files, streaming=False):
    extensions = {Path(path).suffix.lower() for path in files.values()}
    for split, path in files.items():
        if not Path(path).is_file():
            raise DataFileNotFoundError(f"{split}_file", f"The {split} file {path} does not exist.")
    if len(extensions) != 1 or next(iter(extensions)) not in _FORMATS:
        raise DataError("train_file", f"Data files must share one of the formats {', '.join(_FORMATS)}; got "
                                      f"{sorted(map(str, files.values()))}.")
    extension = extensions.pop()
    for split, path in files.items():
        _check_text_file(split, path, extension)
    builder, options = _FORMATS[extension]
    return datasets.load_dataset(builder, data_files={k: str(v) for k, v in files.items()}, streaming=streaming,
                                 **options)


def _check_text_file(split, path, extension):
    """Fail early, naming the file and the line, on what `load_dataset` would report vaguely or not at all: an empty
    file, bytes that are not UTF-8, a csv/tsv row whose field count differs from the header's, a bad jsonl line. The
    file is read a line at a time, so a file larger than memory is checked too (`--streaming`)."""
    if extension == ".parquet":
        return
    argument = f"{split}_file"
    lines = _decoded_lines(split, path)
    if extension in (".csv", ".tsv"):
        _check_csv(split, path, lines, "\t" if extension == ".tsv" else ",")
        return
    seen = False
    for number, line in enumerate(lines, 1):
        seen = seen or bool(line.strip())
        if extension == ".jsonl" and line.strip():
            try:
                json.loads(line)
            except json.JSONDecodeError as error:
                message = f"The {split} file {path}, line {number}, is not JSON: {error}."
                raise DataError(argument, message) from error
    if not seen:
        raise DataError(argument, f"The {split} file {path} is empty: it needs a header row and at least one data row.")


def _decoded_lines(split, path):
    """The file's lines as text, one at a time; bytes that are not UTF-8 are refused naming the line."""
    with open(path, "rb") as handle:
        for number, data in enumerate(handle, 1):
            try:
                yield data.decode("utf-8")
            except UnicodeDecodeError as error:
                raise DataError(f"{split}_file", f"The {split} file {path} is not UTF-8: byte "
                                                 f"0x{data[error.start]:02x} on line {number} cannot be decoded. Save "
                                                 f"it as UTF-8 (for example `iconv -f latin1 -t utf-8`).") from error


def _check_csv(split, path, lines, delimiter):
    csv.field_size_limit(sys.maxsize)  # a long field (a whole article) is data, not an error
    reader = csv.reader(lines, delimiter=delimiter)
    header = next((row for row in reader if any(field.strip() for field in row)), None)
    if header is None:
        raise DataError(f"{split}_file", f"The {split} file {path} is empty: it needs a header row and at least one "
                                         f"data row.")
    rows = 0
    for row in reader:
        if not row:  # blank lines are skipped by the csv loader too
            continue
        rows += 1
        if len(row) != len(header):
            raise DataError(f"{split}_file", f"The {split} file {path}, line {reader.line_num}: {len(row)} fields "
                                             f"where the header {header} has {len(header)}. Quote fields that contain "
                                             f"the {'tab' if delimiter == chr(9) else 'comma'} delimiter, or fix the "
                                             f"row.")
    if rows == 0:
        raise DataError(f"{split}_file", f"The {split} file {path} has a header ({', '.join(header)}) but no data "
                                         f"rows.")


def load_user_data(task, *, dataset_name=None, dataset_config_name=None, train_file=None, validation_file=None,
                   test_file=None, text_column="text", label_column="label", source_column="source",
                   target_column="target", validation_size=1000, test_size=1000, source_lang=None, target_lang=None,
                   streaming=False):
    """Local csv / tsv / json / jsonl / parquet files or a datasets hub id, renamed to this project's columns.

    Translation data is either two columns (`source_column`, `target_column`; with `source_lang`/`target_lang`
    and no column names given, the columns named by the languages) or HF's translation format, one `translation`
    column of {language: text} (as `run_translation.py` reads it), from which `source_lang`/`target_lang` pick the
    pair. Numbers in a text column are read as text. Rows with an empty or missing text are dropped (and counted
    in the log). Splits that are not given are cut from train by the same hash rule as the built-in corpora.

    With `streaming` (translation), the train split is a `datasets.IterableDataset` read from the files as training
    goes (never all in memory) with the same renames and row checks; validation and test, which every evaluation
    reads whole, are loaded as usual and must be given (they cannot be cut from a stream).
    """
    if task not in ("translation", "classification"):
        raise ValueError(f"task must be 'translation' or 'classification', got {task!r}.")
    if streaming:
        return _load_streaming(task, dataset_name, dataset_config_name, train_file, validation_file, test_file,
                               source_column, target_column, source_lang, target_lang)
    raw = _load_raw(dataset_name, dataset_config_name, train_file, validation_file, test_file)
    if task == "classification":
        renames = {text_column: "text", label_column: "label"}
    else:
        raw, renames = _translation_columns(raw, source_column, target_column, source_lang, target_lang)
    dataset_dict = datasets.DatasetDict({split: _clean_split(split, rows, renames) for split, rows in raw.items()})

    if task == "classification" and not isinstance(dataset_dict["train"].features["label"], datasets.ClassLabel):
        # labels as given (strings or numbers) become class names, in sorted order
        names = sorted({str(label) for split in dataset_dict.values() for label in split["label"]})
        dataset_dict = dataset_dict.map(lambda row: {"label": names.index(str(row["label"]))})
        dataset_dict = dataset_dict.cast_column("label", datasets.ClassLabel(names=names))
    if "validation" not in dataset_dict or "test" not in dataset_dict:
        dataset_dict = _cut_missing_splits(dataset_dict, "text" if task == "classification" else "source",
                                           validation_size, test_size)
    return dataset_dict


def _load_streaming(task, dataset_name, dataset_config_name, train_file, validation_file, test_file, source_column,
                    target_column, source_lang, target_lang):
    """The train split as a stream; validation and test in memory; this project's columns on all three."""
    if task != "translation":
        raise DataError("streaming", "--streaming is for translation; a classifier needs every label before "
                                     "training (its label set), so load the data in memory.")
    if dataset_name:
        try:
            stream = datasets.load_dataset(dataset_name, dataset_config_name, streaming=True)
        except Exception as error:  # the hub raises many types; the message matters
            raise CorpusError(f"Could not stream the dataset {dataset_name!r} ({type(error).__name__}: {error}).") \
                from error
        missing = [split for split in ("train", "validation", "test") if split not in stream]
        if missing:
            raise DataError("streaming", f"The dataset {dataset_name!r} has no {' or '.join(missing)} split: with "
                                         f"--streaming every split must be given (none can be cut from a stream).")
        raw = datasets.DatasetDict({split: datasets.Dataset.from_list(list(stream[split]))
                                    for split in ("validation", "test")})
        train = stream["train"]
    else:
        if not (validation_file and test_file):
            raise DataError("validation_file" if not validation_file else "test_file",
                            "--streaming reads the train file as a stream, so validation and test cannot be cut from "
                            "it: give --validation_file and --test_file.")
        raw = _load_files({"validation": validation_file, "test": test_file})
        train = _load_files({"train": train_file}, streaming=True)["train"]
    first = next(iter(train), None)
    if first is None:
        raise DataError("train_file", "The train data has no rows.")
    raw["train"] = train
    raw, renames = _translation_columns(raw, source_column, target_column, source_lang, target_lang,
                                        columns=list(first), first=first)
    return {split: _clean_split(split, rows, renames) for split, rows in raw.items()}


def _load_raw(dataset_name, dataset_config_name, train_file, validation_file, test_file):
    if dataset_name:
        try:
            return datasets.load_dataset(dataset_name, dataset_config_name)
        except Exception as error:  # the hub raises many types; the message matters
            raise CorpusError(
                f"Could not load the dataset {dataset_name!r} from the hub ({type(error).__name__}: {error}). "
                f"Offline, use a built-in corpus ({', '.join(CORPORA)}) or local files (train_file)."
            ) from error
    files = {s: f for s, f in [("train", train_file), ("validation", validation_file), ("test", test_file)] if f}
    if "train" not in files:
        raise DataError("train_file", "Give a train file (train_file), a built-in corpus (corpus) or a hub id "
                                      "(dataset_name).")
    return _load_files(files)


def _translation_columns(raw, source_column, target_column, source_lang, target_lang, columns=None, first=None):
    """The raw data with `source` and `target` columns to rename from, and the renames (`columns` and `first`: the
    train split's, given for a stream)."""
    columns = columns or raw["train"].column_names
    if "translation" in columns and source_column not in columns:  # HF's {"translation": {"en": .., "fr": ..}}
        languages = sorted((first or raw["train"][0])["translation"] or {})
        for argument, language in (("source_lang", source_lang), ("target_lang", target_lang)):
            if language is None or language not in languages:
                raise DataError(argument, f"The data is in HF's translation format with the languages "
                                          f"{', '.join(languages)}: give {argument} as one of them"
                                          + (f" (not {language!r})." if language else "."))
        raw = {split: rows.map(lambda row: {"source": row["translation"][source_lang],
                                            "target": row["translation"][target_lang]}, remove_columns=["translation"])
               for split, rows in raw.items()}
        return raw, {"source": "source", "target": "target"}
    if source_lang and target_lang and (source_column, target_column) == ("source", "target"):
        source_column, target_column = source_lang, target_lang  # columns named by the languages
    return raw, {source_column: "source", target_column: "target"}


def _clean_split(split, dataset, renames):
    """One split with this project's column names, numbers in text columns as text, and unusable rows dropped (for
    a stream, as it is read)."""
    streamed = isinstance(dataset, datasets.IterableDataset)
    columns = list(next(iter(dataset))) if streamed else dataset.column_names
    missing = [column for column in renames if column not in columns]
    if missing:
        argument = f"{renames[missing[0]]}_column"
        raise DataError(argument, f"The {split} data has no column {missing[0]!r} (named by {argument}); its "
                                  f"columns are {columns}.")
    dataset = dataset.select_columns(list(renames)).rename_columns(renames)
    if streamed:  # numbers as text and empty rows dropped as each row is read (the count is unknown ahead)
        text_columns = [column for column in renames.values() if column != "label"]
        dataset = dataset.map(lambda row: {c: None if row[c] is None else str(row[c]) for c in text_columns})
        return dataset.filter(lambda row: all(isinstance(row[c], str) and row[c].strip() for c in text_columns))
    for column in renames.values():
        dtype = getattr(dataset.features[column], "dtype", None)
        if column != "label" and dtype not in (None, "string", "large_string"):
            dataset = dataset.cast_column(column, datasets.Value("string"))  # 1984 is a title, not a missing text
    before = len(dataset)
    dataset = dataset.filter(lambda row: all(
        isinstance(value, str) and value.strip() if column != "label" else value is not None
        for column, value in row.items()))
    if len(dataset) < before:
        logger.warning("Dropped %d of %d %s rows with an empty or missing %s.", before - len(dataset), before,
                       split, " or ".join(renames))
    if len(dataset) == 0:
        raise DataError(f"{split}_file", f"The {split} data has no usable rows (every {next(iter(renames))!r} is "
                                         f"empty).")
    return dataset


def _cut_missing_splits(dataset_dict, key, validation_size, test_size):
    distinct = len(set(dataset_dict["train"][key]))
    if distinct < 10:
        raise DataError("train_file", f"The train data has {distinct} distinct usable rows: at least 10 are needed to "
                                      f"cut validation and test splits from it; add data, or give validation_file and "
                                      f"test_file.")
    splits = split_by_hash(list(dataset_dict["train"]), key, validation_size, test_size)
    for split in ("validation", "test"):
        if split in dataset_dict:
            splits["train"] += splits.pop(split)  # a given split stays; its share returns to train
    return datasets.DatasetDict({**dataset_dict, **to_dataset_dict(splits, dataset_dict["train"].features)})
