"""Hook implementations of the ``syftbox`` transport (entry point
``syftflwr.transports: syftbox``).

Kept light: nothing here imports syft-rpc, syft-event, syft-crypto or pydantic; the
role factories import what they need when a role is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from syftflwr.plugin import (
    ConfigError,
    Detection,
    TransportContext,
    TransportInfo,
    check_identity,
    hookimpl,
)

from syftflwr_syftbox.options import NAME, OPTIONS, STATIC_CAPABILITIES, Settings, SyftBoxConfig

if TYPE_CHECKING:
    from syftflwr.plugin import BaseEvents, BaseRPC

    from syftflwr_syftbox.client import SyftBoxClient


@hookimpl
def syftflwr_transport_info() -> TransportInfo:
    return TransportInfo(
        name=NAME,
        description="SyftBox datasites: each participant writes only into its own "
        "datasite; works on one shared data dir or across SyftBox sync.",
        capabilities=STATIC_CAPABILITIES,
        options=OPTIONS,
        docs_url="docs/transports/syftbox.md",
    )


@hookimpl
def syftflwr_detect(context: TransportContext) -> Detection:
    try:
        settings = Settings.from_context(context)
        config = SyftBoxConfig.load(settings.config_path)
    except (ConfigError, ValueError, TypeError) as exc:
        return Detection(False, str(exc))
    if context.email:
        try:
            check_identity(context.email, config.email, NAME, source=str(config.path))
        except ConfigError as exc:
            return Detection(False, f"{exc.source}: {exc.problem}")
    return Detection(True, f"SyftBox config {config.path} ({config.email})", preference=50)


@hookimpl
def syftflwr_make_client(context: TransportContext) -> SyftBoxClient:
    from syftflwr_syftbox.client import SyftBoxClient

    return SyftBoxClient(context)


@hookimpl
def syftflwr_make_rpc(client: SyftBoxClient, context: TransportContext) -> BaseRPC:
    from syftflwr_syftbox.client import make_rpc

    return make_rpc(client, context)


@hookimpl
def syftflwr_make_events(client: SyftBoxClient, context: TransportContext) -> BaseEvents:
    from syftflwr_syftbox.client import make_events

    return make_events(client, context)
