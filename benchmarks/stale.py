"""Which results files are stale: for every commit a results file records, is it in this branch's history, and which
files that could change the number changed since: the script that wrote the file, every project module it imports or
runs (`-m recipes.x` in its text counts as a run), followed through their own imports, and the pins.

    python benchmarks/stale.py             # a table, one row per results file and commit
    python benchmarks/stale.py --strict    # the same, exit 1 if any row is stale (what a release would run)

A row is fresh when its commit is an ancestor of HEAD, the run had no uncommitted changes and none of those files
changed since; a Python file whose change is only to comments and docstrings does not count (its code, the syntax
tree without them, is the same, so no number can move). Nor does a change confined to a table whose one use is to
refuse arguments before any work (`REFUSAL_TABLES`: hf_vanilla.cli.RANGES), as long as today's table still takes
every `--flag value` of the recorded command: a run the table lets through runs as before, so such a change can stop
a command but not move its number. A fresh row is a number the current code would give on that
machine; a stale one says what to re-run. A file with a top-level "historic" (why) records an earlier state on
purpose (mutation_before.json: the score before the tests its survivors asked for); it is listed as historic, with
that reason, neither fresh nor stale.
This reads git only; it runs nothing.
"""

import argparse
import ast
import functools
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hf_vanilla import cli  # noqa: E402
from hf_vanilla.training.cards import markdown_table  # noqa: E402
from hf_vanilla.training.provenance import ROOT  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
PINS = ["constraints.txt", "pyproject.toml"]  # the versions every number was measured with
SCRIPT = re.compile(r"\b((?:benchmarks|recipes)/\w+\.py)\b")
PACKAGES = ("hf_vanilla", "recipes", "benchmarks")
MODULE_NAME = re.compile(r"\b((?:hf_vanilla|recipes|benchmarks)(?:\.\w+)+)\b")  # in a string: -m recipes.x
# file -> the module-level table in it whose one use is to refuse arguments before any work (exit 2)
REFUSAL_TABLES = {"hf_vanilla/cli.py": "RANGES"}


def module_file(name):
    """The project file of a dotted module name (a package's __init__.py), or None outside the project."""
    base = ROOT.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


@functools.cache
def imported_files(path):
    """Project files one file names: its imports (anywhere, lazy ones included) and module names in its strings."""
    tree, names = ast.parse(path.read_text()), []
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from .x import y
                parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            names += [base] + [f"{base}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names += MODULE_NAME.findall(node.value)
    files = set()
    for name in names:
        parts = name.split(".")
        if parts[0] not in PACKAGES:
            continue
        for end in range(1, len(parts) + 1):  # the package __init__ files run on the way
            found = module_file(".".join(parts[:end]))
            if found:
                files.add(found)
    return files


@functools.cache
def dependencies(script):
    """The script and every project file it reaches through imports and -m runs, as paths from the root."""
    todo, seen = [ROOT / script], set()
    while todo:
        path = todo.pop()
        if path in seen or not path.is_file():
            continue
        seen.add(path)
        todo += imported_files(path)
    return tuple(sorted(str(p.relative_to(ROOT)) for p in seen))


def git(*args):
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)


def script_of(command):
    """The file a recorded command runs: `python benchmarks/x.py ...` or `python -m recipes.x ...`."""
    found = SCRIPT.search(command)
    if found:
        return found.group(1)
    module = re.search(r"-m ((?:benchmarks|recipes)\.\w+)", command)
    return module.group(1).replace(".", "/") + ".py" if module else None


def provenances(value):
    """Every provenance dict (one with a commit) anywhere in a results file: top level, per run, per row."""
    if isinstance(value, dict):
        own = value.get("provenance")
        found = [own] if isinstance(own, dict) and "commit" in own else []
        return found + [p for v in value.values() for p in provenances(v)]
    if isinstance(value, list):
        return [p for v in value for p in provenances(v)]
    return []


def code_of(source, leave_out=None):
    """A Python source's code: its syntax tree without docstrings (comments are not in it), positions left out; without
    the module-level assignment to the name `leave_out` too, if given."""
    tree = ast.parse(source)
    if leave_out:
        tree.body = [node for node in tree.body if leave_out not in assigned_names(node)]
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body and \
                isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant) and \
                isinstance(node.body[0].value.value, str):
            node.body = node.body[1:] or [ast.Pass()]
    return ast.dump(tree)


