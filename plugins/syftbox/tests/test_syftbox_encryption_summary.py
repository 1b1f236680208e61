"""The run summary says what was done to the bytes, over syftbox in both wire profiles.

Each case trains the quickstart for one round (`syftflwr run` for the aggregator and one
datasite, each in its own process, one SyftBox data dir) with the project's
``encryption`` and (syft-flwr-0.5 profile) the syftbox option ``encrypt`` set, then
scans every file that was ever written in the data dir (each is hard-linked aside as it
appears: answered requests and delivered replies are deleted during the run) — and every
base64 layer of syft-rpc JSON — for what a plaintext run leaves there: a run of non-zero
bytes of the datasite's round-1 reply arrays (recomputed here: the quickstart trains
deterministically) and the instruction's ``server-round`` key. Where the summary says
"NOT encrypted" the scan must find them (the control that shows the
scan works); where it says "encrypted", it must find nothing."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _sb_helpers import plaintext_layers, write_config
from syftflwr.plugin import syftflwr05_wire_app

QUICKSTART = Path(__file__).resolve().parents[3] / "examples" / "quickstart"
AGG = "aggregator@openmined.org"
DS1 = "ds1@openmined.org"


def project_for(tmp_path: Path, profile: str, encryption: bool) -> Path:
    project = tmp_path / "project"
    shutil.copytree(QUICKSTART, project, ignore=shutil.ignore_patterns("__pycache__"))
    pyproject = project / "pyproject.toml"
    text = re.sub(r"^datasites = .*$", f'datasites = ["{DS1}"]', pyproject.read_text(),
                  flags=re.M)  # fmt: skip
    text = text.replace(
        'app_name = "quickstart"',
        f'app_name = "quickstart"\nprofile = "{profile}"\ntransport = "syftbox"\n'
        f"encryption = {str(encryption).lower()}",
    )
    pyproject.write_text(text)
    return project


def round1_reply_bytes() -> bytes:
    """24 bytes, none of them zero, of ds1's round-1 reply arrays (partition 0 of 1)."""
    sys.path.insert(0, str(QUICKSTART))
    try:
        from syftflwr_quickstart.task import initial_weights, load_partition, train
    finally:
        sys.path.remove(str(QUICKSTART))
    x, y, _, _ = load_partition(0, 1, seed=42)
    weights, _ = train(initial_weights(), x, y, epochs=50, lr=0.1, l2=0.001)
    raw = weights[0].tobytes()
    window = next(raw[i : i + 24] for i in range(0, len(raw) - 24, 8)
                  if 0 not in raw[i : i + 24])  # fmt: skip
    return window


class Capture:
    """Hard-links every file written under ``root`` into ``into`` as it appears (the
    link keeps the file's bytes after the mailbox deletes it), through inotify. A new
    folder is walked when it appears: files written into it before its watch was added
    send no event of their own (inotify's recursive-watch race)."""

    def __init__(self, root: Path, into: Path) -> None:
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer

        root.mkdir(parents=True, exist_ok=True)
        into.mkdir(parents=True, exist_ok=True)
        self.count = 0
        self.into = into
        capture = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                path = getattr(event, "dest_path", "") or event.src_path
                if not path:
                    return
                name = Path(os.fsdecode(path))
                if not event.is_directory:
                    capture.link(name)
                elif event.event_type in ("created", "moved"):
                    for found in name.rglob("*"):
                        capture.link(found)

        self.observer = Observer()
        self.observer.schedule(Handler(), str(root), recursive=True)
        self.observer.start()

    def link(self, path: Path) -> None:
        if path.is_dir():
            return
        self.count += 1
        with contextlib.suppress(OSError):  # gone already
            os.link(path, self.into / f"{self.count}-{path.name}")

    def stop(self) -> None:
        self.observer.stop()
        self.observer.join(10)


def exposed(folders: tuple[Path, ...], needles: tuple[bytes, ...]) -> dict[str, list[str]]:
    """needle -> the files whose bytes or body layers hold it."""
    found: dict[str, list[str]] = {}
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file() and not path.is_symlink():
                data = path.read_bytes()
                for needle in needles:
                    if any(needle in layer for layer in plaintext_layers(data)):
                        found.setdefault(repr(needle), []).append(path.name)
    return found


def run(
    email: str, project: Path, tmp_path: Path, encrypt: bool | None, *args: str
) -> tuple[list[str], dict[str, str]]:
    """``syftflwr run`` as ``email``; ``encrypt``: the syftbox option (None: unset)."""
    config = write_config(tmp_path / "configs", email, tmp_path / "SyftBox")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYFTFLWR_", "SYFTBOX_"))}
    env.update(FLWR_TELEMETRY_ENABLED="0", SYFTFLWR_HOME=str(tmp_path / "home"),
               SYFTBOX_CLIENT_CONFIG_PATH=str(config))  # fmt: skip
    if encrypt is not None:
        env["SYFTFLWR_SYFTBOX_ENCRYPT"] = str(encrypt).lower()
    return [sys.executable, "-m", "syftflwr", "run", str(project), "--as", email, *args], env


