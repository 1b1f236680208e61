"""Shared model blobs end to end over the real memory transport: a TransportGrid pushing
one ArrayRecord to several datasites stores it once, real DatasiteRunners read it back.

Default settings (encryption on): participants are connected the way ``syftflwr run``
connects them, so the roles are core's sealed ones. The attacks are done the way a
co-recipient or the storage could do them: by rewriting what the broker stores.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

import numpy as np
import pytest
from _flower_helpers import AGG, APP, DS1, DS2, DS3
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from syftflwr.crypto.blob import _AAD as BLOB_AAD
from syftflwr.crypto.seal import encrypt_segments
from syftflwr.envelope import Request
from syftflwr.flower.blobs import BLOBS_HEADER, BLOBS_RECORD, parse_ref
from syftflwr.flower.grid import TransportGrid
from syftflwr.flower.node_ids import node_id_for
from syftflwr.flower.resume import RunTracker
from syftflwr.flower.run_journal import RunJournal
from syftflwr.flower.runner import DatasiteRunner
from syftflwr.flower.serde import array_record_parts, decode_message, encode_message
from syftflwr.names import new_message_id
from syftflwr.roles import BlobRef, ReadsBlobs
from syftflwr.session import Participant, connect
from syftflwr.transports import memory

PROJECT = f"""[project]
name = "blobs"

[tool.syftflwr]
app_name = "{APP}"
aggregator = "{AGG}"
datasites = ["{DS1}", "{DS2}", "{DS3}"]
transport = "memory"
"""
SIZE = 50_000  # float32 values: 200 kB of arrays
WAIT = 30.0


def model(value: float) -> ArrayRecord:
    return ArrayRecord({"w": Array(np.full(SIZE, value, dtype=np.float32)),
                        "b": Array(np.arange(7, dtype=np.int64))})  # fmt: skip


def summing_app(message: Message, context: Context) -> Message:
    """Replies with what it got: the sum of ``w``, the content's record names in order."""
    if "arrays" not in message.content:
        return Message(RecordDict(), reply_to=message)
    arrays = message.content["arrays"]
    assert isinstance(arrays, ArrayRecord)
    total = float(arrays["w"].numpy().sum()) + float(arrays["b"].numpy().sum())
    names = ",".join(message.content.keys())
    config = ConfigRecord({"names": names})
    return Message(RecordDict({"m": MetricRecord({"sum": total}), "seen": config}),
                   reply_to=message)  # fmt: skip


class Federation:
    """Sealed participants of one project on one memory namespace, runners in threads."""

    def __init__(self, root: Path, namespace: str) -> None:
        self.root, self.namespace = root, namespace
        project = root / "app"
        project.mkdir()
        (project / "pyproject.toml").write_text(PROJECT)
        self.project = project
        self.participants: dict[str, Participant] = {}
        self.runners: dict[str, DatasiteRunner] = {}
        self.threads: list[threading.Thread] = []
        self.grids: list[TransportGrid] = []
        self.posted: list[Request] = []
        broker = memory.broker(namespace)
        original = broker.post_request

        def post(request: Request) -> None:  # what storage sees: kept to replay it later
            self.posted.append(request)
            original(request)

        broker.post_request = post  # type: ignore[method-assign]

    def participant(self, email: str, **env: str) -> Participant:
        if email not in self.participants:
            self.participants[email] = connect(self.project, email=email, allow_in_process=True,
                                               env=self.env(email) | env)  # fmt: skip
        return self.participants[email]

    def env(self, email: str) -> dict[str, str]:
        return {
            "SYFTFLWR_STATE_DIR": str(self.root / "state" / email),
            "SYFTFLWR_MEMORY_NAMESPACE": self.namespace,
            "SYFTFLWR_HOME": str(self.root / "home"),
        }

    def serve(self, *emails: str, app: Callable[[Message, Context], Message] = summing_app) -> None:
        for email in emails:
            events = self.participant(email).events()
            runner = DatasiteRunner(events, app, email=email, node_id=node_id_for(email))
            thread = threading.Thread(target=runner.run, name=f"runner-{email}", daemon=True)
            thread.start()
            self.runners[email], self.threads = runner, [*self.threads, thread]

    def grid(self, threshold: int | None = 0, **kw: object) -> TransportGrid:
        grid = TransportGrid(self.participant(AGG).rpc(), email=AGG, app_name=APP,
                             datasites=(DS1, DS2, DS3), clock_skew=0.0, max_wait=WAIT,
                             blob_threshold=threshold, **kw)  # type: ignore[arg-type]  # fmt: skip
        self.grids.append(grid)
        return grid

    @property
    def blobs(self) -> dict[tuple[str, str, str], memory.StoredBlob]:
        return memory.broker(self.namespace).blobs

    def close(self) -> None:
        for grid in self.grids:
            grid.close()
        for runner in self.runners.values():
            runner.stop()
        for thread in self.threads:
            thread.join(10)
        for participant in self.participants.values():
            participant.close()


