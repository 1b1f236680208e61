"""Two ClientApps of one process read arrays at once (``simulate --threads``, one
``serve`` for several datasites): on CPython 3.11 before 3.11.8 numpy's header parse
(``ast.literal_eval``) failed at random with "SystemError: AST constructor recursion
depth mismatch" (gh-106905), and the round got an error reply. Seen in CI as a failed
conformance training; :mod:`syftflwr.flower.ast_lock` serializes the parse there.

The federation runs in a child process: the race needs a tiny thread switch interval,
and the lock is process-wide."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from syftflwr.flower.ast_lock import affected

FEDERATION = textwrap.dedent(
    """
    import json, sys
    sys.setswitchinterval(1e-6)  # threads switch often: the race shows within a second
    from flwr.app import Array, ArrayRecord, ConfigRecord, Message, RecordDict
    import numpy as np
    from _flower_helpers import AGG, APP, DS1, DS2, MemoryFederation
    from syftflwr.flower import runner as runner_module
    from syftflwr.flower.grid import TransportGrid
    from syftflwr.flower.node_ids import node_id_for

    if sys.argv[1] == "unguarded":  # the control: what a runner did before the lock
        runner_module.serialize_ast_parse = lambda: False

    class Garbage:  # cyclic garbage with a finalizer: collections run Python code
        def __del__(self):
            [i for i in range(100)]

    def read_arrays(message, context):
        arrays = message.content["arrays"]
        for _ in range(400):
            junk = Garbage(); junk.me = junk
            total = sum(float(a.numpy().sum()) for a in arrays.values())
        content = RecordDict({"m": ConfigRecord({"total": total})})
        return Message(content, reply_to=message)

    fed = MemoryFederation(namespace="astlock", datasites=(DS1, DS2))
    for email in (DS1, DS2):
        runner = runner_module.DatasiteRunner(
            fed.events_for(email), read_arrays, email=email, node_id=node_id_for(email))
        fed.start(runner.run, email)
    grid = fed.keep(TransportGrid(fed.rpc, email=AGG, app_name=APP, datasites=[DS1, DS2]))
    arrays = ArrayRecord({f"w{i}": Array(np.ones(4, dtype=np.float32)) for i in range(4)})
    errors = []
    for server_round in range(1, 4):
        content = RecordDict({"arrays": arrays,
                              "config": ConfigRecord({"server-round": server_round})})
        messages = [Message(content, node_id_for(e), "train") for e in (DS1, DS2)]
        for reply in grid.send_and_receive(messages, timeout=120):
            if reply.has_error():
                errors.append(reply.error.reason.splitlines()[0])
    grid.stop_datasites(timeout=10)
    fed.close()
    print(json.dumps(errors))
    """
)


def _errors(mode: str) -> list[str]:
    path = os.pathsep.join([str(Path(__file__).parent), *sys.path])
    env = dict(os.environ, PYTHONPATH=path, FLWR_TELEMETRY_ENABLED="0")
    done = subprocess.run([sys.executable, "-c", FEDERATION, mode], env=env, check=False,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


def test_two_datasites_of_one_process_read_arrays_at_once() -> None:
    assert _errors("guarded") == []


@pytest.mark.skipif(not affected(), reason="this interpreter's ast.parse is thread-safe")
def test_the_control_without_the_lock_shows_the_race() -> None:
    """On an affected interpreter the same federation without the lock fails: the
    test above exercises the race, it does not pass by luck."""
    for _ in range(20):  # a race: alone it shows in every federation, on a loaded
        errors = _errors("unguarded")  # machine in about one of three (~1.5 s each)
        if errors:
            break
    assert errors and all("AST constructor recursion depth mismatch" in e for e in errors)


@pytest.mark.parametrize(
    ("version", "expected"),
    [((3, 11, 7), True), ((3, 11, 8), False), ((3, 11, 0), True), ((3, 12, 1), False),
     ((3, 13, 0), False), ((3, 10, 13), False)],
)  # fmt: skip
def test_only_the_versions_with_the_bug_are_affected(
    version: tuple[int, int, int], expected: bool
) -> None:
    assert affected(version) is expected
