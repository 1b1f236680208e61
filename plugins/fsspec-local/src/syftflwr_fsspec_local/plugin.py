"""Hook implementations of the ``fsspec-local`` transport (entry point
``syftflwr.transports: fsspec-local``): one registration of core's mailbox kit.

Kept light: nothing here imports fsspec or watchdog; :mod:`~syftflwr_fsspec_local.roots`
opens a root's storage and arrival source when a role is built.
"""

from __future__ import annotations

from pathlib import Path

from syftflwr.plugin import PROFILE_NAMES, Detection, StorageTransport, TransportContext

from syftflwr_fsspec_local.options import (
    NAME,
    OPTIONS,
    Settings,
    capabilities,
    creatable,
    share_key,
)

kit = StorageTransport(
    NAME,
    "File mailbox on a local directory (inotify) or any fsspec URL (gcs://, s3://, memory://; "
    "polled).",
    storage="syftflwr_fsspec_local.roots:open_storage",
    arrivals="syftflwr_fsspec_local.roots:open_arrivals",
    options=OPTIONS,
    notifies_arrivals=True,  # the default (local) root; roles get their root's capabilities
    profiles=PROFILE_NAMES,
    shares_objects=True,  # one directory every participant reads (see options.capabilities)
    capabilities=capabilities,
    share=share_key,  # one storage, one watcher, one poller per root and process
    docs_url="docs/transports/fsspec-local.md",
)
syftflwr_transport_info, syftflwr_make_client, syftflwr_make_rpc, syftflwr_make_events = kit.hooks()


@kit.detection
def syftflwr_detect(context: TransportContext) -> Detection:
    settings = Settings.from_context(context)  # unreadable options: not usable (kit)
    if not settings.is_local:
        return Detection(True, f"mailbox root {settings.root}", preference=10)
    ok, detail = creatable(Path(settings.root))
    if ok:
        return Detection(True, f"local mailbox root {detail}", preference=10)
    return Detection(False, f"cannot create the local mailbox root: {detail}")
