"""Writing output folders so that a crash never leaves one that looks complete: write aside, then rename.

The one home of this policy: checkpoints, final models, corpus caches and engine exports all go through
`atomic_folder`. Standard library only (the core install uses it for exports).
"""

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_folder(target, overwrite=True, staging_name=None):
    """Yield a hidden staging folder beside `target`; on a clean exit it replaces `target` in one rename.

    On an error (or a kill) only the hidden `.<name>.partial*` folder is left, never a half-written `target`; the
    next call clears a leftover fixed-name staging folder. With `overwrite=False` an existing `target` is an error
    (FileExistsError). `staging_name` fixes the staging folder's name (Trainer needs to know it in advance);
    otherwise a fresh unique one is made.
    """
    target = Path(target)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists")
    target.parent.mkdir(parents=True, exist_ok=True)
    if staging_name:
        staging = target.parent / staging_name
        if staging.exists():
            shutil.rmtree(staging)  # left by a run that crashed while writing
        staging.mkdir()
    else:
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        yield staging
        replace_folder(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


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