def assigned_names(node):
    """The names a module-level statement assigns (X = ..., X: T = ...), else none."""
    targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
    return [target.id for target in targets if isinstance(target, ast.Name)]


@functools.cache  # every row recorded at one commit asks about the same files, some twice (with a table left out)
def sources(commit, path):
    """`path` at `commit` and at HEAD, or None where it was added or removed."""
    before, after = git("show", f"{commit}:{path}"), git("show", f"HEAD:{path}")
    return None if before.returncode or after.returncode else (before.stdout, after.stdout)


def same_code(commit, path, leave_out=None):
    """Whether `path` at HEAD differs from `commit` in comments and docstrings only (and the table `leave_out`)."""
    found = sources(commit, path) if path.endswith(".py") else None
    if found is None:
        return False
    try:
        return code_of(found[0], leave_out) == code_of(found[1], leave_out)
    except SyntaxError:
        return False


def refused(command):
    """The `--flag value` pairs of a recorded command that today's argument ranges (hf_vanilla.cli.RANGES) refuse."""
    words = [part for word in shlex.split(command) for part in (word.split("=", 1) if word.startswith("--") else [word])]
    found = []
    for flag, value in zip(words, words[1:]):
        check = cli.RANGES.get(flag[2:]) if flag.startswith("--") else None
        try:
            number = float(value)
        except ValueError:
            continue
        if check and not check[0](int(number) if number.is_integer() else number):
            found.append(f"{flag} {value}")
    return found


def changed_code(commit, path, commands):
    """None when `path` changed in nothing that could move the number of a run of `commands`, else how to name it."""
    if same_code(commit, path):
        return None
    table = REFUSAL_TABLES.get(path)
    if not table or not same_code(commit, path, table):
        return path
    refusals = [flag for command in commands for flag in refused(command)]
    return f"{path} (its {table} now refuse {', '.join(refusals)})" if refusals else None


def status(commit, script, dirty, commands=()):
    """(in history, commits since, files changed since) for one recorded commit and the commands run at it."""
    if git("merge-base", "--is-ancestor", commit, "HEAD").returncode != 0:
        return False, None, []
    since = int(git("rev-list", "--count", f"{commit}..HEAD").stdout.strip() or 0)
    paths = PINS + (list(dependencies(script)) if script else list(PACKAGES))  # without a script: all the code
    named = [changed_code(commit, path, commands)
             for path in git("diff", "--name-only", commit, "HEAD", "--", *paths).stdout.split()]
    return True, since, [name for name in named if name] + (["(uncommitted changes at the run)"] if dirty else [])


def rows(results=None):
    out = []
    for path in sorted((results or RESULTS).glob("*.json")):
        data = json.loads(path.read_text())
        seen = {}  # each (commit, script, dirty) once, in file order, with the commands run that way
        for p in provenances(data):
            key = (p["commit"], script_of(p.get("command", "")), bool(p.get("uncommitted_changes")))
            seen.setdefault(key, []).append(p.get("command", ""))
        for (commit, script, dirty), commands in seen.items():
            in_history, since, changed = status(commit, script, dirty, tuple(commands))
            out.append({"file": path.name, "commit": commit[:7], "in_history": in_history, "since": since,
                        "changed": changed, "fresh": in_history and not changed, "historic": data.get("historic")})
    return out


def table(found):
    def changed(row):
        if row["historic"]:
            return f"historic: {row['historic']}"
        if not row["in_history"]:
            return "the commit is not in this branch's history"
        names = row["changed"]
        return "none" if not names else f"{len(names)}: " + ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")

    return markdown_table(["file", "commit", "commits since", "fresh", "files that could change it, changed since"],
                          [[r["file"], f"`{r['commit']}`", "" if r["since"] is None else str(r["since"]),
                            "historic" if r["historic"] else "yes" if r["fresh"] else "**no**", changed(r)]
                           for r in found])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--strict", action="store_true", help="Exit 1 if any results file is stale.")
    args = parser.parse_args(argv)
    found = rows()
    print(table(found))
    historic = [r for r in found if r["historic"]]
    stale = [r for r in found if not r["fresh"] and not r["historic"]]
    print(f"\n{len(found) - len(stale) - len(historic)} of {len(found) - len(historic)} recorded runs are fresh at HEAD"
          + (f" ({len(historic)} more historic, kept as a record of an earlier state)." if historic else "."))
    return 1 if args.strict and stale else 0


if __name__ == "__main__":
    sys.exit(main())