@pytest.fixture
def fed(tmp_path: Path, memory_namespace: str) -> Iterator[Federation]:
    federation = Federation(tmp_path, memory_namespace)
    yield federation
    federation.close()


def push(grid: TransportGrid, arrays: ArrayRecord, kind: str, server_round: int,
         to: tuple[str, ...] = (DS1, DS2, DS3)) -> list[Message]:  # fmt: skip
    content = RecordDict({"config": ConfigRecord({"server-round": server_round}),
                          "arrays": arrays})  # fmt: skip
    messages = [Message(content, node_id_for(e), kind) for e in to]
    return list(grid.send_and_receive(messages, timeout=WAIT))


def expected_sum(value: float) -> float:
    return value * SIZE + 21.0


def eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def tamper(fed: Federation, name: str, data: bytes) -> None:
    (key,) = [k for k in fed.blobs if k[2] == name]
    fed.blobs[key] = dataclasses.replace(fed.blobs[key], data=data)


def last_ref(fed: Federation, recipient: str) -> BlobRef:
    """What ``recipient`` learns from its latest message: the blob ref (it can open it)."""
    request = [r for r in fed.posted if r.recipient == recipient][-1]
    keyring = fed.participant(recipient).keyring
    opened = keyring.open(request) if keyring is not None else request
    record = decode_message(opened.body).content[BLOBS_RECORD]
    assert isinstance(record, ConfigRecord)
    return parse_ref(record["arrays"], "arrays").ref


# --------------------------------------------------------------------------- tests
def test_a_push_to_three_datasites_stores_the_arrays_once(fed: Federation) -> None:
    fed.serve(DS1, DS2, DS3)
    grid = fed.grid()
    replies = push(grid, model(1.5), "train", 1)
    assert sorted(r.content["m"]["sum"] for r in replies) == [expected_sum(1.5)] * 3
    # the ClientApp saw the records it was sent, in their order, without the reserved one
    assert {r.content["seen"]["names"] for r in replies} == {"config,arrays"}
    assert grid.blobs is not None and grid.blobs.stored == 1
    (blob,) = fed.blobs.values()
    plain_size = array_record_parts(model(1.5))[1]
    assert plain_size <= blob.data.__len__() <= plain_size + 64  # ciphertext: + tag
    assert np.full(8, 1.5, dtype=np.float32).tobytes() not in blob.data  # sealed
    requests = [r for r in fed.posted if r.endpoint == "messages"]
    assert len(requests) == 3 and all(r.body_size < 4096 for r in requests)
    assert all(r.headers[BLOBS_HEADER].startswith(next(iter(fed.blobs))[2]) for r in requests)


def test_below_the_threshold_or_off_every_message_carries_its_arrays(fed: Federation) -> None:
    fed.serve(DS1, DS2)
    size = array_record_parts(model(0.0))[1]
    for grid in (fed.grid(threshold=size + 1), fed.grid(threshold=None)):
        replies = push(grid, model(2.0), "train", 1, to=(DS1, DS2))
        assert [r.content["m"]["sum"] for r in replies] == [expected_sum(2.0)] * 2
        assert fed.blobs == {}
    assert all(r.body_size > size for r in fed.posted)


