"""A datasite's error reply to a request it could not authenticate, seen by the aggregator
(ds1 is `syftflwr run` in its own process, see ``_quickstart_datasite``): what reaches
the ServerApp leads with the datasite's actual reason."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from _quickstart_datasite import AGG, DS1, QUICKSTART, aggregator, quickstart_datasite

pytest.importorskip("syftflwr_fsspec_local", reason="the fsspec-local plugin is installed by nox")


@pytest.mark.parametrize("restarted", [False, True], ids=["serving", "restarted"])
def test_a_refusal_for_an_untrusted_key_reaches_the_server_app_with_its_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restarted: bool
) -> None:
    """The aggregator rotates its key without telling ds1, which refuses the next request.
    Serving since the first request, ds1 still holds the old key and seals its refusal
    to it (the aggregator keeps retired keys for such replies); restarted, it knows only
    the old fingerprint, so the refusal is plain text and flagged unauthenticated."""
    with quickstart_datasite(tmp_path, monkeypatch) as ds1:
        with aggregator(ds1.env) as agg:
            reply, _ = agg.train()
            assert reply.has_content(), reply.error  # ds1 now trusts the aggregator's key
        if restarted:
            ds1.kill()
        rotated = subprocess.run(
            [sys.executable, "-m", "syftflwr", "keys", "rotate", str(QUICKSTART), "--as", AGG,
             "--yes"],
            env=ds1.env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert rotated.returncode == 0, rotated.stdout + rotated.stderr
        if restarted:
            ds1.start()
        with aggregator(ds1.env) as agg:  # sends under the new key ds1 has not accepted
            reply, _ = agg.train()
    assert reply.has_error()
    reason = reply.error.reason
    print(reason)
    # ds1's own reason first (after the grid's "datasite X could not process"), not a
    # guess about the reply's form
    assert reason.startswith(
        f"datasite {DS1} could not process the message: refused: the key of {AGG} changed from"
    ), reason
    assert f"syftflwr keys trust {AGG}" in reason
    assert "encryption = false" not in reason and "forged" not in reason, reason
    assert ("unauthenticated" in reason) == restarted, reason
