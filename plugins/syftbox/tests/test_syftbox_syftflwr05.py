"""The ``syft-flwr-0.5`` wire profile on syftbox, through the real syft-rpc and
syft-event: a syftflwr aggregator trains with a STAND-IN syft-flwr 0.5 datasite
(``_sb_syftflwr05_datasite.py``: syft-event's ``SyftEvents`` on ``messages``, Flower
protobuf bodies) and with syftflwr's own datasite runner, each in its own process on one
shared SyftBox data dir; and the libraries' holes stay closed: a bad request file never
stops serving, a dead watcher is restarted, replies are written only in the datasite's
own rpc folder for the validated sender, two runners handle a request once. Encrypted
(the default, as upstream on SyftBox): requests sealed with the real syft-crypto the way
syft-flwr 0.5 does (the stand-in's syft-event decrypts them), replies opened the same way,
no Flower payload in plaintext on disk; a missing DID, a plaintext or a tampered reply is
refused, never handed on."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from _sb_helpers import plaintext_layers, write_config
from syftflwr.envelope import Request
from syftflwr.info import TransportContext
from syftflwr.roles import RequestHandle
from syftflwr_syftbox import plugin
from syftflwr_syftbox.keys import MissingPeerKeysError
from syftflwr_syftbox.syftflwr05 import SyftEvents05, SyftRpc05, rpc_folder

HERE = Path(__file__).parent
QUICKSTART = HERE.parents[2] / "examples" / "quickstart"
AGG = "aggregator@openmined.org"
DATASITES = ("ds1@openmined.org", "ds2@openmined.org")
APP = f"{AGG}_syftflwr-quickstart_{int(time.time())}"
"""The app name syft-flwr 0.5's ``bootstrap`` writes: ``{aggregator}_{[project].name}_{unix
time}`` (what the stand-in syft-flwr datasite and its peers have in their pyproject.toml)."""
PROFILE = "syft-flwr-0.5"


def files_under(root: Path) -> set[Path]:
    return {Path(d) / n for d, _, names in os.walk(root) for n in names}


# --------------------------------------------------------------------------- training
def project_with_profile(tmp_path: Path, *, encrypt: bool = False) -> Path:
    project = tmp_path / "project"
    shutil.copytree(QUICKSTART, project, ignore=shutil.ignore_patterns("__pycache__"))
    pyproject = project / "pyproject.toml"
    text = re.sub(r"^datasites = .*$", f"datasites = {json.dumps(list(DATASITES))}",
                  pyproject.read_text(), flags=re.M)  # fmt: skip
    text = text.replace(
        'app_name = "quickstart"',
        f'app_name = "{APP}"\nprofile = "{PROFILE}"\n'
        # encrypted: core's encryption stays on (its default); the transport's carries it
        + ("" if encrypt else "encryption = false\n")
        + 'transport = "syftbox"',
    )
    # what syft-flwr 0.5's bootstrap adds, read by the stand-in syft-flwr datasite
    text += (f'\n[tool.syft_flwr]\napp_name = "{APP}"\naggregator = "{AGG}"\n'
             f'datasites = {json.dumps(list(DATASITES))}\ntransport = "syftbox"\n')  # fmt: skip
    pyproject.write_text(text)
    return project


NUMPY = b"\x93NUMPY"  # the start of every array Flower carries (np.save)


def message_files(data_dir: Path) -> list[Path]:
    return [p for p in data_dir.glob("datasites/*/app_data/flwr/**/*")
            if p.suffix in (".request", ".response")]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("encrypt", [False, True], ids=["plaintext", "encrypted"])
def test_aggregator_trains_with_a_syftflwr05_datasite_and_a_syftflwr_runner(
    tmp_path: Path, encrypt: bool
) -> None:
    data_dir = tmp_path / "SyftBox"
    project = project_with_profile(tmp_path, encrypt=encrypt)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYFTFLWR_", "SYFTBOX_"))}
    env.update(
        FLWR_TELEMETRY_ENABLED="0",
        SYFTFLWR_HOME=str(tmp_path / "home"),
        SYFTFLWR_SYFTBOX_ENCRYPT=str(encrypt).lower(),
    )
    configs = {e: write_config(tmp_path / "configs", e, data_dir) for e in (AGG, *DATASITES)}
    standin_config = {
        "config_path": str(configs[DATASITES[0]]),
        "project": str(project),
        "partition_id": 0,
        "num_partitions": 2,
        "encrypt": encrypt,
    }
    standin = subprocess.Popen(
        [sys.executable, str(HERE / "_sb_syftflwr05_datasite.py"), json.dumps(standin_config)],
        stdout=subprocess.PIPE, stderr=(tmp_path / "standin.log").open("wb"), text=True,
        env=env,
    )  # fmt: skip
    runner_log = (tmp_path / "runner.log").open("wb")
    runner = subprocess.Popen(
        [sys.executable, "-m", "syftflwr", "run", str(project), "--as", DATASITES[1],
         "--node-config", "partition-id=1", "--node-config", "num-partitions=2"],
        env={**env, "SYFTBOX_CLIENT_CONFIG_PATH": str(configs[DATASITES[1]])},
        stdout=runner_log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        assert standin.stdout is not None and standin.stdout.readline().strip() == "ready"
        result_file = tmp_path / "result.json"
        agg = subprocess.run(
            [sys.executable, "-m", "syftflwr", "run", str(project), "--as", AGG, "--rounds",
             "2", "--result-file", str(result_file)],
            env={**env, "SYFTBOX_CLIENT_CONFIG_PATH": str(configs[AGG])},
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        logs = (tmp_path / "runner.log").read_text() + (tmp_path / "standin.log").read_text()
        assert agg.returncode == 0, agg.stdout + agg.stderr + logs
        result = json.loads(result_file.read_text())
        assert result["transport"] == "syftbox"
        assert [r["round"] for r in result["rounds"] if r["round"]] == [1, 2]
        assert result["failures"] == [], result
        assert float(result["final_metrics"]["accuracy"]) >= 0.9
        output, _ = standin.communicate(timeout=30)
        assert standin.returncode == 0, output
        assert output.count("answered") == 4 and "stopped" in output, output  # 2 x (train+eval)
        assert runner.wait(timeout=30) == 0, (tmp_path / "runner.log").read_text()
    finally:
        for proc in (standin, runner):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    # the requests went where syft-rpc puts them, in the syft-rpc JSON format
    answered = list(data_dir.glob(f"datasites/{DATASITES[0]}/app_data/flwr/{APP}/rpc/messages/"
                                  f"{AGG}/*.response"))  # fmt: skip
    assert answered, files_under(data_dir)
    assert json.loads(answered[0].read_text())["sender"] == DATASITES[0]
    # what is on disk: Flower's arrays in plaintext unless encrypted (the scan can fail)
    files = message_files(data_dir)
    assert len(files) >= 4, files
    exposed = [
        p for p in files if any(NUMPY in layer for layer in plaintext_layers(p.read_bytes()))
    ]
    if not encrypt:
        assert exposed, "the scan finds no plaintext array even unencrypted"
        return
    assert exposed == []
    from syft_crypto import EncryptedPayload

    for path in files:
        body = json.loads(path.read_bytes())["body"]
        if body:  # the stop message's reply has none
            payload = EncryptedPayload.model_validate_json(base64.urlsafe_b64decode(body))
            assert {payload.sender, payload.receiver} <= {AGG, *DATASITES}


# --------------------------------------------------------------------------- guards
def context_for(tmp_path: Path, email: str, **options: object) -> TransportContext:
    config = write_config(tmp_path / "configs", email, tmp_path / "SyftBox")
    return TransportContext(
        transport="syftbox",
        app_name=APP,
        email=email,
        options={"encrypt": False, "config_path": str(config), **options},
        state_dir=tmp_path / "state" / email,
        profile=PROFILE,
        aggregator=AGG,
        datasites=DATASITES,
    )


class Served:
    """A datasite's events role serving an echo handler in a thread."""

    def __init__(self, tmp_path: Path, email: str = DATASITES[0], **options: object) -> None:
        context = context_for(tmp_path, email, **options)
        self.client = plugin.syftflwr_make_client(context)
        self.events = plugin.syftflwr_make_events(self.client, context)
        assert isinstance(self.events, SyftEvents05)
        self.calls: list[str] = []
        self.lock = threading.Lock()
        self.events.on_request("messages", self.handle)
        self.thread = threading.Thread(target=self.events.run_forever, daemon=True)
        self.thread.start()

    def handle(self, request: Request) -> bytes:
        with self.lock:
            self.calls.append(request.id)
        return b"echo:" + bytes(memoryview(request.body))

    def close(self) -> None:
        self.events.stop()
        self.thread.join(timeout=10)
        self.events.close()
        self.client.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    s = Served(tmp_path)
    yield s
    s.close()


