"""syftflwr's ``fsspec-local`` transport: the mailbox on a local directory (arrivals via
one process-wide inotify watcher) or on any fsspec filesystem (``gcs://``, ``s3://``,
``memory://``; arrivals via adaptive polling).

The hook module is :mod:`syftflwr_fsspec_local.plugin`; it imports neither fsspec nor
watchdog, so listing and detecting transports stays cheap.
"""

from __future__ import annotations

__version__ = "0.1.0"
