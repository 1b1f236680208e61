"""Moving bytes: integrity (empty, binary, large — through core's chunking when the
transport has a ``max_object_size``), atomic visibility, concurrent senders, and a
datasite in another OS process."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from syftflwr.envelope import Response
from syftflwr.roles import RequestHandle
from syftflwr.testing.conformance._federation import (
    DS1,
    DS2,
    ENDPOINT,
    Federation,
    Recorder,
    effective_capabilities,
    payload,
)
from syftflwr.testing.conformance.base import LARGE_CHUNKED_CAP, ConformanceBase
from syftflwr.testing.datasite_process import DatasiteProcess, DatasiteSpec, reply_for

BODIES = {
    "empty": b"",
    "one-byte": b"\x00",
    "all-byte-values": bytes(range(256)) * 4,
    "not-utf8": b"\xff\xfe\xfd" + "é€𝄞".encode("utf-16"),
    "looks-like-an-envelope": b"SYFL\x01\x00\x00\x00\x02{}",
    "64KiB": payload(64 * 1024, seed=1),
}
DATASITE_CYCLE = (DS1, DS2)


class DeliveryConformance(ConformanceBase):
    """Bytes in == bytes out, whatever the size, the timing or the concurrency."""

    @pytest.mark.parametrize("kind", sorted(BODIES))
    def test_bytes_in_equal_bytes_out(self, federation: Federation, kind: str) -> None:
        recorder = Recorder()
        federation.serve(DS1, recorder)
        body = BODIES[kind]
        response = federation.roundtrip(DS1, body, headers={"x-conformance": kind})
        assert response.ok, response.error_text
        assert bytes(response.body) == body, f"the {kind} body came back altered"
        [seen] = recorder.requests
        assert bytes(seen.body) == body, f"the handler saw an altered {kind} body"
        assert seen.headers.get("x-conformance") == kind, "request headers were lost"

    def test_large_message_round_trip(self, federation: Federation) -> None:
        """Never skipped: a transport with ``max_object_size`` up to 16 MiB carries a
        message several times larger through core's chunking, both ways; one with a
        larger limit (or none) carries the 8 MiB default."""
        server = federation.serve(DS1, Recorder(lambda r: bytes(r.body)[::-1]))
        rpc = federation.rpc()
        caps = effective_capabilities(rpc, federation.transport)
        size = self.large_size(caps)
        limit = caps.max_object_size
        if limit is not None and limit <= LARGE_CHUNKED_CAP and self.large_message_size is None:
            assert size > limit, f"suite bug: large message {size} not above {limit}"
        body = payload(size, seed=7)
        response = federation.roundtrip(DS1, body, rpc=rpc)
        assert response.ok, response.error_text
        assert response.body_size == size
        assert bytes(response.body) == body[::-1], f"a {size:,}-byte message came back altered"
        seen = server.handlers[ENDPOINT]
        assert isinstance(seen, Recorder) and bytes(seen.requests[0].body) == body

    def test_no_partial_reads_while_large_messages_are_written(
        self, federation: Federation
    ) -> None:
        """A runner (and a fetch loop) reading while large objects are being written must
        never see half of one: no handler call with a torn body, no error reply."""
        caps = effective_capabilities(federation.rpc(), federation.transport)
        size = min(self.large_size(caps), 4 * 1024 * 1024)
        bodies = [payload(size, seed=100 + i) for i in range(3)]
        recorder = Recorder()
        federation.serve(DS1, recorder)  # serving BEFORE the writes start
        rpc = federation.rpc()
        handles: list[RequestHandle] = []
        torn: list[str] = []
        done = threading.Event()

        def hammer() -> None:  # a reader polling the responses while they are written
            while not done.is_set():
                for handle, body in zip(list(handles), bodies, strict=False):
                    response = rpc.fetch(handle)
                    if response is not None and (not response.ok or bytes(response.body) != body):
                        torn.append(f"{handle.id}: ok={response.ok} {response.body_size} bytes")

        reader = threading.Thread(target=hammer, daemon=True)
        reader.start()
        try:
            for body in bodies:
                handles.append(rpc.send(federation.request(DS1, body)))
            responses = federation.collect(rpc, handles)
        finally:
            done.set()
            reader.join(federation.timeout)
        assert set(responses) == {h.id for h in handles}
        for handle, body in zip(handles, bodies, strict=True):
            response = responses[handle.id]
            assert response.ok, f"error reply (a torn read?): {response.error_text}"
            assert bytes(response.body) == body
        assert not torn, f"fetch() returned partial or wrong responses: {torn}"
        assert sorted(bytes(r.body) for r in recorder.requests) == sorted(bodies)

    def test_concurrent_senders_each_get_their_own_answer(self, federation: Federation) -> None:
        federation.serve(DS1, Recorder(lambda r: b"1:" + bytes(r.body)))
        federation.serve(DS2, Recorder(lambda r: b"2:" + bytes(r.body)))
        rpc = federation.rpc()  # one RPC role shared by threads, as Flower's legacy API does

        def one(i: int) -> tuple[bytes, bytes]:
            recipient = DATASITE_CYCLE[i % 2]
            body = f"message-{i}".encode() + payload(i * 97, seed=i)
            handle = rpc.send(federation.request(recipient, body))
            response = federation.collect(rpc, [handle])[handle.id]
            expected = (b"1:" if recipient == DS1 else b"2:") + body
            return bytes(response.body), expected

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(one, range(40)))
        wrong = [i for i, (got, expected) in enumerate(results) if got != expected]
        assert not wrong, f"{len(wrong)} of {len(results)} concurrent requests got a wrong answer"

    def test_many_outstanding_requests_collected_by_one_wait_loop(
        self, federation: Federation
    ) -> None:
        federation.serve(DS1, Recorder())
        federation.serve(DS2, Recorder())
        rpc = federation.rpc()
        sent: dict[str, bytes] = {}
        handles = []
        for i in range(30):
            body = f"{i}".encode()
            handle = rpc.send(federation.request(DATASITE_CYCLE[i % 2], body))
            handles.append(handle)
            sent[handle.id] = body
        responses = federation.collect(rpc, handles)
        assert {i: bytes(r.body) for i, r in responses.items()} == sent

    def test_datasite_in_another_process(self, federation: Federation, tmp_path: Path) -> None:
        rpc = federation.rpc()
        caps = effective_capabilities(rpc, federation.transport)
        if caps.in_process_only:
            pytest.skip("the transport declares in_process_only")
        entry = federation.transport.entry
        spec = DatasiteSpec(entry.name, entry.target, federation.context(DS1), ENDPOINT)
        child = DatasiteProcess(spec, tmp_path, timeout=federation.timeout * 2)
        try:
            bodies = [b"", b"hello", payload(self.large_size(caps), seed=3)]
            handles = [rpc.send(federation.request(DS1, body)) for body in bodies]
            responses: dict[str, Response] = federation.collect(rpc, handles)
            assert set(responses) == {h.id for h in handles}, (
                f"the datasite in another process answered {len(responses)} of "
                f"{len(handles)} requests within {federation.timeout:g}s. If this transport "
                "(or this configuration of it) only connects participants of one process, "
                "declare Capabilities(in_process_only=True) on its roles.\n"
                f"datasite log:\n{child.log}"
            )
            for handle, body in zip(handles, bodies, strict=True):
                assert bytes(responses[handle.id].body) == reply_for(DS1, body)
        finally:
            code = child.stop(timeout=federation.timeout)
        assert code == 0, f"the datasite process did not stop cleanly (exit {code}):\n{child.log}"
