"""A storage that blocks forever, under the aggregator's Grid: every call of a round
still returns within the round's timeout plus the grace a transport call gets (3 s),
and nothing of the run waits for the storage afterwards. Real mailbox roles over a real
local directory whose every call, once armed, blocks for good (a plugin's hung backend);
the process-level variant with a plugin is tests/test_sloppy_plugin.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from _mailbox_helpers import AGG, APP, DS1, DS2, Client, context
from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict
from syftflwr.envelope import Buffer
from syftflwr.flower.grid import TRANSPORT_GRACE, TransportGrid
from syftflwr.info import Capabilities
from syftflwr.mailbox import LocalDirStorage, MailboxRPC, Poller

TIMEOUT = 2.0


class Hanging(LocalDirStorage):
    armed = False

    def _hang(self) -> None:
        if self.armed:
            threading.Event().wait()

    def put_if_absent(self, path: str, parts: Sequence[Buffer]) -> bool:
        self._hang()
        return super().put_if_absent(path, parts)

    def get(self, path: str, *, max_size: int | None = None) -> Buffer | None:
        self._hang()
        return super().get(path, max_size=max_size)

    def list(self, folder: str) -> list[str]:
        self._hang()
        return super().list(folder)

    def delete(self, path: str) -> None:
        self._hang()
        super().delete(path)

    def read_head(self, path: str, size: int) -> Any:
        self._hang()
        return super().read_head(path, size)


def test_every_call_of_a_round_returns_in_time_when_the_storage_blocks(tmp_path: Path) -> None:
    storage = Hanging(tmp_path / "root")
    poller = Poller(storage, interval=0.05)
    caps = Capabilities(notifies_arrivals=False, poll_interval=0.05)
    rpc = MailboxRPC(Client(AGG), context(AGG, tmp_path / "state"), caps, storage=storage,
                     arrivals=poller, retention_interval=0)  # fmt: skip
    grid = TransportGrid(rpc, email=AGG, app_name=APP, datasites=[DS1, DS2], transport="hanging")
    content = RecordDict(
        {"arrays": ArrayRecord([np.zeros(3)]), "config": ConfigRecord({"server-round": 1})}
    )
    messages = [Message(content, node, "train", group_id="1") for node in grid.get_node_ids()]
    storage.armed = True  # from now on every storage call blocks for good
    bound = TIMEOUT + TRANSPORT_GRACE + 0.5  # what the round may take, scheduling included

    started = time.monotonic()
    replies = list(grid.send_and_receive(messages, timeout=TIMEOUT))
    assert time.monotonic() - started < bound
    assert len(replies) == 2 and all(r.has_error() for r in replies)
    assert all("did not return from sending in time" in (r.error.reason or "") for r in replies)
    assert {f.kind for f in grid.report.failures} == {"unsent"}

    started = time.monotonic()
    grid.stop_datasites(timeout=TIMEOUT)  # the stops: one bounded wait for all
    assert time.monotonic() - started < bound
    started = time.monotonic()
    grid.close()  # the housekeeping waits a bounded while for the storage, then goes on
    assert time.monotonic() - started < 10.0 + 1.0
