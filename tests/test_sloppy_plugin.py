"""A deliberately sloppy third-party transport (tests/plugins/sloppy, pip-installed like
any plugin) cannot hang or mislead a run: each of its faults gives a clear error naming
the plugin and the hook, an error reply wherever a request was received, bounded waits,
no participant process left behind, and a warning when its listings are slow. Real
``syftflwr`` processes; the faults are the plugin's own (``SYFTFLWR_SLOPPY``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from _plugin_env import PluginEnv

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "examples" / "quickstart"
DS1 = "ds1@openmined.org"


def _env(plugin_env: PluginEnv, tmp_path: Path, faults: str) -> dict[str, str]:
    root = tmp_path / "shared"
    root.mkdir(exist_ok=True)
    env = plugin_env.env("sloppy")
    env.update(SYFTFLWR_HOME=str(tmp_path / "home"), SYFTFLWR_SLOPPY_ROOT=str(root),
               SYFTFLWR_TRANSPORT="sloppy", SYFTFLWR_SLOPPY=faults)  # fmt: skip
    return env


def _syftflwr(
    env: dict[str, str], *args: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "syftflwr", *args], env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)  # fmt: skip


def _participants(home: Path) -> list[int]:
    """Processes whose SYFTFLWR_HOME is ``home`` (simulate's participants)."""
    marker = f"SYFTFLWR_HOME={home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def _describe(pids: list[int]) -> str:
    lines = []
    for pid in pids:
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            cmd = "(gone)"
        lines.append(f"{pid}: {cmd[:300]}")
    return "\n".join(lines)


def test_an_exception_in_make_client_is_an_error_naming_plugin_and_hook(
    plugin_env: PluginEnv, tmp_path: Path
) -> None:
    env = _env(plugin_env, tmp_path, "client-raises")
    for args in (("run", str(QUICKSTART), "--as", DS1), ("simulate", str(QUICKSTART))):
        done = _syftflwr(env, *args)
        assert done.returncode == 2, done.stdout + done.stderr
        assert "error: transport 'sloppy' (syftflwr-test-sloppy 0.1.0" in done.stderr
        assert ("failed in syftflwr_make_client: RuntimeError: sloppy backend exploded"
                in done.stderr), done.stderr  # fmt: skip
        assert "fix:" in done.stderr and "Traceback" not in done.stderr, done.stderr


@pytest.mark.parametrize(("fault", "hook"), [("rpc-type", "syftflwr_make_rpc"),
                                             ("events-type", "syftflwr_make_events")])  # fmt: skip
def test_a_role_of_the_wrong_type_stops_simulate_with_the_reason(
    plugin_env: PluginEnv, tmp_path: Path, fault: str, hook: str
) -> None:
    done = _syftflwr(_env(plugin_env, tmp_path, fault), "simulate", str(QUICKSTART),
                     "--rounds", "1")  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{hook} returned dict" in done.stderr, done.stdout + done.stderr
    assert "ended without a result" not in done.stdout + done.stderr


def test_a_storage_error_while_handling_a_request_is_answered_with_an_error(
    plugin_env: PluginEnv, tmp_path: Path
) -> None:
    """Every request a datasite receives fails to read (a raw ConnectionResetError from
    the plugin's storage): each gets an error reply that says so, and the round ends
    when the replies come, not after its timeout."""
    started = time.monotonic()
    done = _syftflwr(_env(plugin_env, tmp_path, "get-raises"), "simulate", str(QUICKSTART),
                     "--rounds", "1", "--round-timeout", "120")  # fmt: skip
    took = time.monotonic() - started
    output = done.stdout + done.stderr
    assert done.returncode == 1, output  # every reply failed
    failed = [line for line in output.splitlines() if line.startswith("failed: ")]
    assert len(failed) == 6, output  # 3 datasites x (train, evaluate)
    assert all("SloppyStorage) failed to read it: ConnectionResetError" in f for f in failed)
    assert "timeout" not in "\n".join(failed)
    assert took < 120, f"{took:.0f}s: the round waited out its timeout\n{output}"


@pytest.mark.parametrize("start", ["auto", "spawn"], ids=["forked", "spawned"])
def test_a_storage_that_blocks_forever_bounds_the_round_and_leaves_no_process(
    plugin_env: PluginEnv, tmp_path: Path, start: str
) -> None:
    """From the aggregator's first request on, every storage call blocks forever: the
    round's waits end at --round-timeout (+ the grace a transport call gets); killing
    simulate with SIGKILL then leaves no participant process 5 s later."""
    workspace = tmp_path / "ws"
    env = _env(plugin_env, tmp_path, "block")
    env["SYFTFLWR_SIMULATE_START"] = start  # forked from simulate's fork server, or not
    proc = subprocess.Popen(
        [sys.executable, "-m", "syftflwr", "simulate", str(QUICKSTART), "--rounds", "1",
         "--round-timeout", "3", "--workspace", str(workspace)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        log = workspace / "logs" / "aggregator@openmined.org.log"
        while "did not return" not in (log.read_text() if log.exists() else ""):
            assert proc.poll() is None and time.monotonic() < deadline, (
                log.read_text() if log.exists() else "no aggregator log"
            )
            time.sleep(0.2)
        assert _participants(workspace / "home"), "no participant found"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed = time.monotonic()
        while _participants(workspace / "home") and time.monotonic() < killed + 5:
            time.sleep(0.1)
        left = _participants(workspace / "home")
        assert not left, f"alive 5 s after simulate was killed: {_describe(left)}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in _participants(workspace / "home"):
            os.kill(pid, signal.SIGKILL)


def test_a_slow_listing_is_reported_once_a_minute(plugin_env: PluginEnv, tmp_path: Path) -> None:
    env = _env(plugin_env, tmp_path, "slow-list")
    proc = subprocess.Popen([sys.executable, "-m", "syftflwr", "run", str(QUICKSTART), "--as",
                             DS1], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or ()), daemon=True)
    reader.start()

    def slow_lines() -> list[str]:
        return [line for line in list(lines) if "took" in line and "listing" in line]

    deadline = time.monotonic() + 180  # a loaded machine's start-up (importing Flower)
    while not slow_lines():
        assert proc.poll() is None and time.monotonic() < deadline, "".join(lines)
        time.sleep(0.2)
    time.sleep(12)  # several more listings of 2 s each: no second warning within the minute
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
    reader.join(timeout=10)
    output = "".join(lines)
    slow = slow_lines()
    assert len(slow) == 1, output
    assert slow[0].startswith("WARNING") and "SloppyStorage" in slow[0], output
