"""Building blocks shared by file-based transports (no transport library).

* :mod:`~syftflwr.mailbox.layout` — where objects live (syft-flwr's layout) + format version
* :mod:`~syftflwr.mailbox.storage` — the Storage protocol a backend implements
* :mod:`~syftflwr.mailbox.profile` — the wire-profile protocol and the native profile
* :mod:`~syftflwr.mailbox.localdir` — that protocol over a local directory (atomic, exclusive)
* :mod:`~syftflwr.mailbox.chunking` — messages above ``max_object_size`` as parts + manifest
* :mod:`~syftflwr.mailbox.journal` — persisted journal of claimed/answered/sent requests
* :mod:`~syftflwr.mailbox.arrivals` — the arrival-source protocol and the adaptive Poller
* :mod:`~syftflwr.mailbox.watcher` — one shared watcher for local folders (watchdog's
  public Observer, imported on first use)
* :mod:`~syftflwr.mailbox.claims` — exactly one runner handles a request; a dead one's is
  taken over once
* :mod:`~syftflwr.mailbox.rpc`, :mod:`~syftflwr.mailbox.events` — the RPC role, and the
  events role serving (watch, claim, dispatch, reply, reject)
* :mod:`~syftflwr.mailbox.replies` — publishing replies and error replies (serving and
  recovery both use it)
* :mod:`~syftflwr.mailbox.recovery` — what a crashed runner left behind: replies found
  published, lost replies published again from the journal
* :mod:`~syftflwr.mailbox.incomplete` — a request still being written: waited for up to
  a grace period, then refused (the syftbox plugin's own events role uses it too)
* :mod:`~syftflwr.mailbox.retention` — scheduled cleanup of this participant's own objects
* :mod:`~syftflwr.mailbox.blobs` — shared blobs: naming, a reader's refusals and cache
  (the roles store and read them; one folder per blob, see the layout)

A transport plugin supplies a Storage and an ArrivalSource and gets both roles; see
``docs/mailbox.md``.
"""

from __future__ import annotations

from syftflwr._deprecation import mark_private as _mark_private
from syftflwr.mailbox.arrivals import ArrivalCallback, ArrivalSource, Poller, Subscription
from syftflwr.mailbox.events import MailboxEvents
from syftflwr.mailbox.journal import Journal
from syftflwr.mailbox.layout import LAYOUT_VERSION, ObjectKind, Route, ensure_layout
from syftflwr.mailbox.localdir import LocalDirStorage
from syftflwr.mailbox.rpc import MailboxRPC
from syftflwr.mailbox.storage import BaseStorage, Storage

__all__ = [
    "LAYOUT_VERSION",
    "ArrivalCallback",
    "ArrivalSource",
    "BaseStorage",
    "Journal",
    "LocalDirStorage",
    "MailboxEvents",
    "MailboxRPC",
    "ObjectKind",
    "Poller",
    "Route",
    "Storage",
    "Subscription",
    "ensure_layout",
]

_mark_private(__name__)  # plugins importing plugin-API names from here get a warning