@pytest.fixture
def rpc(tmp_path: Path) -> Iterator[SyftRpc05]:
    context = context_for(tmp_path, AGG)
    client = plugin.syftflwr_make_client(context)
    role = plugin.syftflwr_make_rpc(client, context)
    assert isinstance(role, SyftRpc05)
    yield role
    role.close()
    client.close()


def round_trip(rpc: SyftRpc05, body: bytes = b"hello", timeout: float = 10) -> bytes:
    request = Request(id=uuid.uuid4().hex, sender=AGG, recipient=DATASITES[0], app=APP,
                      endpoint="messages", body=body, created_at=time.time(),
                      expires_at=time.time() + 60)  # fmt: skip
    handle = rpc.send(request)
    responses = rpc.wait([handle], timeout=timeout)
    assert responses, "no reply"
    assert responses[0].ok, responses[0].error_text
    rpc.forget(handle)
    return bytes(memoryview(responses[0].body))


def inbox(tmp_path: Path, sender: str = AGG) -> Path:
    folder = tmp_path / "SyftBox" / rpc_folder(DATASITES[0], APP, sender)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def syft_request_json(sender: str, url: str, rid: str | None = None) -> str:
    now = datetime.now(UTC)
    return json.dumps({
        "id": rid or str(uuid.uuid4()), "sender": sender, "url": url, "body": None,
        "headers": {}, "created": now.isoformat(),
        "expires": (now + timedelta(minutes=5)).isoformat(), "method": "GET",
    })  # fmt: skip