def test_evaluate_then_train_reuse_the_blob_and_an_unused_one_is_dropped(fed: Federation) -> None:
    fed.serve(DS1, DS2, DS3)
    grid = fed.grid()
    assert grid.blobs is not None
    first = model(1.0)
    push(grid, first, "evaluate", 1)
    replies = push(grid, first, "train", 2)  # the same ArrayRecord object: reused
    assert [r.content["m"]["sum"] for r in replies] == [expected_sum(1.0)] * 3
    assert grid.blobs.stored == 1 and len(fed.blobs) == 1
    (old,) = grid.blobs.held
    push(grid, model(3.0), "evaluate", 2)  # a new model: the old blob is no longer used
    assert grid.blobs.stored == 2
    eventually(lambda: all(k[2] != old.name for k in fed.blobs), "the unused blob was dropped")
    assert len(fed.blobs) == 1
    grid.close()
    eventually(lambda: not fed.blobs, "closing the grid drops the blobs it holds")


def test_a_push_without_arrays_does_not_end_the_reuse(fed: Federation) -> None:
    fed.serve(DS1, DS2, DS3)
    grid = fed.grid()
    arrays = model(1.0)
    push(grid, arrays, "evaluate", 1)
    query = [Message(RecordDict({"config": ConfigRecord({"q": 1})}), node_id_for(e), "query")
             for e in (DS1, DS2, DS3)]  # fmt: skip
    assert len(list(grid.send_and_receive(query, timeout=WAIT))) == 3
    push(grid, arrays, "train", 2)
    assert grid.blobs is not None and grid.blobs.stored == 1


def test_a_blob_is_kept_while_a_message_naming_it_waits(fed: Federation) -> None:
    fed.serve(DS1, DS2)  # DS3 is down: its instruction stays unanswered
    fed.participant(DS3)  # (its key is published)
    grid = fed.grid()
    content = RecordDict({"arrays": model(1.0)})
    ids = list(grid.push_messages([Message(content, node_id_for(e), "train")
                                   for e in (DS1, DS2, DS3)]))  # fmt: skip
    answered: set[str] = set()

    def two_answered() -> bool:  # (pulling an id again yields Flower's "unavailable")
        waiting = [i for i in ids if i not in answered]
        answered.update(r.metadata.reply_to_message_id for r in grid.pull_messages(waiting)
                        if not r.has_error())  # fmt: skip
        return len(answered) == 2

    eventually(two_answered, "DS1 and DS2 answered")
    push(grid, model(2.0), "evaluate", 1, to=(DS1, DS2))
    assert grid.blobs is not None and len(grid.blobs.held) == 2  # DS3's instruction names it
    fed.serve(DS3)  # it comes back within the TTL and can still use the model
    eventually(lambda: fed.runners[DS3].handled == 1, "the late datasite answered")
    assert fed.runners[DS3].stats.malformed == 0


def test_a_co_recipient_replacing_the_blob_under_its_key_is_refused(fed: Federation) -> None:
    fed.serve(DS1, DS2, DS3)
    grid = fed.grid()
    arrays = model(1.0)
    push(grid, arrays, "evaluate", 1)
    ref = last_ref(fed, DS1)  # DS1 knows K: it encrypts other arrays under it
    assert ref.key is not None
    plaintext = b"".join(bytes(p) for p in array_record_parts(model(9.0))[0])
    under_k = encrypt_segments(AESGCM(ref.key), plaintext, BLOB_AAD)
    tamper(fed, ref.name, under_k)
    replies = push(grid, arrays, "train", 2)  # reuses the blob DS1 replaced
    assert len(replies) == 3 and all(r.has_error() for r in replies)
    for reply in replies:
        assert f"blob {ref.name} from {AGG}" in reply.error.reason
        assert "SHA-256 differs" in reply.error.reason
    assert all(fed.runners[e].stats.malformed == 1 for e in (DS1, DS2, DS3))
    again = push(grid, model(1.0), "train", 3)  # the runners keep serving
    assert [r.content["m"]["sum"] for r in again] == [expected_sum(1.0)] * 3


