"""A syftflwr aggregator with ``profile = "syft-flwr-0.5"`` trains with syft-flwr 0.5
datasites over the real fsspec-local transport (separate OS processes, real files, real
inotify). The datasites are STAND-INS written from upstream's source
(``_syftflwr05_datasite.py``): syft-flwr 0.5 is not on PyPI, so it cannot run here.
Also: messages too big for the unchunked profile are refused naming it, and the profile
refuses core encryption with the fix to apply."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")

import _upstream as up
import pytest

pytest.importorskip("syftflwr_fsspec_local", reason="the fsspec-local plugin is installed by nox")

from syftflwr.envelope import Request
from syftflwr.errors import MessageTooLargeError
from syftflwr.info import TransportContext
from syftflwr.profiles import P2P
from syftflwr_fsspec_local import plugin

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
QUICKSTART = ROOT / "examples" / "quickstart"
AGG = "aggregator@openmined.org"
DATASITES = ("ds1@openmined.org", "ds2@openmined.org")
APP = f"{AGG}_syftflwr-quickstart_{int(time.time())}"
"""The app name syft-flwr 0.5's ``bootstrap`` writes: ``{aggregator}_{[project].name}_{unix
time}`` (what a syft-flwr participant has in its pyproject.toml)."""


def project_with(tmp_path: Path, *lines: str) -> Path:
    """The quickstart with two datasites and extra ``[tool.syftflwr]`` lines."""
    project = tmp_path / "project"
    shutil.copytree(QUICKSTART, project, ignore=shutil.ignore_patterns("__pycache__"))
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    text = re.sub(r"^datasites = .*$", f"datasites = {json.dumps(list(DATASITES))}", text,
                  flags=re.M)  # fmt: skip
    text = text.replace('app_name = "quickstart"', "\n".join([f'app_name = "{APP}"', *lines]))
    pyproject.write_text(text)
    return project


def env_for(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYFTFLWR_")}
    env.update(FLWR_TELEMETRY_ENABLED="0", SYFTFLWR_HOME=str(home))
    return env


@pytest.fixture
def standins() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def start_standin(
    procs: list[subprocess.Popen[str]], project: Path, index: int, home: Path, **where: object
) -> subprocess.Popen[str]:
    """A stand-in syft-flwr 0.5 datasite; ``where``: ``root`` (a folder) or ``drive``."""
    config = {
        **where,
        "email": DATASITES[index],
        "app_name": APP,
        "project": str(project),
        "client_app": "syftflwr_quickstart.client_app:app",
        "partition_id": index,
        "num_partitions": len(DATASITES),
        "run_config": {"local-epochs": 50, "learning-rate": 0.1, "l2": 0.001, "seed": 42},
        "poll_interval": 0.05,
    }
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "_syftflwr05_datasite.py"), json.dumps(config)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env_for(home),
    )  # fmt: skip
    procs.append(proc)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def run_aggregator(project: Path, env: dict[str, str], result_file: Path, rounds: int) -> str:
    agg = subprocess.run(
        [sys.executable, "-m", "syftflwr", "run", str(project), "--as", AGG, "--rounds",
         str(rounds), "--result-file", str(result_file)],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert agg.returncode == 0, agg.stdout + agg.stderr
    result = json.loads(result_file.read_text())
    assert [r["round"] for r in result["rounds"] if r["round"]] == list(range(1, rounds + 1))
    assert result["failures"] == []
    assert float(result["final_metrics"]["accuracy"]) >= 0.9
    # upstream datasites stop on the stop message without answering it: none is awaited
    assert result["stop_acks"] == {}
    # replies written in place are read again when complete, never refused as damaged
    assert "rejected response" not in agg.stderr, agg.stderr
    return agg.stderr


def check_standins(procs: list[subprocess.Popen[str]], rounds: int) -> None:
    for proc in procs:
        output, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, output
        assert output.count("answered") == 2 * rounds, output  # train + evaluate
        assert "stopped" in output, output


@pytest.mark.slow
def test_aggregator_trains_with_syftflwr05_datasites(
    tmp_path: Path, standins: list[subprocess.Popen[str]]
) -> None:
    home = tmp_path / "home"
    mailbox = home / "mailbox"  # fsspec-local's default root under SYFTFLWR_HOME
    project = project_with(
        tmp_path, 'transport = "fsspec-local"', 'profile = "syft-flwr-0.5"',
        "encryption = false", "round_timeout = 60",
    )  # fmt: skip
    procs = [
        start_standin(standins, project, i, home, root=str(mailbox)) for i in range(len(DATASITES))
    ]
    started = time.monotonic()
    run_aggregator(project, env_for(home), tmp_path / "result.json", rounds=2)
    elapsed = time.monotonic() - started
    check_standins(procs, rounds=2)
    # what is on disk is upstream's layout and bytes: bare protobuf replies, no chunks,
    # no envelope headers, the app under flwr/{app}
    for email in DATASITES:
        replies = sorted(up.endpoint_dir(mailbox, email, AGG, APP).glob("*.response"))
        assert len(replies) == 4
        for path in replies:
            message = up.from_bytes(path.read_bytes())
            assert message.metadata.reply_to_message_id == path.stem  # type: ignore[attr-defined]
            assert message.metadata.src_node_id != 0  # type: ignore[attr-defined]
    print(f"fsspec-local, 2 rounds, 2 stand-in datasites: {elapsed:.1f} s")


@pytest.mark.slow
def test_aggregator_trains_with_syftflwr05_datasites_over_drive(
    tmp_path: Path, standins: list[subprocess.Popen[str]]
) -> None:
    pytest.importorskip("syftflwr_gdrive", reason="the gdrive plugin is installed by nox")
    helpers = ROOT / "plugins" / "gdrive" / "tests"
    sys.path.insert(0, str(helpers))
    from _gd_tokens import write_token
    from drive_server import running_drive

    home = tmp_path / "home"
    project = project_with(
        tmp_path, 'transport = "gdrive"', 'profile = "syft-flwr-0.5"', "encryption = false",
        "round_timeout = 60",
    )  # fmt: skip
    with running_drive() as (state, url):
        tokens = {email: state.add_user(email) for email in (AGG, *DATASITES)}
        write_token(tmp_path / "tokens" / f"{AGG}.json", tokens[AGG])
        procs = [
            start_standin(standins, project, i, home,
                          drive={"url": url, "token": tokens[email], "helpers": str(helpers)})
            for i, email in enumerate(DATASITES)
        ]  # fmt: skip
        env = {
            **env_for(home),
            "SYFTFLWR_GDRIVE_TOKEN": str(tmp_path / "tokens" / "{email}.json"),
            "SYFTFLWR_GDRIVE_API_ROOT_URL": url,
            "SYFTFLWR_GDRIVE_POLL_INTERVAL": "0.05",
            "SYFTFLWR_GDRIVE_MAX_POLL_INTERVAL": "0.2",
        }
        started = time.monotonic()
        run_aggregator(project, env, tmp_path / "result.json", rounds=1)
        elapsed = time.monotonic() - started
        check_standins(procs, rounds=1)
        folders = [f for f in state.files.values() if f.mime_type.endswith(".folder")]
        # upstream's Drive layout: the app folder is ONE folder named flwr/{app}
        apps = [f for f in folders if f.name == f"flwr/{APP}"]
        assert len(apps) == 2 * len(DATASITES), sorted(f.name for f in folders)
        assert not [f for f in folders if f.name in ("flwr", APP)]
        replies = [f for f in state.files.values() if f.name.endswith(".response")]
        assert len(replies) == 2 * len(DATASITES)
        for f in replies:
            assert f.owner in DATASITES  # written by the stand-ins, into their own outboxes
            message = up.from_bytes(bytes(f.content))
            assert message.metadata.reply_to_message_id == f.name.removesuffix(".response")  # type: ignore[attr-defined]
    print(f"gdrive, 1 round, 2 stand-in datasites: {elapsed:.1f} s")


@pytest.mark.slow
def test_syftflwr05_aggregator_trains_with_a_syftflwr_datasite(tmp_path: Path) -> None:
    """The reverse: a stand-in syft-flwr 0.5 aggregator (another process) and syftflwr's
    datasite runner over fsspec-local, with the profile's node id (crc32) as
    ``syftflwr run`` gives it."""
    from syftflwr.flower.apps import load_client_app, read_app
    from syftflwr.flower.node_ids import node_ids_for
    from syftflwr.flower.runner import DatasiteRunner

    root, ds = tmp_path / "mailbox", DATASITES[0]
    client_app = load_client_app(read_app(QUICKSTART))

    ctx = _context(ds, root)
    client = plugin.syftflwr_make_client(ctx)
    events = plugin.syftflwr_make_events(client, ctx)
    runner = DatasiteRunner(
        events, client_app, email=ds, node_id=node_ids_for([ds], "syft-flwr-0.5")[ds],
        node_config={"partition-id": 0, "num-partitions": 2},
        run_config={"local-epochs": 5, "learning-rate": 0.1, "l2": 0.001, "seed": 42},
    )  # fmt: skip
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    try:
        config = {"root": str(root), "email": AGG, "datasite": ds, "app_name": APP,
                  "project": str(QUICKSTART), "timeout": 60}  # fmt: skip
        out = subprocess.run(
            [sys.executable, str(HERE / "_syftflwr05_aggregator.py"), json.dumps(config)],
            capture_output=True, text=True, timeout=120, env=env_for(tmp_path), check=False,
        )  # fmt: skip
        assert out.returncode == 0, out.stdout + out.stderr
        result = json.loads(out.stdout.strip().splitlines()[-1])
        assert "error" not in result, result
        # Flower's reply semantics, as upstream's grid reads them
        assert result["reply_to_message_id"] == ""  # upstream sends message_id ""
        assert (result["src_node_id"], result["dst_node_id"]) == (up.str_to_int(ds), 1)
        assert result["run_id"] == 123 and result["message_type"] == "train"
        assert not result["has_error"] and result["arrays"] == 2
        assert result["metrics"]["num-examples"] > 0
        assert runner.stopped.wait(30), "the upstream stop message did not stop the runner"
    finally:
        runner.stop()
        thread.join(10)
        events.close()
        client.close()
    assert runner.stats.handled == 1 and runner.stats.errors == 0


def test_encryption_on_with_the_05_profile_is_a_config_error(tmp_path: Path) -> None:
    project = project_with(
        tmp_path, 'transport = "fsspec-local"', 'profile = "syft-flwr-0.5"', "encryption = true"
    )
    out = subprocess.run(
        [sys.executable, "-m", "syftflwr", "run", str(project), "--as", AGG, "--rounds", "1"],
        env=env_for(tmp_path / "home"), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode == 2, out.stdout + out.stderr
    assert "'syft-flwr-0.5' wire profile cannot carry core encryption" in out.stderr
    assert "encryption = false" in out.stderr
    assert "Traceback" not in out.stderr
    assert not any((tmp_path / "home" / "mailbox").rglob("*.request"))  # nothing was sent


def _context(email: str, root: Path, **options: object) -> TransportContext:
    return TransportContext(
        transport="fsspec-local", app_name=APP, email=email, aggregator=AGG,
        datasites=DATASITES, options={"root": str(root), "retention_interval": 0, **options},
        state_dir=root.parent / "state" / email, profile="syft-flwr-0.5",
    )  # fmt: skip


def test_oversized_messages_are_refused_naming_the_profile(tmp_path: Path) -> None:
    root = tmp_path / "mailbox"
    ctx = _context(AGG, root, max_object_size=4096)
    client = plugin.syftflwr_make_client(ctx)
    rpc = plugin.syftflwr_make_rpc(client, ctx)
    try:
        assert rpc.profile is P2P  # type: ignore[attr-defined]
        big = Request.new(sender=AGG, recipient=DATASITES[0], app=APP, endpoint="messages",
                          body=b"\x0a" + b"x" * 10_000)  # fmt: skip
        refused = r"'syft-flwr-0\.5' wire profile cannot chunk"
        with pytest.raises(MessageTooLargeError, match=refused):
            rpc.send(big)
        assert not any(root.rglob("*.request")) and not any(root.rglob("*.part*"))
        small = Request.new(sender=AGG, recipient=DATASITES[0], app=APP, endpoint="messages",
                            body=b"\x0a\x00")  # fmt: skip
        rpc.send(small)  # under the limit: one file, upstream's name, upstream's bytes
        path = up.endpoint_dir(root, AGG, DATASITES[0], APP) / f"{small.id}.request"
        assert path.read_bytes() == b"\x0a\x00"
    finally:
        rpc.close()
        client.close()


def test_an_oversized_reply_becomes_an_error_reply_naming_the_profile(tmp_path: Path) -> None:
    root = tmp_path / "mailbox"
    ds = DATASITES[0]
    ctx = _context(ds, root, max_object_size=4096)
    client = plugin.syftflwr_make_client(ctx)
    events = plugin.syftflwr_make_events(client, ctx)
    events.on_request("messages", lambda request: b"\x0a" + b"y" * 10_000)
    inbox = up.endpoint_dir(root, AGG, ds, APP)
    inbox.mkdir(parents=True)
    future_id = up.new_future_id()
    (inbox / f"{future_id}.request").write_bytes(b"\x0a\x00")  # as upstream writes it
    thread = threading.Thread(target=events.run_forever, daemon=True)
    thread.start()
    try:
        reply = up.endpoint_dir(root, ds, AGG, APP) / f"{future_id}.response"
        deadline = time.monotonic() + 20
        while not reply.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        fields = json.loads(reply.read_bytes())  # upstream's error JSON, not a chunked reply
        assert "'syft-flwr-0.5' wire profile cannot chunk" in fields["error"]
        assert "timestamp" in fields
    finally:
        events.stop()
        thread.join(10)
        events.close()
        client.close()