def test_the_request_is_syft_rpc_json_read_by_the_real_library(
    tmp_path: Path, rpc: SyftRpc05, served: Served
) -> None:
    from syft_rpc.protocol import SyftRequest, SyftResponse

    assert round_trip(rpc, b"\x00\x01binary") == b"echo:\x00\x01binary"
    # a request left in place: syft-rpc's own loader reads it, and the reply
    request = Request(id=uuid.uuid4().hex, sender=AGG, recipient=DATASITES[0], app=APP,
                      endpoint="messages", body=b"x", created_at=time.time())  # fmt: skip
    handle = rpc.send(request)
    assert rpc.wait([handle], timeout=10)
    folder = inbox(tmp_path)
    loaded = SyftRequest.load(folder / f"{uuid.UUID(request.id)}.request")
    assert loaded.body == b"x" and loaded.sender == AGG
    assert str(loaded.url) == f"syft://{DATASITES[0]}/app_data/flwr/{APP}/rpc/messages"
    reply = SyftResponse.load(folder / f"{uuid.UUID(request.id)}.response")
    assert reply.body == b"echo:x" and reply.sender == DATASITES[0] and reply.is_success


def test_bad_request_files_never_stop_serving(
    tmp_path: Path, rpc: SyftRpc05, served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    folder = inbox(tmp_path)
    (folder / "not-a-uuid.request").write_text("{}")
    (folder / "\x1b[2J.request").write_text("{}")  # a terminal escape in a name
    (folder / "deeper").mkdir()
    (folder / "deeper" / f"{uuid.uuid4()}.request").write_text("{}")
    os.close(os.open(os.fsencode(folder) + b"/\xff\xfe.request", os.O_CREAT | os.O_WRONLY))
    garbage = folder / f"{uuid.uuid4()}.request"
    garbage.write_bytes(b"\x00 not json at all")
    half_id = str(uuid.uuid4())
    half = folder / f"{half_id}.request"
    half_text = syft_request_json(AGG, f"syft://{DATASITES[0]}/app_data/flwr/{APP}/rpc/messages",
                                  half_id)  # fmt: skip
    half.write_text(half_text[:40])
    stranger = inbox(tmp_path, "mallory@evil.org")
    (stranger / f"{uuid.uuid4()}.request").write_text("{}")
    assert round_trip(rpc) == b"echo:hello"
    assert served.events.watcher_alive()
    # garbage from an allowed sender is answered 400 in place; the rest gets nothing
    deadline = time.monotonic() + 5
    while not garbage.with_suffix(".response").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert json.loads(garbage.with_suffix(".response").read_text())["status_code"] == 400
    assert not half.with_suffix(".response").exists()  # still being written: waited for
    assert not list(stranger.glob("*.response"))
    assert len(served.calls) == 1
    with half.open("a") as rest:  # its writer finishes it in place: now it is served
        rest.write(half_text[40:])
    deadline = time.monotonic() + 5
    while not half.with_suffix(".response").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert json.loads(half.with_suffix(".response").read_text())["status_code"] == 200
    assert served.calls[1] == uuid.UUID(half_id).hex
    # hostile names are shown escaped: no raw escape sequence, no undecodable bytes
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("syftflwr")]
    assert any("not-a-uuid.request" in message for message in ours), ours
    for message in ours:
        message.encode("utf-8")  # a lone surrogate (from b"\xff\xfe") raises here
        assert "\x1b" not in message, message


