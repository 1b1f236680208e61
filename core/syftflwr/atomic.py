"""The one way syftflwr writes a whole file in place (configs, keys, tokens, run results,
checkpoints, stored replies): a reader sees the old content or the new, never half; after
a crash the file holds one or the other; two writers never share a temp file.

The mailbox's own objects are published by :class:`~syftflwr.mailbox.localdir.LocalDirStorage`,
which keeps its temp files outside every watched folder and works relative to folder fds.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path


def atomic_write(
    path: str | os.PathLike[str],
    data: bytes | str,
    *,
    mode: int | None = None,
    exclusive: bool = False,
) -> None:
    """Write ``data`` to a uniquely named temp file beside ``path``, fsync it, then rename
    it over ``path`` — or, ``exclusive``, hard-link it there, raising
    :class:`FileExistsError` if ``path`` exists (of two writers, exactly one wins).

    ``mode``: the file's exact permissions, which the temp file has from its creation (a
    private key is never readable by others, even for an instant); default ``0o666``
    minus the umask. Missing parent folders are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 if mode is None else mode)
    try:
        with os.fdopen(fd, "wb") as out:
            if mode is not None:
                os.fchmod(out.fileno(), mode)  # exactly, whatever the umask
            out.write(data.encode() if isinstance(data, str) else data)
            out.flush()
            os.fsync(out.fileno())
        if exclusive:
            path.hardlink_to(tmp)
        else:
            tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)  # gone already after a replace