def test_an_earlier_blob_put_back_or_a_flipped_byte_is_refused(fed: Federation) -> None:
    fed.serve(DS1, DS2, DS3)
    grid = fed.grid()
    push(grid, model(1.0), "train", 1)
    earlier = next(iter(fed.blobs.values())).data
    current = model(2.0)
    push(grid, current, "evaluate", 1)
    ref = last_ref(fed, DS1)
    tamper(fed, ref.name, earlier)  # round 1's blob put back under round 2's name
    replies = push(grid, current, "train", 2)
    assert all("SHA-256 differs" in r.error.reason for r in replies)
    newest = model(3.0)  # a fresh model, then one byte of its stored blob flipped
    push(grid, newest, "evaluate", 2)
    ref = last_ref(fed, DS2)
    data = bytearray(fed.blobs[(AGG, APP, ref.name)].data)
    data[len(data) // 2] ^= 1
    tamper(fed, ref.name, bytes(data))
    replies = push(grid, newest, "train", 3)
    assert all("SHA-256 differs" in r.error.reason for r in replies)


def test_a_message_of_round_r_replayed_in_round_r_plus_1_is_refused(
    fed: Federation, caplog: pytest.LogCaptureFixture
) -> None:
    fed.serve(DS1, DS2, DS3)
    grid = fed.grid()
    push(grid, model(1.0), "train", 1)
    old = [r for r in fed.posted if r.recipient == DS1][-1]
    push(grid, model(2.0), "train", 2)
    calls = fed.runners[DS1].handled
    memory.broker(fed.namespace).post_request(old)  # storage hands DS1 round 1 again
    # the memory transport keeps no record of answered ids (the mailbox does: see the
    # processes test); the round-1 blob was dropped once round 2 no longer used it
    eventually(lambda: fed.runners[DS1].stats.malformed == 1, "the replay was refused")
    assert fed.runners[DS1].handled == calls  # the ClientApp never saw it
    assert "is gone: it expired, or its sender dropped it" in caplog.text


def test_a_participant_outside_the_push_gets_nothing_it_can_use(fed: Federation) -> None:
    fed.serve(DS1, DS2, DS3)
    grid = fed.grid()
    push(grid, model(1.0), "train", 1, to=(DS1, DS2))
    assert fed.runners[DS3].handled == 0  # no message, so no ref and no key
    leaked = last_ref(fed, DS1)  # even with DS1's ref and key, storage refuses DS3
    reader = cast(ReadsBlobs, fed.participant(DS3).events())
    with pytest.raises(Exception, match=f"not shared with {DS3}"):
        reader.get_blob(leaked, sender=AGG, app=APP)
    # and what storage shows it is ciphertext: without the key nothing of the model
    (blob,) = fed.blobs.values()
    assert np.full(8, 1.0, dtype=np.float32).tobytes() not in blob.data


def test_a_user_record_with_the_reserved_name_is_refused(fed: Federation) -> None:
    grid = fed.grid()
    content = RecordDict({BLOBS_RECORD: ConfigRecord({"x": 1})})
    with pytest.raises(ValueError, match=f"{BLOBS_RECORD!r}, a name syftflwr reserves"):
        grid.push_messages([Message(content, node_id_for(DS1), "train")])
    assert fed.posted == []


def test_a_sealed_ref_reaching_a_plain_datasite_is_an_error_reply(
    tmp_path: Path, memory_namespace: str
) -> None:
    fed = Federation(tmp_path, memory_namespace)
    try:
        env = {"SYFTFLWR_ENCRYPTION": "0"}
        for email in (AGG, DS1):
            fed.participant(email, **env)
        fed.serve(DS1)
        grid = fed.grid()
        replies = push(grid, model(1.0), "train", 1, to=(DS1,))
        assert replies[0].content["m"]["sum"] == expected_sum(1.0)  # plain works
        request = [r for r in fed.posted if r.recipient == DS1][-1]
        message = decode_message(request.body)
        record = message.content[BLOBS_RECORD]
        doc = json.loads(cast(str, record["arrays"]))
        doc.update(key="a2V5" * 11, digest="0" * 64)  # as if sealed (the header still matches)
        record["arrays"] = json.dumps(doc)
        forged = dataclasses.replace(request, id=new_message_id(), body=encode_message(message))
        answer = fed.runners[DS1].handle(forged)
        reply = decode_message(cast(bytes, answer))
        assert "sealed, but encryption is off here" in reply.error.reason
        assert doc["name"] in reply.error.reason
        message.content["arrays"] = model(5.0)  # a record both inline and as a blob
        twice = dataclasses.replace(request, id=new_message_id(), body=encode_message(message))
        reply = decode_message(cast(bytes, fed.runners[DS1].handle(twice)))
        assert "'arrays' is both in the message and in a shared blob" in reply.error.reason
    finally:
        fed.close()


def test_a_body_whose_refs_differ_from_the_authenticated_header_is_refused(
    fed: Federation,
) -> None:
    fed.serve(DS1)
    grid = fed.grid()
    push(grid, model(1.0), "train", 1, to=(DS1,))
    request = [r for r in fed.posted if r.recipient == DS1][-1]
    forged = dataclasses.replace(request, headers={**request.headers, BLOBS_HEADER: "x:y"})
    memory.broker(fed.namespace).post_request(forged)  # the seal's associated data differs
    eventually(lambda: sum(fed.runners[DS1].stats.refused.values()) == 1, "refused")
    assert fed.runners[DS1].handled == 1


def test_the_run_journal_keeps_the_blobs_a_resumed_run_still_needs(
    fed: Federation, tmp_path: Path
) -> None:
    fed.serve(DS1, DS2)  # DS3 down: its instruction stays pending over the restart
    fed.participant(DS3)
    journal = RunJournal.in_state_dir(tmp_path / "journal")
    run = journal.start(7, seed=1, config_hash="h")
    grid = fed.grid(tracker=RunTracker(journal, run))
    grid.max_wait = 1.0
    push(grid, model(1.0), "train", 1)
    (ref,) = grid.blobs.held if grid.blobs else ()
    grid.close(forget=False)  # interrupted: kept for --resume
    assert [b.name for b, _ in journal.blobs(7)] == [ref.name]
    (_, ids) = journal.blobs(7)[0]
    assert len(ids) == 3
    assert any(k[2] == ref.name for k in fed.blobs)  # still stored
    resumed = fed.grid(tracker=RunTracker(journal, journal.reopen(7), replay=True))
    assert resumed.blobs is not None and [b.name for b in resumed.blobs.held] == [ref.name]
    resumed.close()
    eventually(lambda: not fed.blobs, "the resumed run dropped it when it closed")
    eventually(lambda: journal.blobs(7) == [], "and the journal says so")
    journal.close()


def test_the_launch_decides_once_whether_blobs_are_used(fed: Federation) -> None:
    from types import SimpleNamespace

    from syftflwr.flower.launch import BROADCAST_SHARED, broadcast_mode

    aggregator = fed.participant(AGG, SYFTFLWR_BLOB_THRESHOLD="4KiB")
    assert broadcast_mode(aggregator) == (  # memory shares objects
        4096,
        "models of 4 KiB or more sent once per phase (shared blob)",
    )

    def like(shares: bool, profile: str) -> object:  # what the decision reads, nothing else
        return SimpleNamespace(
            transport=SimpleNamespace(name="tinydir"),
            context=SimpleNamespace(profile=profile),
            capabilities=SimpleNamespace(shares_objects=shares),
            project=SimpleNamespace(blob_threshold=0),
        )

    plain = broadcast_mode(like(False, "native"))  # type: ignore[arg-type]
    assert plain == (None, "one copy per datasite: tinydir cannot share objects")
    upstream = broadcast_mode(like(True, "syft-flwr-0.5"))  # type: ignore[arg-type]
    assert upstream == (None, "one copy per datasite: the syft-flwr-0.5 profile does not "
                        "share objects")  # fmt: skip
    assert broadcast_mode(like(True, "native")) == (0, BROADCAST_SHARED)  # type: ignore[arg-type]