def test_a_request_cut_short_before_a_restart_gets_its_grace_again(tmp_path: Path) -> None:
    """The role may be run again after ``stop()``, and that run starts from what storage
    says (core's rule for every events role): a request seen half-written in the
    earlier run, its grace long over by now, is waited for again, not refused at once."""
    served = Served(tmp_path, incomplete_grace=5.0)
    half_id = str(uuid.uuid4())
    half = inbox(tmp_path) / f"{half_id}.request"
    text = syft_request_json(AGG, f"syft://{DATASITES[0]}/app_data/flwr/{APP}/rpc/messages",
                             half_id)  # fmt: skip
    try:
        half.write_text(text[:40])  # its writer is still at it (syft-rpc writes in place)
        time.sleep(1.5)  # seen: at once by the watcher, and by the rescan a second later
        served.events.stop()
        served.thread.join(timeout=10)
        time.sleep(5.5)  # the datasite was down longer than the grace
        served.thread = threading.Thread(target=served.events.run_forever, daemon=True)
        served.thread.start()
        time.sleep(1.0)  # the new run has read it (its grace: 4 s left for the writer)
        assert not half.with_suffix(".response").exists(), (
            "refused on restart without a grace: " + half.with_suffix(".response").read_text()
        )
        with half.open("a") as rest:  # the writer finishes
            rest.write(text[40:])
        _wait_for("the reply", half.with_suffix(".response").exists, timeout=10)
        assert json.loads(half.with_suffix(".response").read_text())["status_code"] == 200
        assert served.calls == [uuid.UUID(half_id).hex]
    finally:
        served.close()


