"""Where a published number came from: the commit, the command, the machine and the date, recorded beside it.

Every benchmark (and the demo) writes its result JSON with `provenance()` under the key "provenance"; the published
ones live in benchmarks/results/, and the tables in README.md, model_card.md and docs/ are written from those files
by benchmarks/tables.py.
"""

import datetime
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the checkout (git is asked about it, when it is one)


def _git(*args):
    try:
        # rstrip only: `status --porcelain` lines start with a meaningful space (" M path")
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.rstrip()
    except (OSError, subprocess.CalledProcessError):
        return None


def machine():
    """The machine in a few words: processor, cores, memory, and the versions that shape the numbers."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        memory = None
    import torch
    import transformers

    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "memory_gib": round(memory, 1) if memory else None, "python": platform.python_version(),
            "torch": torch.__version__, "transformers": transformers.__version__, "os": platform.platform()}


def provenance(argv=None):
    """commit (and whether the tree had uncommitted changes), command, machine and date of this run."""
    argv = sys.argv if argv is None else argv
    script = Path(argv[0])
    try:
        script = script.resolve().relative_to(ROOT)
    except ValueError:
        pass
    status = _git("status", "--porcelain", "--untracked-files=no")
    # result files a benchmark is writing (benchmarks/results/) are outputs, not changes to what is measured
    changed = [line for line in (status or "").splitlines() if not line[3:].startswith("benchmarks/results/")]
    return {
        "commit": _git("rev-parse", "HEAD"),
        "uncommitted_changes": bool(changed) if status is not None else None,
        "command": "python " + " ".join([shlex.quote(str(script))] + [shlex.quote(a) for a in argv[1:]]),
        "machine": machine(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
