"""A 100 MB body round trip between two processes (and the same, chunked under a
16 MiB max_object_size). Correctness only; speed and memory are the benchmark's."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from _fsl_helpers import AGG, DS1, Datasite, make_context
from syftflwr.envelope import Request
from syftflwr_fsspec_local import plugin

pytestmark = pytest.mark.slow
MB = 1024 * 1024


@pytest.mark.parametrize("max_object_size", [None, 16 * MB])
def test_100mb_round_trip(
    tmp_path: Path, spawn_datasite: Callable[..., Datasite], max_object_size: int | None
) -> None:
    root = tmp_path / "root"
    options = {} if max_object_size is None else {"max_object_size": max_object_size}
    datasite = spawn_datasite(DS1, root, options=options)
    ctx = make_context(AGG, root, **options)
    rpc = plugin.syftflwr_make_rpc(plugin.syftflwr_make_client(ctx), ctx)
    payload = os.urandom(100 * MB - 32)
    body = payload + hashlib.sha256(payload).digest()
    try:
        handle = rpc.send(
            Request.new(sender=AGG, recipient=DS1, app="app", endpoint="echo", body=body, ttl=600)
        )
        (response,) = rpc.wait([handle], timeout=300)
        assert response.ok, response.error_text
        assert response.body_size == len(body)
        assert hashlib.sha256(response.body).digest() == hashlib.sha256(body).digest()
        rpc.forget(handle)
    finally:
        rpc.close()
        datasite.stop()
    assert "Traceback" not in datasite.log
