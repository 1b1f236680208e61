"""The hook module named by the entry point ``syftflwr.transports: template``.

Keep it light: ``syftflwr transports`` and auto-detection import it and call
``syftflwr_transport_info`` / ``syftflwr_detect`` for every user, every time. Import
your storage SDK (and ``syftflwr.mailbox``) inside the role factories only; the
conformance suite checks this (``heavy_modules`` in tests/test_conformance.py).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from syftflwr import hookimpl
from syftflwr.errors import ConfigError
from syftflwr.info import Capabilities, Detection, OptionSpec, TransportContext, TransportInfo

if TYPE_CHECKING:
    from syftflwr.mailbox import MailboxEvents, MailboxRPC

    from syftflwr_template.roles import TemplateClient

NAME = "template"
ROOT_ENV = "SYFTFLWR_TEMPLATE_ROOT"
DEFAULT_POLL_INTERVAL = 0.1

OPTIONS = (
    OptionSpec(
        "root",
        "path",
        "The directory every participant reads and writes (a local or network folder).",
        env=ROOT_ENV,
        participant=True,
    ),
    OptionSpec(
        "poll_interval",
        "float",
        "Seconds between listings of the inbox folders when busy; backs off to 8x when idle.",
        default=DEFAULT_POLL_INTERVAL,
        minimum=0,
        exclusive_minimum=True,
    ),
    OptionSpec(
        "max_object_size",
        "int",
        "Largest file written; core chunks bigger messages beneath it (default: no limit).",
        default=None,
        minimum=1,
    ),
)


def capabilities(
    poll_interval: float = DEFAULT_POLL_INTERVAL, max_object_size: int | None = None
) -> Capabilities:
    """A directory cannot notify us (we do not use inotify here): core polls."""
    return Capabilities(
        notifies_arrivals=False,
        poll_interval=poll_interval,
        max_object_size=max_object_size,
    )


def root_of(context: TransportContext) -> Path | None:
    """The configured root (validated option, or the environment during detection)."""
    root = context.options.get("root") or os.environ.get(ROOT_ENV)
    return Path(root).expanduser() if root else None


@hookimpl
def syftflwr_transport_info() -> TransportInfo:
    return TransportInfo(
        name=NAME,
        description="Template: a mailbox in a shared directory, polled.",
        capabilities=capabilities(),
        options=OPTIONS,
    )


@hookimpl
def syftflwr_detect(context: TransportContext) -> Detection:
    root = root_of(context)
    if root is None:
        return Detection(False, f"no root directory configured (option root or {ROOT_ENV})")
    if not root.is_dir():
        return Detection(False, f"root {root} is not an existing directory")
    return Detection(True, f"shared directory {root}", preference=5)


@hookimpl
def syftflwr_make_client(context: TransportContext) -> TemplateClient:
    from syftflwr_template.roles import TemplateClient

    root = root_of(context)
    if root is None:
        raise ConfigError(
            "the template transport needs a shared root directory",
            key=f"tool.syftflwr.transport.{NAME}.root",
            fix=f'set root = "/shared/dir" in that table, or export {ROOT_ENV}=/shared/dir',
        )
    return TemplateClient(context, root)


@hookimpl
def syftflwr_make_rpc(client: TemplateClient, context: TransportContext) -> MailboxRPC:
    from syftflwr_template.roles import make_rpc

    return make_rpc(client, context)


@hookimpl
def syftflwr_make_events(client: TemplateClient, context: TransportContext) -> MailboxEvents:
    from syftflwr_template.roles import make_events

    return make_events(client, context)
