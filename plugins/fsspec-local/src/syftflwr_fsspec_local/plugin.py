"""Hook implementations of the ``fsspec-local`` transport (entry point
``syftflwr.transports: fsspec-local``).

Kept light: nothing here imports fsspec or watchdog; the role factories import the
heavy modules when a role is actually built.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from syftflwr.hookspecs import hookimpl
from syftflwr.info import Detection, TransportContext, TransportInfo

from syftflwr_fsspec_local.options import NAME, OPTIONS, STATIC_CAPABILITIES, Settings

if TYPE_CHECKING:
    from syftflwr.mailbox.events import MailboxEvents
    from syftflwr.mailbox.rpc import MailboxRPC

    from syftflwr_fsspec_local.client import FsspecLocalClient


@hookimpl
def syftflwr_transport_info() -> TransportInfo:
    return TransportInfo(
        name=NAME,
        description="File mailbox on a local directory (inotify) or any fsspec URL "
        "(gcs://, s3://, memory://; polled).",
        capabilities=STATIC_CAPABILITIES,
        options=OPTIONS,
        docs_url="docs/transports/fsspec-local.md",
    )


def _creatable(path: Path) -> tuple[bool, str]:
    """Whether ``path`` exists as a writable folder or could be created (no side effects)."""
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            return False, f"no existing parent of {path}"
        probe = probe.parent
    if not probe.is_dir():
        return False, f"{probe} is not a directory"
    if not os.access(probe, os.W_OK | os.X_OK):
        return False, f"{probe} is not writable"
    return True, str(path)


@hookimpl
def syftflwr_detect(context: TransportContext) -> Detection:
    try:
        settings = Settings.from_context(context)
    except (ValueError, TypeError) as exc:
        return Detection(False, f"invalid options: {exc}")
    if not settings.is_local:
        return Detection(True, f"mailbox root {settings.root}", preference=10)
    ok, detail = _creatable(Path(settings.root))
    if ok:
        return Detection(True, f"local mailbox root {detail}", preference=10)
    return Detection(False, f"cannot create the local mailbox root: {detail}")


@hookimpl
def syftflwr_make_client(context: TransportContext) -> FsspecLocalClient:
    from syftflwr_fsspec_local.client import FsspecLocalClient

    return FsspecLocalClient(context)


@hookimpl
def syftflwr_make_rpc(client: FsspecLocalClient, context: TransportContext) -> MailboxRPC:
    from syftflwr_fsspec_local.client import make_rpc

    return make_rpc(client, context)


@hookimpl
def syftflwr_make_events(client: FsspecLocalClient, context: TransportContext) -> MailboxEvents:
    from syftflwr_fsspec_local.client import make_events

    return make_events(client, context)
