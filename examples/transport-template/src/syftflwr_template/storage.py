"""The template's storage: a directory every participant shares, through core's
``LocalDirStorage`` (atomic and exclusive: temp file, fsync, then rename or link).

For another storage (a bucket, an API), write a class implementing
``syftflwr.mailbox.Storage`` — ``put_if_absent``, ``put``, ``get``, ``list``, ``delete``
(subclass ``BaseStorage`` for the rest; its semantics are in docs/mailbox.md) — and
return it here. The kit builds every role around it.
"""

from __future__ import annotations

from syftflwr.plugin import ConfigError, LocalDirStorage, MailboxSettings, TransportContext

from syftflwr_template.plugin import NAME, ROOT_ENV, root_of


def open_storage(context: TransportContext, settings: MailboxSettings) -> LocalDirStorage:
    root = root_of(context)
    if root is None:
        raise ConfigError(
            f"the {NAME} transport needs a shared root directory",
            key=f"tool.syftflwr.transport.{NAME}.root",
            fix=f'set root = "/shared/dir" in that table, or export {ROOT_ENV}=/shared/dir',
        )
    return LocalDirStorage(root, fsync=settings.fsync)
