"""Implements a hook that syftflwr does not declare (a typo, or another API)."""

from __future__ import annotations

from typing import Any

from syftflwr import hookimpl
from syftflwr.info import TransportContext, TransportInfo
from syftflwr.transports import memory


@hookimpl
def syftflwr_transport_info() -> TransportInfo:
    return TransportInfo(
        name="extrahook",
        description="an undeclared hook",
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


@hookimpl
def syftflwr_frobnicate(context: TransportContext) -> None:
    """No such hookspec."""
