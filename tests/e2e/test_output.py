"""What a person (or a log file) sees from `run` and `simulate` in real processes with
their output piped: plain lines (no ANSI escape, nothing wrapped at 80 columns), each
Flower event once, and the participants' output relayed by `simulate`."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
from pathlib import Path

import pytest
from _e2e import (
    AGG,
    DATASITES,
    QUICKSTART,
    ROOT,
    Procs,
    env_for,
    syftflwr,
    wait_serving,
    write_app,
)

pytest.importorskip("syftflwr_fsspec_local", reason="the fsspec-local plugin is installed by nox")


def assert_plain_and_once(output: str, rounds: int) -> None:
    assert "\x1b[" not in output, "an ANSI escape in piped output"
    for rnd in range(1, rounds + 1):
        assert output.count(f"[ROUND {rnd}/{rounds}]") == 1, output


def summary_line(output: str, transport: str) -> str:
    """The summary's last line, which must not be wrapped: one line from the transport
    to the final accuracy."""
    lines = [line for line in output.splitlines() if line.startswith(f"transport {transport},")]
    assert len(lines) == 1, output
    assert re.search(r", final accuracy 0\.\d{4}$", lines[0]), lines[0]
    return lines[0]


def test_simulate_in_threads_piped(tmp_path: Path) -> None:
    out = subprocess.run(
        syftflwr("simulate", str(QUICKSTART), "--threads"),
        env=env_for(tmp_path / "home"),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert_plain_and_once(out.stdout + out.stderr, rounds=3)
    summary_line(out.stdout, "memory")


def test_run_aggregator_piped(home: Path, procs: Procs) -> None:
    env = env_for(home)
    for email in DATASITES:
        procs.start(syftflwr("run", str(QUICKSTART), "--as", email), env)
    agg = subprocess.run(
        syftflwr("run", str(QUICKSTART), "--as", AGG, "--rounds", "2", "--json"),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = agg.stdout + agg.stderr
    assert agg.returncode == 0, output
    assert_plain_and_once(output, rounds=2)
    summary_line(agg.stderr, "fsspec-local")
    # --json: stdout is the result document, kept in the aggregator's state directory
    document = json.loads(agg.stdout)
    kept = home / "state" / "quickstart" / AGG / "runs" / str(document["run_id"]) / "result.json"
    assert re.search(rf"^result: {re.escape(str(kept))}$", agg.stderr, re.M), agg.stderr
    assert json.loads(kept.read_text()) == document
    # the banner is longer than 80 columns and stays one line
    banner = (rf"^{AGG} \(aggregator\) over fsspec-local \(selected by .+\); models of 1 MiB or "
              r"more sent once per phase \(shared blob\)$")  # fmt: skip
    assert re.search(banner, output, re.M), output
    # the quickstart's model is far below the default blob_threshold: the summary says so
    assert document["broadcast"] == "model inline: no ArrayRecord reached blob_threshold (1 MiB)"


def relayed_lines(stderr: str) -> dict[str, list[str]]:
    """``label | text`` lines by label."""
    found: dict[str, list[str]] = {}
    for line in stderr.splitlines():
        if match := re.match(r"^(\S+) *\| (.*)$", line):
            found.setdefault(match.group(1), []).append(match.group(2))
    return found


def test_simulate_relays_what_participants_print(tmp_path: Path) -> None:
    """What the ServerApp prints and a datasite's error reach the terminal, prefixed by
    participant; a datasite's own prints and INFO lines stay in its log."""
    project = write_app(tmp_path / "app", "relayapp")
    workspace = tmp_path / "ws"
    out = subprocess.run(
        syftflwr("simulate", str(project), "--allow-failures", "--workspace", str(workspace)),
        env=env_for(tmp_path / "home"),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr  # failures tolerated: exit 0
    relayed = relayed_lines(out.stderr)
    assert relayed["agg"][:1] == ["ServerApp says: sending to 2 nodes"], out.stderr
    assert "ServerApp says: 1 error replies" in relayed["agg"], out.stderr
    assert any(
        line.startswith("ERROR ") and "ClientApp raised on train message" in line
        for line in relayed["ds2"]
    ), out.stderr
    assert "    RuntimeError: disk full on this datasite" in relayed["ds2"], out.stderr
    assert "ds1" not in relayed, out.stderr  # ds1 had no error
    assert "ClientApp says" not in out.stderr + out.stdout
    assert "ClientApp says: trained" in (workspace / "logs" / "ds1@lab.org.log").read_text()
    assert "trusting the key" not in out.stderr  # simulated participants pin their keys
    assert "ds2@lab.org (round 1, train): error" in out.stdout  # and the summary says it


def test_aggregator_hints_at_a_datasite_that_is_not_running(home: Path, procs: Procs) -> None:
    """ds3 never starts: after round_timeout / 4 (2 s here) the aggregator says so in
    one line, while the progress stream shows ds1 and ds2 picking up every instruction."""
    env = env_for(home)
    for email in DATASITES[:2]:
        procs.start(syftflwr("run", str(QUICKSTART), "--as", email), env)
    for email in DATASITES[:2]:  # the 2 s of silence must be ds3's alone
        wait_serving(home, email, procs)
    progress = home.parent / "progress.jsonl"
    agg = subprocess.run(
        [*syftflwr("run", str(QUICKSTART), "--as", AGG, "--rounds", "1"),
         "--round-timeout", "8", "--allow-failures", "--progress-file", str(progress)],
        env=env, capture_output=True, text=True, timeout=300, check=False, cwd=ROOT,
    )  # fmt: skip
    output = agg.stdout + agg.stderr
    assert agg.returncode == 0, output
    hints = [line for line in output.splitlines() if "no sign of" in line]
    assert hints == [
        "WARNING syftflwr.flower: no sign of ds3@openmined.org for 2 s: is `syftflwr run "
        "examples/quickstart --as ds3@openmined.org` running?"
    ], output
    events = [json.loads(line) for line in progress.read_text().splitlines()]
    for email in DATASITES:
        sent = {e["info"]["message_id"] for e in events if e["event"] == "sent"
                and e["info"]["datasite"] == email}  # fmt: skip
        picked = {e["info"]["message_id"] for e in events if e["event"] == "picked_up"
                  and e["info"]["datasite"] == email}  # fmt: skip
        assert len(sent) == 2  # train and evaluate
        assert picked == (sent if email != DATASITES[2] else set()), email


def test_a_terminal_keeps_the_rich_output(tmp_path: Path) -> None:
    """In a terminal (a pseudo-terminal here): colours, the live table, rich log lines."""
    leader, follower = pty.openpty()
    env = env_for(tmp_path / "home", COLUMNS="160", LINES="50", TERM="xterm-256color")
    proc = subprocess.Popen(
        syftflwr("simulate", str(QUICKSTART), "--threads", "--rounds", "1"),
        env=env, stdin=follower, stdout=follower, stderr=follower, close_fds=True,
    )  # fmt: skip
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the process closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    assert proc.wait(timeout=300) == 0
    screen = b"".join(chunks).decode("utf-8", "replace")
    assert "\x1b[" in screen  # colours and cursor moves
    assert "federated run (3 datasites)" in screen  # the live view
    assert "picked up" in screen
    assert "[ROUND 1/1]" in re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen)  # a rich log line