def test_a_request_still_cut_short_when_its_grace_ends_is_refused_then(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The grace is kept on the role's own schedule (core's re-checks), not by whatever
    re-reads the file next: with the safety-net rescan out of the way and a writer that
    stalls (no further event), the request is still answered 400 once its grace is over."""
    from syftflwr_syftbox import syftflwr05

    monkeypatch.setattr(syftflwr05, "RESCAN_INTERVAL", 3600.0)
    served = Served(tmp_path, incomplete_grace=1.0)
    stalled = inbox(tmp_path) / f"{uuid.uuid4()}.request"
    url = f"syft://{DATASITES[0]}/app_data/flwr/{APP}/rpc/messages"
    try:
        stalled.write_text(syft_request_json(AGG, url, stalled.stem)[:40])
        _wait_for("the 400", stalled.with_suffix(".response").exists, timeout=15)
        assert json.loads(stalled.with_suffix(".response").read_text())["status_code"] == 400
        assert served.calls == []
    finally:
        served.close()


def test_a_claim_left_by_a_dead_runner_is_taken_over(
    tmp_path: Path, rpc: SyftRpc05, served: Served
) -> None:
    import socket

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    request = Request(id=uuid.uuid4().hex, sender=AGG, recipient=DATASITES[0], app=APP,
                      endpoint="messages", body=b"late", created_at=time.time())  # fmt: skip
    claim = (tmp_path / "SyftBox" / ".syftflwr" / "claims" / DATASITES[0] / "flwr" / APP / AGG
             / str(uuid.UUID(request.id)))  # fmt: skip
    claim.parent.mkdir(parents=True)
    # claimed by a runner of this datasite's journal (core's marker), which then died
    journal_id = served.events.journal.instance_id
    marker = f"{socket.gethostname()}|{dead}|{uuid.uuid4().hex}|{journal_id}"
    claim.write_text(marker)
    (responses,) = [rpc.wait([rpc.send(request)], timeout=10)]
    assert responses and bytes(memoryview(responses[0].body)) == b"echo:late"
    assert claim.read_text() == served.events.claims.owner


def test_the_claims_of_answered_and_forgotten_requests_are_swept(
    tmp_path: Path, rpc: SyftRpc05, monkeypatch: pytest.MonkeyPatch
) -> None:
    from syftflwr_syftbox import syftflwr05

    monkeypatch.setattr(syftflwr05, "SWEEP_INTERVAL", 0.0)  # every scan (1 s) sweeps
    served = Served(tmp_path)
    try:
        request = Request(id=uuid.uuid4().hex, sender=AGG, recipient=DATASITES[0], app=APP,
                          endpoint="messages", body=b"x", created_at=time.time())  # fmt: skip
        handle = rpc.send(request)
        assert rpc.wait([handle], timeout=10)
        stem = str(uuid.UUID(request.id))
        claim = (tmp_path / "SyftBox" / ".syftflwr" / "claims" / DATASITES[0] / "flwr" / APP
                 / AGG / stem)  # fmt: skip
        # The reply can reach the requester a moment before the runner journals it answered.
        _wait_for("the answer journaled", lambda: getattr(
            served.events.journal.state_of(stem), "finished", False), timeout=10)  # fmt: skip
        entry = served.events.journal.state_of(stem)
        assert claim.exists() and entry is not None and entry.finished and not entry.cleaned
        rpc.forget(handle)  # the requester removes its request, as syft-rpc's does
        _wait_for("the sweep", lambda: not claim.exists(), timeout=15)
        entry = served.events.journal.state_of(stem)
        assert entry is not None and entry.cleaned  # pruned a day later
        assert served.calls == [request.id]
    finally:
        served.close()


def test_a_dead_watcher_is_restarted(tmp_path: Path, rpc: SyftRpc05, served: Served) -> None:
    assert round_trip(rpc) == b"echo:hello"
    served.events.box.obs.stop()  # as if a bad event had killed its thread
    served.events.box.obs.join(timeout=5)
    assert round_trip(rpc, b"again", timeout=15) == b"echo:again"
    assert served.events.watcher_restarts == 1


def test_replies_only_in_the_own_rpc_folder_for_the_validated_sender(
    tmp_path: Path, rpc: SyftRpc05, served: Served
) -> None:
    data_dir = tmp_path / "SyftBox"
    outside = tmp_path / "outside"
    outside.mkdir()
    folder = inbox(tmp_path)
    before = files_under(data_dir)
    crafted = {
        # sender names another folder: syft-rpc's reply_to would write under it
        "foreign": syft_request_json("../../../../outside", f"syft://{DATASITES[0]}/app_data/"
                                     f"flwr/{APP}/rpc/messages"),
        # url points at another datasite: syft-rpc would reply there
        "other-site": syft_request_json(AGG, f"syft://{DATASITES[1]}/app_data/flwr/{APP}/rpc/"
                                        "messages"),
        "traversal": syft_request_json(AGG, f"syft://{DATASITES[0]}/app_data/flwr/{APP}/rpc/"
                                       "../../../../../outside"),
    }  # fmt: skip
    planted = set()
    for text in crafted.values():
        path = folder / f"{uuid.uuid4()}.request"
        path.write_text(text)
        planted.add(path)
    # a sender folder that is a symlink out of the data dir is never followed
    (data_dir / rpc_folder(DATASITES[0], APP, DATASITES[1])).symlink_to(outside)
    (outside / f"{uuid.uuid4()}.request").write_text(
        syft_request_json(DATASITES[1], f"syft://{DATASITES[0]}/app_data/flwr/{APP}/rpc/messages")
    )
    assert round_trip(rpc) == b"echo:hello"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not all(
        p.with_suffix(".response").exists() for p in planted
    ):
        time.sleep(0.05)
    for path in planted:  # refused, answered 400 next to the request: nothing else
        assert json.loads(path.with_suffix(".response").read_text())["status_code"] == 400
    new = files_under(data_dir) - before - planted
    own = data_dir / rpc_folder(DATASITES[0], APP, AGG)
    local = data_dir / ".syftflwr"
    perms = own.parents[1] / "syft.pub.yaml"  # syft-event's, written when serving starts
    for path in new:
        assert path.is_relative_to(own) or path.is_relative_to(local) or path == perms, path
    assert not list(outside.glob("*.response"))
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".response"]
    assert len(served.calls) == 1


def test_two_runners_on_one_datasite_handle_each_request_once(
    tmp_path: Path, rpc: SyftRpc05
) -> None:
    first, second = Served(tmp_path), Served(tmp_path)
    try:
        requests = [
            Request(id=uuid.uuid4().hex, sender=AGG, recipient=DATASITES[0], app=APP,
                    endpoint="messages", body=str(i).encode(), created_at=time.time())
            for i in range(20)
        ]  # fmt: skip
        handles = [rpc.send(r) for r in requests]
        pending, got = list(handles), 0
        deadline = time.monotonic() + 30
        while pending and time.monotonic() < deadline:
            responses = rpc.wait(pending, timeout=5)
            done = {r.id for r in responses}
            got += len(done)
            pending = [h for h in pending if h.id not in done]
        assert not pending
        calls = first.calls + second.calls
        assert sorted(calls) == sorted(r.id for r in requests)  # each exactly once
    finally:
        first.close()
        second.close()


def _runner(config: dict[str, Any]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(HERE / "_sb_syftflwr05_runner.py"), json.dumps(config)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip


def _wait_for(what: str, check: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_three_runners_take_over_a_dead_runners_request_exactly_once(
    tmp_path: Path, sealed_rpc: SyftRpc05
) -> None:
    """A runner is killed -9 inside its handler; three runners of the same datasite then
    start at once, each finding the dead runner's claim: exactly one takes the request
    over, and the requester gets one reply. Every claim-marker read takes 0.5 s in the
    three (a loaded machine), so all three see the dead claim before any has taken it."""
    context = context_for(tmp_path, DATASITES[0], encrypt=True)
    fields = {
        "transport": context.transport, "app_name": context.app_name, "email": context.email,
        "options": dict(context.options), "state_dir": str(context.state_dir),
        "profile": context.profile, "aggregator": context.aggregator,
        "datasites": list(context.datasites),
    }  # fmt: skip
    calls = tmp_path / "calls"
    calls.mkdir()
    go = tmp_path / "go"
    procs = [_runner({"context": fields, "calls": str(calls), "block": True})]
    try:
        assert procs[0].stdout is not None and procs[0].stdout.readline().strip() == "ready"
        handle, _ = send_to(sealed_rpc, DATASITES[0], b"once")
        _wait_for("the first runner's handler", lambda: any(calls.iterdir()))
        procs[0].kill()  # mid-request: its claim stays, its reply never comes
        procs[0].wait(timeout=10)
        config = {"context": fields, "calls": str(calls), "go": str(go), "slow_claim_reads": 0.5}
        procs += [_runner(config) for _ in range(3)]
        for proc in procs[1:]:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        go.touch()
        responses = sealed_rpc.wait([handle], timeout=60)
        assert responses and bytes(memoryview(responses[0].body)) == b"echo:once"
        time.sleep(3)  # every runner's next scans: none may handle it again
        handled = {p.name: p.read_text().split() for p in calls.iterdir()}
        takeovers = [ids for pid, ids in handled.items() if pid != str(procs[0].pid)]
        assert handled[str(procs[0].pid)] == [handle.id]
        assert takeovers == [[handle.id]], f"{len(takeovers)} runners took it over: {handled}"
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(timeout=10)


# --------------------------------------------------------------------------- encrypted
@pytest.fixture
def sealed_rpc(tmp_path: Path) -> Iterator[SyftRpc05]:
    context = context_for(tmp_path, AGG, encrypt=True, key_wait=0.3)
    client = plugin.syftflwr_make_client(context)
    role = plugin.syftflwr_make_rpc(client, context)
    assert isinstance(role, SyftRpc05) and role.capabilities.native_encryption
    yield role
    role.close()
    client.close()


def connected(tmp_path: Path, email: str) -> Any:
    """``email``'s syft-core client once its syftflwr client has made and published keys."""
    client = plugin.syftflwr_make_client(context_for(tmp_path, email, encrypt=True))
    client.close()
    return client.syft_client()


