"""The hook module named by the entry point ``syftflwr.transports: template``: one
registration of core's mailbox kit, plus detection.

Keep it light: ``syftflwr transports`` and auto-detection import it for every user, every
time. The storage is named as ``"module:attribute"`` and imported only when a role is
built; import your storage SDK there, never here (the conformance suite checks it:
``heavy_modules`` in tests/test_conformance.py).
"""

from __future__ import annotations

from pathlib import Path

from syftflwr.plugin import (
    Detection,
    OptionSpec,
    StorageTransport,
    TransportContext,
    mailbox_options,
)

NAME = "template"
ROOT_ENV = "SYFTFLWR_TEMPLATE_ROOT"
ROOT_HELP = "The directory every participant reads and writes (a local or network folder)."

kit = StorageTransport(
    NAME,
    "Template: a mailbox in a shared directory, polled.",
    storage="syftflwr_template.storage:open_storage",  # imported when a role is built
    options=(
        OptionSpec("root", "path", ROOT_HELP, env=ROOT_ENV, participant=True),
        *mailbox_options(poll_interval=0.1, fsync=True),  # poll_interval, max_object_size...
    ),
)
syftflwr_transport_info, syftflwr_make_client, syftflwr_make_rpc, syftflwr_make_events = kit.hooks()


def root_of(context: TransportContext) -> Path | None:
    """The configured root (the validated option, or the context's environment)."""
    root = context.options.get("root") or context.env.get(ROOT_ENV)
    return Path(root).expanduser() if root else None


@kit.detection
def syftflwr_detect(context: TransportContext) -> Detection:
    root = root_of(context)
    if root is None:
        return Detection(False, f"no root directory configured (option root or {ROOT_ENV})")
    if not root.is_dir():
        return Detection(False, f"root {root} is not an existing directory")
    return Detection(True, f"shared directory {root}", preference=5)