def captured_round(tmp_path: Path, project: Path, encrypt: bool | None) -> tuple[Capture, str]:
    """One round of ``project`` (ds1 and the aggregator, each a ``syftflwr run``) with
    every file written in the data dir captured; the aggregator's output, on one line."""
    capture = Capture(tmp_path / "SyftBox", tmp_path / "captured")
    args, env = run(DS1, project, tmp_path, encrypt, "--node-config", "partition-id=0",
                    "--node-config", "num-partitions=1")  # fmt: skip
    datasite = subprocess.Popen(args, env=env, stdout=(tmp_path / "ds1.log").open("wb"),
                                stderr=subprocess.STDOUT)  # fmt: skip
    try:
        args, env = run(AGG, project, tmp_path, encrypt, "--rounds", "1")
        agg = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300,
                             check=False)  # fmt: skip
        assert datasite.wait(timeout=60) == 0  # the aggregator's stop ends it
    finally:
        capture.stop()
        if datasite.poll() is None:
            datasite.kill()
            datasite.wait()
    output = " ".join((agg.stdout + agg.stderr).split())
    assert agg.returncode == 0, output + (tmp_path / "ds1.log").read_text()
    return capture, output


BROADCAST = {
    # syftbox shares objects, but the quickstart's model is below blob_threshold
    "native": "model inline: no ArrayRecord reached blob_threshold (1 MiB)",
    "syft-flwr-0.5": "one copy per datasite: the syft-flwr-0.5 profile does not share objects",
}
"""What the summary says about the model's broadcast, after the protection phrase."""


def summary_phrases(output: str, profile: str) -> tuple[str, str]:
    """The run summary's protection phrase (without its parenthesis) and broadcast one."""
    said = re.search(r"transport syftbox, 1 datasites?, (.+?), [0-9.]+s", output)
    assert said, output
    protection, sep, broadcast = said.group(1).rpartition(", " + BROADCAST[profile])
    assert sep and not broadcast, (said.group(1), BROADCAST[profile])
    return protection.split(" (")[0], BROADCAST[profile]


CASES = [
    # profile, project's encryption, syftbox's encrypt (None: unset), what the summary says
    ("native", True, None, "end-to-end encrypted"),  # core's sealing, the only one here
    ("native", False, None, "NOT encrypted"),  # control
    ("syft-flwr-0.5", True, None, "end-to-end encrypted by syftbox"),  # syft-crypto's
    ("syft-flwr-0.5", False, True, "end-to-end encrypted by syftbox"),
    ("syft-flwr-0.5", False, False, "NOT encrypted"),  # control
]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("profile", "encryption", "encrypt", "claim"),
    CASES,
    ids=[f"{p}-encryption={e}-encrypt={s}" for p, e, s, _ in CASES],
)
def test_the_summary_says_what_was_done_to_the_bytes(
    tmp_path: Path, profile: str, encryption: bool, encrypt: bool | None, claim: str
) -> None:
    project = project_for(tmp_path, profile, encryption)
    if profile == "syft-flwr-0.5":  # watched before the aggregator writes into it: under
        # load a request written into a folder created a moment before, and answered and
        # deleted before the capture's walk of that folder, was seen by nobody
        requests = f"datasites/{DS1}/app_data/{syftflwr05_wire_app('quickstart')}/rpc/messages"
        (tmp_path / "SyftBox" / requests / AGG).mkdir(parents=True)
    capture, output = captured_round(tmp_path, project, encrypt)
    summary, _ = summary_phrases(output, profile)
    assert summary == claim, (summary, claim)
    found = exposed((tmp_path / "SyftBox", tmp_path / "captured"),
                    (round1_reply_bytes(), b"server-round"))  # fmt: skip
    assert capture.count > 4, capture.count
    if "NOT encrypted" in summary:
        assert len(found) == 2, (summary, found)  # the scan finds what plaintext leaves
    else:
        assert found == {}, (summary, found)


def test_encryption_on_with_syftbox_encrypt_off_in_the_05_profile_fails_closed(
    tmp_path: Path,
) -> None:
    """Neither syftbox (encrypt = false) nor core (this profile cannot carry it) would
    encrypt: the run stops before anything is written, naming both ways out."""
    project = project_for(tmp_path, "syft-flwr-0.5", True)
    args, env = run(AGG, project, tmp_path, False, "--rounds", "1")
    agg = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert agg.returncode == 2, agg.stdout + agg.stderr
    assert "encryption = false" in agg.stderr and "encrypt" in agg.stderr, agg.stderr
    assert not list((tmp_path / "SyftBox").rglob("*.request"))


@pytest.mark.parametrize("encrypt", [True, False])
def test_the_encrypt_option_in_the_native_profile_is_refused(tmp_path: Path, encrypt: bool) -> None:
    """The native profile is sealed by core: syftbox's ``encrypt`` (syft-crypto's switch
    in the syft-flwr-0.5 profile) would be ignored there, so setting it stops the run
    naming the switch that applies."""
    project = project_for(tmp_path, "native", True)
    args, env = run(AGG, project, tmp_path, encrypt, "--rounds", "1")
    agg = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert agg.returncode == 2, agg.stdout + agg.stderr
    err = " ".join(agg.stderr.split())
    assert "the syftbox option encrypt is set" in err and "fix:" in err, err
    assert "encryption in [tool.syftflwr]" in err and "SYFTFLWR_SYFTBOX_ENCRYPT" in err, err
    assert not list((tmp_path / "SyftBox").rglob("*.request"))
