"""A folder written beside its final place, then renamed onto it: whole or absent.

Unpacking an approved app and installing its locked wheels both build their folder in a
hidden sibling (``.{name}.{verb}-XXXX``) and rename it; the sibling is removed whatever
happens — but a process killed meanwhile (kill -9, power loss) cannot remove it. The next
build of any folder there removes such leftovers once they are :data:`STALE_AFTER` old
(younger ones may belong to another process building right now).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

STALE_AFTER = 3600.0
"""Seconds after which a staging folder nobody renamed is a killed process's leftover."""


@contextmanager
def staging_beside(target: Path, verb: str) -> Iterator[Path]:
    """A fresh, empty folder next to ``target`` (its parent is made), removed on exit
    unless it was renamed; leftovers of killed builds there are removed first."""
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(target.parent, verb)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.{verb}-", dir=target.parent))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def remove_leftovers(folder: Path, verb: str, *, now: float | None = None) -> list[Path]:
    """Delete what staging of ``verb`` left in ``folder`` (folders, and pip's requirement
    files beside them) older than :data:`STALE_AFTER`."""
    cutoff = (time.time() if now is None else now) - STALE_AFTER
    removed: list[Path] = []
    for path in folder.glob(f".*.{verb}-*"):
        with suppress(OSError):
            if path.stat().st_mtime < cutoff:
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
                removed.append(path)
    return removed
