"""Writing output folders so that a crash never leaves one that looks complete: write aside, then rename.

The one home of this policy: checkpoints, final models, corpus caches and engine exports all go through
`atomic_folder`. Standard library only (the core install uses it for exports).
"""

import errno
import fnmatch
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path


class OutputFolderRefused(ValueError):
    """An output folder that would destroy or mix with something the command did not write. `argument` names the
    command-line flag at fault (for `hf_vanilla.cli.report`)."""

    def __init__(self, message, argument=None):
        super().__init__(message)
        self.argument = argument


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def check_output_folder(output_dir, *, inputs=None, overwrite=False, ours=()):
    """Refuse an output folder that the command could not safely write or replace; raise OutputFolderRefused.

    The one rule for every command that writes a folder:
    - it may not be, contain or lie inside any of `inputs` ({flag name: path}), compared after resolving symlinks and
      `..`, since replacing it would delete the input (an export into the model's parent folder deleted the model);
    - it may not be an existing file;
    - an existing non-empty folder needs `overwrite`, and even then it may hold only names matching the glob patterns
      `ours` (what this project writes there, and hidden staging folders): anything else is named and refused, never
      deleted.
    """
    path = Path(output_dir)
    resolved = Path(os.path.realpath(path))
    pairs = [(flag, item) for flag, value in (inputs or {}).items() if value
             for item in (value if isinstance(value, (list, tuple)) else [value])]
    for flag, value in pairs:
        source = Path(os.path.realpath(value))
        if _inside(resolved, source) or _inside(source, resolved):
            relation = ("is" if resolved == source else "contains" if _inside(source, resolved) else "lies inside")
            raise OutputFolderRefused(
                f"{output_dir} {relation} the --{flag} folder {value}"
                + (f" (both resolve to {resolved})" if relation == "is" else f" ({resolved} vs {source})")
                + ": writing there would replace what the command reads. Choose an output folder outside it.",
                "output_dir")
    if path.exists() and not path.is_dir():
        raise OutputFolderRefused(f"{output_dir} is a file, not a folder: choose a folder (new or empty).",
                                  "output_dir")
    existing = next(p for p in [resolved, *resolved.parents] if p.exists())
    if not existing.is_dir():
        raise OutputFolderRefused(f"{output_dir} cannot be created: {existing} is a file.", "output_dir")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputFolderRefused(f"{output_dir} cannot be written ({existing} is not writable for this user): "
                                  f"choose a folder you can write to.", "output_dir")
    entries = sorted(entry.name for entry in path.iterdir()) if path.is_dir() else []
    if entries and not overwrite:
        raise OutputFolderRefused(f"{output_dir} exists and is not empty: choose another folder, or pass "
                                  f"--overwrite_output_dir to replace what an earlier run of this command wrote there.",
                                  "output_dir")
    unknown = [name for name in entries if not name.startswith(".") and
               not any(fnmatch.fnmatchcase(name, pattern) for pattern in ours)]
    if entries and unknown:
        shown = ", ".join(unknown[:10]) + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
        raise OutputFolderRefused(f"{output_dir} holds files this command did not write ({shown}): "
                                  f"--overwrite_output_dir replaces only an earlier output of the same kind. Move "
                                  f"them, or choose another folder.", "output_dir")


@contextmanager
def atomic_folder(target, overwrite=True, staging_name=None, merge=False):
    """Yield a hidden staging folder beside `target`; on a clean exit it replaces `target` in one rename.

    On an error (or a kill) only the hidden `.<name>.partial*` folder is left, never a half-written `target`; the
    next call clears a leftover fixed-name staging folder. With `overwrite=False` an existing `target` is an error
    (FileExistsError). `staging_name` fixes the staging folder's name (Trainer needs to know it in advance);
    otherwise a fresh unique one is made. With `merge=True` the staging folder lies inside `target` and its files
    move into `target` one `os.replace` each (`publish_files`): for a run's final model, beside its checkpoints.
    """
    target = Path(target)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists")
    home = target if merge else target.parent
    home.mkdir(parents=True, exist_ok=True)
    if staging_name:
        staging = home / staging_name
        if staging.exists():
            shutil.rmtree(staging)  # left by a run that crashed while writing
        staging.mkdir()
    else:
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=home))
        staging.chmod(0o777 & ~_umask())  # mkdtemp makes it 0700; the folder it becomes gets the user's umask
    try:
        yield staging
        (publish_files if merge else replace_folder)(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def atomic_remove(folder):
    """Rename, then delete: a kill mid-way leaves a hidden folder, not a half-deleted checkpoint."""
    folder = Path(folder)
    doomed = folder.with_name(f".{folder.name}.removing")
    folder.rename(doomed)
    shutil.rmtree(doomed)


class NoSpaceError(OSError):
    """A folder that could not be written for lack of space (or would not fit): the message names the folder, the
    space it needs and the space free."""


# what torch's zip writer (optimizer.pt, scheduler.pt) raises when the disk fills mid-write, instead of an OSError
_TORCH_WRITE_FAILURES = ("unexpected pos", "file write failed")


def _size(count):
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024


def free_bytes(folder):
    """The space free on the file system where `folder` is (or would be created)."""
    existing = next(p for p in [Path(os.path.abspath(folder)), *Path(os.path.abspath(folder)).parents] if p.exists())
    return shutil.disk_usage(existing).free


def folder_bytes(folder):
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


@contextmanager
def space_for(folder, needed):
    """Refuse before writing when less than `needed` bytes are free where `folder` goes, and turn a write that runs out
    of space anyway (ENOSPC, a full quota, torch's zip writer's 'unexpected pos') into NoSpaceError. Either way the
    error names the folder and the space; removing what was half-written is the caller's (atomic_folder's) part."""
    def error(free):
        return NoSpaceError(errno.ENOSPC, f"no space to write {folder}: it needs about {_size(needed)} and "
                                          f"{_size(free)} is free there. Free some space (or write elsewhere)")

    free = free_bytes(folder)
    if free < needed:
        raise error(free)
    try:
        yield
    except NoSpaceError:
        raise
    except OSError as failure:
        if failure.errno in (errno.ENOSPC, errno.EDQUOT):
            raise error(free_bytes(folder)) from failure
        raise
    except RuntimeError as failure:
        if any(text in str(failure) for text in _TORCH_WRITE_FAILURES):
            raise error(free_bytes(folder)) from failure
        raise


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def replace_folder(source, target):
    """Move the complete folder `source` to `target`, replacing whatever was there."""
    source, target = Path(source), Path(target)
    if target.exists():
        shutil.rmtree(target)
    os.replace(source, target)  # the moment `target` appears, it is complete


def publish_files(staging, target):
    """Move every file of the complete folder `staging` into the folder `target`, one `os.replace` each (a file
    appears whole or not at all; files of `target` not in `staging` stay), then remove `staging`."""
    staging, target = Path(staging), Path(target)
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(staging.rglob("*")):
        if path.is_file():
            destination = target / path.relative_to(staging)
            destination.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, destination)
    shutil.rmtree(staging)
