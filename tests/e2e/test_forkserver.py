"""`simulate` starts its participants by forking one pre-imported process (the fork
server), and spawns them anew when that is not safe or not wanted. Real processes; the
apps record whether their module was imported by the participant itself."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from _e2e import env_for, syftflwr, write_app

pytest.importorskip("syftflwr_fsspec_local", reason="the fsspec-local plugin is installed by nox")

START = "SYFTFLWR_SIMULATE_START"
A_THREAD_AT_IMPORT = """
import threading, time
threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()
"""


def simulate(
    project: Path, tmp_path: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        syftflwr("-v", "simulate", str(project), "--allow-failures",
                 "--workspace", str(tmp_path / "ws"), *args),
        env=env_for(tmp_path / "home", **env), capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip


def imported(tmp_path: Path, out: subprocess.CompletedProcess[str]) -> tuple[str, str]:
    """Where the ServerApp's and ds1's ClientApp's modules were imported."""
    server = "here" if "agg | ServerApp says: imported here" in out.stderr else "before"
    assert server == "here" or "agg | ServerApp says: imported before the fork" in out.stderr
    log = (tmp_path / "ws" / "logs" / "ds1@lab.org.log").read_text()
    client = "here" if "trained, imported here" in log else "before"
    assert client == "here" or "trained, imported before the fork" in log, log
    return server, client


@pytest.mark.parametrize("method", ["auto", "spawn"])
def test_both_ways_to_start_run_the_same_federation(tmp_path: Path, method: str) -> None:
    project = write_app(tmp_path / "app", "forkapp")
    out = simulate(project, tmp_path, **{START: method})
    assert out.returncode == 0, out.stdout + out.stderr
    # the same run either way: prints relayed, the datasite's error reported
    assert "agg | ServerApp says: 1 error replies" in out.stderr
    assert "ds2@lab.org (round 1, train): error" in out.stdout
    if method == "auto":  # Linux: forked, so the app was imported once, before
        assert imported(tmp_path, out) == ("before", "before")
        assert "starting the participants anew" not in out.stderr
    else:
        assert imported(tmp_path, out) == ("here", "here")
        assert not (tmp_path / "ws" / "forkserver.log").exists()


def test_an_app_that_starts_a_thread_at_import_is_spawned(tmp_path: Path) -> None:
    """Forking a process that runs a thread is unsafe: the fork server refuses, says why
    (INFO), and the participants are spawned; asked to fork, simulate exits 2."""
    project = write_app(tmp_path / "app", "threadapp", client_prelude=A_THREAD_AT_IMPORT)
    out = simulate(project, tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert imported(tmp_path, out) == ("here", "here")
    assert (
        "INFO syftflwr.flower: starting the participants anew (no fork server: 2 threads "
        "after importing the app (forking needs one))"
    ) in out.stderr

    forced = simulate(project, tmp_path / "forced", **{START: "fork"})
    assert forced.returncode == 2, forced.stdout + forced.stderr
    assert (
        f"error: {START}: the participants cannot be forked from a pre-imported process: "
        "2 threads after importing the app (forking needs one)"
    ) in forced.stderr
    assert f"fix: unset {START} (or set it to spawn)" in forced.stderr


def fork_server_and_children(project: Path) -> list[int]:
    """Pids of the fork server started for ``project`` and of the participants it forked."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "syftflwr.flower.forkserver" in cmd and str(project) in cmd:
            found += [int(entry.name), *_children(int(entry.name))]
    return sorted(set(found))


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            out.extend(int(p) for p in task.read_text().split())
        except OSError:
            continue
    return out


def test_no_participant_outlives_a_killed_simulate(tmp_path: Path) -> None:
    """kill -9 of simulate while its participants run: the fork server sees its parent
    go, stops every participant, and ends."""
    project = write_app(tmp_path / "app", "killapp")
    server_app = project / "killapp" / "server_app.py"
    server_app.write_text(server_app.read_text().replace(
        "replies = list(grid.send_and_receive(messages, timeout=60))",
        "replies = list(grid.send_and_receive(messages, timeout=600))",
    ).replace('raise RuntimeError("disk full on this datasite")', "time.sleep(600)"))  # fmt: skip
    client = project / "killapp" / "client_app.py"
    client.write_text("import time\n" + client.read_text().replace(
        'raise RuntimeError("disk full on this datasite")', "time.sleep(600)"))  # fmt: skip
    proc = subprocess.Popen(
        syftflwr("simulate", str(project), "--workspace", str(tmp_path / "ws")),
        env=env_for(tmp_path / "home"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,  # the kill below must reach simulate alone, as kill -9 does
    )  # fmt: skip
    try:
        progress = tmp_path / "ws" / "progress.jsonl"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and "train" not in (
            progress.read_text() if progress.exists() else ""
        ):
            time.sleep(0.2)  # the aggregator sent its instructions: everyone runs
        running = fork_server_and_children(project)
        assert len(running) == 4, running  # the fork server, the aggregator, two datasites
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_alive(p) for p in running):
            time.sleep(0.2)
        assert not [p for p in running if _alive(p)]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has ended (its parent may be gone)