def send_to(rpc: SyftRpc05, recipient: str, body: bytes) -> tuple[RequestHandle, Path]:
    request = Request(id=uuid.uuid4().hex, sender=AGG, recipient=recipient, app=APP,
                      endpoint="messages", body=body, created_at=time.time(),
                      expires_at=time.time() + 60)  # fmt: skip
    handle = rpc.send(request)
    folder = rpc.storage.local_path(rpc_folder(recipient, APP, AGG))
    return handle, Path(folder) / f"{uuid.UUID(request.id)}.request"


def write_reply(request_path: Path, sender: str, body: bytes) -> None:
    from syft_core.url import SyftBoxURL
    from syft_rpc.protocol import SyftRequest, SyftResponse

    wire = SyftRequest.load(request_path)
    reply = SyftResponse(id=wire.id, sender=sender, url=SyftBoxURL(str(wire.url)), body=body,
                         expires=wire.expires)  # fmt: skip
    request_path.with_suffix(".response").write_text(reply.dumps())


def test_encrypted_requests_are_what_upstream_decrypts_and_its_replies_are_opened(
    tmp_path: Path, sealed_rpc: SyftRpc05
) -> None:
    from syft_crypto import EncryptedPayload, decrypt_message, encrypt_message
    from syft_rpc.protocol import SyftRequest

    ds = connected(tmp_path, DATASITES[1])  # connected, not serving: the request stays
    body = NUMPY + b"\x00weights"
    handle, path = send_to(sealed_rpc, DATASITES[1], body)
    assert not any(NUMPY in layer for layer in plaintext_layers(path.read_bytes()))
    payload = EncryptedPayload.model_validate_json(SyftRequest.load(path).body or b"")
    assert (payload.sender, payload.receiver) == (AGG, DATASITES[1])
    assert base64.b64decode(decrypt_message(payload, ds)) == body  # what syft-event does
    # the reply as syft-rpc's reply_to(encrypt=True) seals upstream's base64 reply
    sealed = encrypt_message(base64.b64encode(b"reply" + NUMPY).decode(), to=AGG, client=ds)
    write_reply(path, DATASITES[1], sealed.model_dump_json().encode())
    responses = sealed_rpc.wait([handle], timeout=10)
    assert [bytes(memoryview(r.body)) for r in responses] == [b"reply" + NUMPY]


