"""``syftflwr doctor``'s checks: validate the configuration and prove the selected
transport carries a message end to end (a request to this participant's own events
role and back, through the real storage).

Each check yields a :class:`Check`; a failing check names the fix, and the checks that
depend on it are reported as skipped rather than failing with confusing follow-ups.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from syftflwr.config import load_participant, load_project
from syftflwr.envelope import Request
from syftflwr.errors import SyftflwrError
from syftflwr.mailbox.journal import Journal
from syftflwr.session import Participant, connect, infer_identity

DOCTOR_ENDPOINT = "syftflwr-doctor"
Status = Literal["ok", "fail", "skip", "warn"]


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def loopback(participant: Participant, timeout: float) -> float:
    """Send a request to ourselves through the transport; return the round trip in s."""
    events = participant.events(serves_self=True)
    events.on_request(DOCTOR_ENDPOINT, lambda request: bytes(request.body)[::-1])
    server = threading.Thread(target=events.run_forever, name="syftflwr-doctor", daemon=True)
    server.start()
    rpc = participant.rpc()
    payload = os.urandom(1024)
    try:
        start = time.perf_counter()
        request = Request.new(
            sender=participant.email,
            recipient=participant.email,
            app=participant.context.app_name,
            endpoint=DOCTOR_ENDPOINT,
            body=payload,
            ttl=timeout,
        )
        handle = rpc.send(request)
        responses = rpc.wait([handle], timeout=timeout)
        elapsed = time.perf_counter() - start
        rpc.forget(handle)
    finally:
        events.stop()
        server.join(timeout=5)
    if not responses:
        raise TimeoutError(f"no response within {timeout:g}s")
    response = responses[0]
    if not response.ok:
        raise RuntimeError(f"error response: {response.error_text}")
    if bytes(response.body) != payload[::-1]:
        raise RuntimeError("response body differs from what was sent (corruption)")
    return elapsed


def run_checks(
    project_path: str | Path,
    *,
    email: str | None = None,
    transport: str | None = None,
    env: Mapping[str, str] = os.environ,
    timeout: float = 30.0,
) -> Iterator[Check]:
    try:
        project = load_project(project_path)
    except SyftflwrError as exc:
        yield Check("project config", "fail", str(exc))
        return
    if not project.configured:
        yield Check(
            "project config",
            "fail",
            f"{project.path} has no [tool.syftflwr] table\n  fix: syftflwr bootstrap "
            f"{project.root} --aggregator EMAIL --datasite EMAIL ...",
        )
        return
    yield Check(
        "project config",
        "ok",
        f"{project.path}: app {project.app_name!r}, aggregator {project.aggregator}, "
        f"{len(project.datasites)} datasites",
    )
    try:
        settings = load_participant(env)
    except SyftflwrError as exc:
        yield Check("participant settings", "fail", str(exc))
        return
    where = str(settings.path) if settings.exists else f"{settings.path} (absent: defaults)"
    yield Check("participant settings", "ok", where)
    try:
        email, found_by = infer_identity(project, email, env=env, participant=settings)
    except SyftflwrError as exc:
        yield Check("identity", "fail", str(exc))
        return
    try:
        participant = connect(
            project, email=email, transport=transport, env=env, participant=settings
        )
    except SyftflwrError as exc:
        yield Check("transport", "fail", str(exc))
        return
    with participant:
        entry = participant.transport.entry
        yield Check(
            "transport",
            "ok",
            f"{participant.transport.name} ({entry.distribution} {entry.version}), "
            f"selected by {participant.selected_by}",
        )
        yield Check(
            "identity",
            "ok",
            f"{participant.email} ({participant.role}, from {found_by}); transport reports "
            f"{participant.client.email}",
        )
        state = participant.context.state_dir
        if state is not None:
            probe = state / ".doctor-write-test"
            try:
                probe.write_bytes(b"ok")
                probe.unlink()
                yield Check("state directory", "ok", str(state))
            except OSError as exc:
                yield Check(
                    "state directory",
                    "fail",
                    f"{state} is not writable: {exc}\n  fix: set SYFTFLWR_STATE_DIR to a "
                    "writable directory",
                )
        yield from participant_checks(participant)
        try:
            elapsed = loopback(participant, timeout)
        except Exception as exc:
            yield Check(
                "round trip",
                "fail",
                f"a 1 KiB request to {participant.email} and back failed: {exc}\n"
                f"  mailbox: {participant.client.datasite_url(participant.email)}",
            )
            return
        yield Check(
            "round trip",
            "ok",
            f"1 KiB request and response through {participant.transport.name} in "
            f"{elapsed * 1000:.1f} ms ({participant.client.datasite_url(participant.email)})",
        )


def participant_checks(participant: Participant) -> Iterator[Check]:
    """Keys, the sender allowlist and the journal: what a runner will rely on."""
    yield keys_check(participant)
    context = participant.context
    if participant.role == "datasite":
        allow = f"accepts requests only from the aggregator {context.aggregator}"
    else:
        allow = (
            f"accepts replies only from the datasite each request went to "
            f"({len(context.datasites)} datasites: {', '.join(context.datasites)})"
        )
    yield Check("allowlist", "ok", f"{participant.email} {allow}; every other sender is refused")
    journal = Journal.for_context(context)
    try:
        health = journal.health()
    except SyftflwrError as exc:
        yield Check("journal", "fail", f"{exc}\n  fix: move the file away (it is rebuilt)")
        return
    finally:
        journal.close()
    if not health.ok:
        yield Check(
            "journal",
            "fail",
            f"{health.path} is damaged ({health.integrity})\n  fix: stop every runner of "
            "this participant and move the file away; requests it answered may be "
            "answered again (each reply is still matched by id, so none is applied twice)",
        )
        return
    yield Check("journal", "ok", f"{health.path or '(in memory)'}: {health.summary()}")


def keys_check(participant: Participant) -> Check:
    """Own key, and each peer's published key against what is pinned or trusted."""
    keyring = participant.keyring
    if keyring is None:
        if participant.encryption:  # the transport's client role says it encrypts
            return Check(
                "encryption",
                "ok",
                f"end to end by the {participant.transport.name} transport's own keys",
            )
        return Check(
            "encryption",
            "warn",
            "OFF (encryption = false): messages are stored and carried in plaintext; remove "
            "encryption = false from [tool.syftflwr] unless the storage is private",
        )
    from syftflwr.crypto.admin import LocalKeys, peer_statuses, published_keys

    assert participant.context.state_dir is not None  # a keyring needs one
    mine = LocalKeys.at(participant.project, participant.email, participant.context.state_dir)
    correspondents = participant.project.correspondents(participant.email)
    peers = peer_statuses(mine, published_keys(keyring, correspondents))
    lines = [f"own key {keyring.own.fingerprint} ({mine.store.current_path}, mode 0600)"]
    lines += [f"  {p.email}: {p.verdict} — {p.explanation}" for p in peers]
    bad = [p for p in peers if p.verdict in ("changed", "error")]
    waiting = [p for p in peers if p.verdict == "unpublished"]
    status: Status = "fail" if bad else "warn" if waiting else "ok"
    return Check("encryption", status, "\n".join(lines))
