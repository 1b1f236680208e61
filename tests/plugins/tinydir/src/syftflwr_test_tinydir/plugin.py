"""Hook module: light on purpose (listing and detection import only this module); the
roles live in ``roles`` and are imported by the factories."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from syftflwr.plugin import (
    Capabilities,
    ConfigError,
    Detection,
    OptionSpec,
    TransportContext,
    TransportInfo,
    hookimpl,
)

if TYPE_CHECKING:  # annotations only: the hook module stays light
    from syftflwr_test_tinydir.roles import TinyClient, TinyEvents, TinyRPC

NAME = "tinydir"
ROOT_ENV = "SYFTFLWR_TINYDIR_ROOT"
SHARES_ENV = "SYFTFLWR_TINYDIR_SHARES_OBJECTS"
CAPABILITIES = Capabilities(
    notifies_arrivals=False,
    poll_interval=0.05,
    max_poll_interval=0.05,
    # set: declares a capability its roles lack (put_blob/get_blob): transports --check fails
    shares_objects=os.environ.get(SHARES_ENV) == "1",
)


def root_of(context: TransportContext) -> Path | None:
    root = context.options.get("root") or os.environ.get(ROOT_ENV)
    return Path(root) if root else None


@hookimpl
def syftflwr_transport_info() -> TransportInfo:
    return TransportInfo(
        name=NAME,
        description="Envelopes as files in one directory shared by every participant.",
        capabilities=CAPABILITIES,
        options=(OptionSpec("root", "path", "the shared directory", required=True, env=ROOT_ENV),),
    )


@hookimpl
def syftflwr_detect(context: TransportContext) -> Detection:
    root = root_of(context)
    if root is None:
        return Detection(False, f"no root configured (set {ROOT_ENV})")
    if not root.is_dir():
        return Detection(False, f"root {root} does not exist")
    return Detection(True, f"shared directory {root} exists", preference=10)


@hookimpl
def syftflwr_make_client(context: TransportContext) -> TinyClient:
    from syftflwr_test_tinydir.roles import TinyClient

    root = root_of(context)
    if root is None:
        raise ConfigError(
            "the tinydir transport needs a root directory",
            key="tool.syftflwr.transport.tinydir.root",
            fix=f"set it, or export {ROOT_ENV}=/shared/dir",
        )
    return TinyClient(context.require_email(), root)


@hookimpl
def syftflwr_make_rpc(client: Any, context: TransportContext) -> TinyRPC:
    from syftflwr_test_tinydir.roles import TinyRPC

    return TinyRPC(client, context, CAPABILITIES)


@hookimpl
def syftflwr_make_events(client: Any, context: TransportContext) -> TinyEvents:
    from syftflwr_test_tinydir.roles import TinyEvents

    return TinyEvents(client, context, CAPABILITIES)


@hookimpl
def syftflwr_register_commands(group: click.Group) -> None:
    @group.command()
    def where() -> None:
        """Print the shared directory this machine would use."""
        click.echo(os.environ.get(ROOT_ENV, "(not configured)"))
