"""Fails at import: a dependency that does not exist (as a plugin whose optional library is
missing would)."""

from __future__ import annotations

import syftflwr_missing_dependency_for_tests  # noqa: F401
from syftflwr import hookimpl
from syftflwr.info import Capabilities, TransportInfo


@hookimpl
def syftflwr_transport_info() -> TransportInfo:  # never reached
    return TransportInfo("broken", "never importable", Capabilities(notifies_arrivals=True))
