"""Interop with the REAL syft-flwr 0.5 from PyPI, both ways, encrypted and not.

Not part of the suite (`nox -s interop` runs it): syft-flwr 0.5 needs Python >= 3.12 and
pins flwr 1.25.0, so it lives in a venv of its own, next to syftflwr's syftbox environment
(Python 3.11, flwr 1.26.1). All participants share ONE local SyftBox data dir (SyftBox's
own local simulation, no daemon, no network), as `syft_flwr.run` does::

    nox -s interop                       # both venvs, then this script
    python tools/interop_syftflwr05.py UPSTREAM_PYTHON   # by hand, from the syftbox env

The project is examples/quickstart bootstrapped by syft-flwr's own ``bootstrap`` (so its
``app_name`` is the generated ``{aggregator}_{project}_{unix time}``), plus a
``[tool.syftflwr]`` table with that same name and ``profile = "syft-flwr-0.5"``.
Scenarios: a syftflwr aggregator (`syftflwr run`) with two syft-flwr datasites
(their ``main.py``), and a syft-flwr aggregator with two syftflwr datasites, each with
syft-crypto encryption on (both sides' default) and off. Prints one line per scenario.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "examples" / "quickstart"
sys.path.insert(0, str(ROOT / "plugins" / "syftbox" / "tests"))  # the syftbox tests' helpers

from _sb_helpers import plaintext_layers, write_config  # noqa: E402

AGG = "aggregator@openmined.org"
DATASITES = ("ds1@openmined.org", "ds2@openmined.org")
COMPLAINT = re.compile(r"(WARNING|ERROR|CRITICAL) |warning:|error:|Traceback")
"""A line of syftflwr's logs that is not news of a healthy run."""

BOOTSTRAP = """
import sys, tomli, tomli_w
from syft_flwr import bootstrap
project, agg, datasites, encrypted = sys.argv[1], sys.argv[2], sys.argv[3].split(","), sys.argv[4]
bootstrap(project, aggregator=agg, datasites=datasites, transport="syftbox")
path = f"{project}/pyproject.toml"
with open(path, "rb") as f:
    conf = tomli.load(f)
ours = {"app_name": conf["tool"]["syft_flwr"]["app_name"], "aggregator": agg,
        "datasites": datasites, "transport": "syftbox", "profile": "syft-flwr-0.5",
        "round_timeout": 120}
if encrypted == "0":
    ours["encryption"] = False
conf["tool"]["syftflwr"] = ours
with open(path, "wb") as f:
    tomli_w.dump(conf, f)
print(ours["app_name"])
"""


