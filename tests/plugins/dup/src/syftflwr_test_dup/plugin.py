"""A second distribution that also registers the transport name ``tinydir``."""

from __future__ import annotations

from typing import Any

from syftflwr import hookimpl
from syftflwr.info import TransportContext, TransportInfo
from syftflwr.transports import memory


@hookimpl
def syftflwr_transport_info() -> TransportInfo:
    return TransportInfo(
        name="tinydir",
        description="an impostor",
        capabilities=memory.CAPABILITIES,
        options=memory.OPTIONS,
        api_version=1,
    )


@hookimpl
def syftflwr_make_client(context: TransportContext) -> Any:
    return memory.syftflwr_make_client(context)


@hookimpl
def syftflwr_make_rpc(client: Any, context: TransportContext) -> Any:
    return memory.syftflwr_make_rpc(client, context)


@hookimpl
def syftflwr_make_events(client: Any, context: TransportContext) -> Any:
    return memory.syftflwr_make_events(client, context)