def test_encrypted_round_trip_with_the_own_events_role(
    tmp_path: Path, sealed_rpc: SyftRpc05
) -> None:
    served = Served(tmp_path, encrypt=True)
    try:
        assert round_trip(sealed_rpc, NUMPY + b"x") == b"echo:" + NUMPY + b"x"
        files = message_files(tmp_path / "SyftBox")
        assert files and not any(
            NUMPY in layer for p in files for layer in plaintext_layers(p.read_bytes())
        )
    finally:
        served.close()


def test_an_encrypted_datasite_answers_a_plaintext_request_400_unhandled(
    tmp_path: Path, rpc: SyftRpc05
) -> None:
    from syft_rpc.protocol import SyftResponse

    served = Served(tmp_path, encrypt=True)
    try:
        handle, path = send_to(rpc, DATASITES[0], NUMPY + b"plaintext")  # rpc: encrypt = false
        responses = rpc.wait([handle], timeout=10)
        assert responses and not responses[0].ok
        reply = SyftResponse.load(path.with_suffix(".response"))
        assert reply.status_code == 400 and b"not encrypted" in (reply.body or b"")
        assert served.calls == []
    finally:
        served.close()


@pytest.mark.parametrize("kind", ["plaintext", "tampered", "sealed by another", "no base64"])
def test_a_reply_that_is_not_sealed_by_the_peer_for_us_is_refused(
    tmp_path: Path, sealed_rpc: SyftRpc05, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    from syft_crypto import encrypt_message

    ds = connected(tmp_path, DATASITES[1])
    other = connected(tmp_path, DATASITES[0])
    handle, path = send_to(sealed_rpc, DATASITES[1], b"hello")
    sealed = encrypt_message(base64.b64encode(b"reply").decode(), to=AGG, client=ds)
    if kind == "plaintext":
        body = b"reply"
    elif kind == "tampered":
        sealed.ciphertext = bytes([sealed.ciphertext[0] ^ 1]) + sealed.ciphertext[1:]
        body = sealed.model_dump_json().encode()
    elif kind == "sealed by another":
        body = encrypt_message(base64.b64encode(b"reply").decode(), to=AGG, client=other)
        body = body.model_dump_json().encode()
    else:
        body = encrypt_message("not base64!", to=AGG, client=ds).model_dump_json().encode()
    write_reply(path, DATASITES[1], body)
    with caplog.at_level("WARNING", logger="syftflwr"):
        assert sealed_rpc.wait([handle], timeout=1) == []
    assert "refused" in caplog.text, caplog.text


def test_no_peer_did_refuses_after_key_wait_and_writes_nothing(
    tmp_path: Path, sealed_rpc: SyftRpc05
) -> None:
    started = time.monotonic()
    with pytest.raises(MissingPeerKeysError, match=f"no public keys of {DATASITES[1]}"):
        send_to(sealed_rpc, DATASITES[1], NUMPY)
    assert time.monotonic() - started >= 0.3  # key_wait
    assert message_files(tmp_path / "SyftBox") == []


def test_the_transport_declares_the_profile() -> None:
    assert PROFILE in plugin.syftflwr_transport_info().capabilities.profiles