def scenario(upstream_python: str, *, aggregator: str, encrypted: bool, work: Path) -> str:
    """One run; ``aggregator`` is "syftflwr" or "syft-flwr"; returns a summary line."""
    work.mkdir(parents=True)
    project = work / "project"
    shutil.copytree(QUICKSTART, project, ignore=shutil.ignore_patterns("__pycache__"))
    app = subprocess.run(
        [upstream_python, "-c", BOOTSTRAP, str(project), AGG, ",".join(DATASITES),
         "1" if encrypted else "0"],
        capture_output=True, text=True, check=True,
    ).stdout.strip().splitlines()[-1]  # fmt: skip
    data_dir = work / "SyftBox"
    configs = {e: write_config(work / "configs", e, data_dir) for e in (AGG, *DATASITES)}
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SYFTFLWR_", "SYFTBOX_"))}
    base.update(FLWR_TELEMETRY_ENABLED="0", SYFTFLWR_HOME=str(work / "home"),
                HOME=str(work / "home"),  # never the user's real dirs
                SYFTFLWR_SYFTBOX_ENCRYPT=str(encrypted).lower(),
                SYFT_FLWR_ENCRYPTION_ENABLED=str(encrypted).lower(),
                SYFT_FLWR_SKIP_MODULE_CHECK="true")  # fmt: skip

    def env(email: str) -> dict[str, str]:
        return {**base, "SYFTBOX_CLIENT_CONFIG_PATH": str(configs[email])}

    def ours(email: str, *args: str) -> list[str]:
        return [sys.executable, "-m", "syftflwr", "run", str(project), "--as", email, *args]

    def theirs() -> list[str]:
        return [upstream_python, str(project / "main.py")]

    logs = work / "logs"
    logs.mkdir()
    datasites = []
    for index, email in enumerate(DATASITES):
        partition = ["--node-config", f"partition-id={index}",
                     "--node-config", f"num-partitions={len(DATASITES)}"]  # fmt: skip
        args = theirs() if aggregator == "syftflwr" else ours(email, *partition)
        log = (logs / f"{email}.log").open("w")
        datasites.append(subprocess.Popen(args, cwd=project, env=env(email), stdout=log,
                                          stderr=subprocess.STDOUT))  # fmt: skip
    # serving once the app's rpc folder has its permissions file; with encryption, also the
    # DID (published on start; both sides look it up on send)
    ready = [data_dir / "datasites" / e / "app_data" / "flwr" / app / "rpc" / "syft.pub.yaml"
             for e in DATASITES]  # fmt: skip
    if encrypted:
        ready += [data_dir / "datasites" / e / "public" / "did.json" for e in DATASITES]
    deadline = time.monotonic() + 120
    while not all(p.exists() for p in ready) and time.monotonic() < deadline:
        if any(proc.poll() is not None for proc in datasites):
            break
        time.sleep(0.2)
    started = time.monotonic()
    result_file = work / "result.json"
    args = ours(AGG, "--rounds", "2", "--result-file", str(result_file))
    agg = subprocess.run(
        args if aggregator == "syftflwr" else theirs(),
        cwd=project, env=env(AGG), capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    (logs / f"{AGG}.log").write_text(agg.stdout + agg.stderr)
    codes = []
    for proc in datasites:
        try:
            codes.append(proc.wait(60))
        except subprocess.TimeoutExpired:
            proc.kill()
            codes.append(proc.wait())
    text = agg.stdout + agg.stderr
    if aggregator == "syftflwr":
        result = json.loads(result_file.read_text()) if result_file.exists() else {}
        rounds = [r["round"] for r in result.get("rounds", []) if r["round"]]
        lost = len(result.get("failures", [])) if result else "?"
        accuracy = result.get("final_metrics", {}).get("accuracy", "?")
        ok = rounds == [1, 2] and lost == 0
    else:
        replies = re.findall(r"[Rr]eceived (\d+) results and (\d+) failures", text)
        rounds = [len(replies) // 2]
        lost = sum(int(f) for _, f in replies) if replies else "?"
        accuracy = "see log"
        answered = all(int(n) == len(DATASITES) for n, _ in replies)
        # 3 rounds: the quickstart's num-server-rounds, which upstream's ServerApp follows
        ok = rounds == [3] and answered and lost == 0 and "Server encountered an error" not in text
    files = [p for p in data_dir.glob("datasites/*/app_data/flwr/**/*")
             if p.suffix in (".request", ".response")]  # fmt: skip
    plain = sum(any(b"\x93NUMPY" in layer for layer in plaintext_layers(p.read_bytes()))
                for p in files)  # fmt: skip
    # syftflwr's side of a healthy run warns about nothing (upstream's side may: its logs)
    ours = [logs / f"{e}.log" for e in ((AGG,) if aggregator == "syftflwr" else DATASITES)]
    complaints = sum(
        bool(COMPLAINT.match(line)) for p in ours for line in p.read_text().splitlines()
    )
    # every participant ends by itself with 0, and encryption leaves no array readable on disk
    ok = (
        ok
        and agg.returncode == 0
        and codes == [0, 0]
        and not (encrypted and plain)
        and not complaints
    )
    return (
        f"{'OK  ' if ok else 'FAIL'} aggregator={aggregator:9} encrypted={encrypted!s:5} "
        f"app_name={app!r} rounds={rounds} lost={lost} accuracy={accuracy} "
        f"datasite exits={codes} files={len(files)} with plaintext arrays={plain} "
        f"syftflwr warnings/errors={complaints} "
        f"time={elapsed:.1f}s logs={logs}"
    )


def main() -> int:
    upstream_python = str(Path(sys.argv[1]).absolute())  # the scenarios run in other folders
    work = Path(tempfile.mkdtemp(prefix="syftflwr05-interop-"))
    lines = []
    for aggregator in ("syftflwr", "syft-flwr"):
        for encrypted in (False, True):
            name = f"{aggregator}-{'encrypted' if encrypted else 'plaintext'}"
            line = scenario(upstream_python, aggregator=aggregator, encrypted=encrypted,
                            work=work / name)  # fmt: skip
            print(line, flush=True)
            lines.append(line)
    return 0 if all(line.startswith("OK") for line in lines) else 1


if __name__ == "__main__":
    raise SystemExit(main())
