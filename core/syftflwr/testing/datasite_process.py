"""A datasite in a separate OS process, for tests that need real process boundaries.

The parent pickles a spec (transport name and entry-point target, the datasite's
:class:`~syftflwr.info.TransportContext`, the endpoint) to a file and starts::

    python -m syftflwr.testing.datasite_process SPEC_FILE

The child rebuilds the transport from its entry point (so temporarily registered
transports work too, given the same ``sys.path``), serves an echo handler that answers
``b"<email>:" + body``, prints ``ready`` once serving, and stops cleanly when its stdin
closes. Imports nothing heavy and not pytest.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from syftflwr.info import TransportContext


@dataclass(frozen=True)
class DatasiteSpec:
    name: str
    target: str
    context: TransportContext
    endpoint: str


def reply_for(email: str, body: bytes) -> bytes:
    """What the child answers to ``body`` (the parent checks bytes against it)."""
    return email.encode() + b":" + body


class DatasiteProcess:
    """Parent-side handle on a running child datasite."""

    def __init__(self, spec: DatasiteSpec, workdir: Path, timeout: float = 60.0) -> None:
        self.spec = spec
        spec_file = workdir / f"datasite-{os.getpid()}-{id(self)}.pickle"
        spec_file.write_bytes(
            pickle.dumps({f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)})
        )
        self.log_path = spec_file.with_suffix(".log")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        env.setdefault("FLWR_TELEMETRY_ENABLED", "0")
        self._log: IO[bytes] = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "syftflwr.testing.datasite_process", str(spec_file)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
        )
        assert self.proc.stdout is not None
        ready = _readline(self.proc.stdout, timeout)
        if ready.strip() != b"ready":
            self.stop()
            raise AssertionError(f"the datasite process did not start:\n{self.log}")

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 30.0) -> int:
        """Close its stdin (it stops serving and exits); kill it if it hangs."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()
        return code


def _readline(stream: IO[bytes], timeout: float) -> bytes:
    line: list[bytes] = []
    reader = threading.Thread(target=lambda: line.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return line[0] if line else b""


def _serve(spec: DatasiteSpec) -> int:
    import importlib.metadata

    from syftflwr.envelope import Request
    from syftflwr.hookspecs import ENTRY_POINT_GROUP
    from syftflwr.registry import Registry

    entry_point = importlib.metadata.EntryPoint(
        name=spec.name, value=spec.target, group=ENTRY_POINT_GROUP
    )
    transport = Registry(entry_points=[entry_point], disabled=()).load(spec.name)
    client = transport.make_client(spec.context)
    events = transport.make_events(client, spec.context)
    email = spec.context.require_email()

    def echo(request: Request) -> bytes:
        return reply_for(email, bytes(request.body))

    events.on_request(spec.endpoint, echo)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            events.run_forever()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, name="datasite", daemon=True)
    thread.start()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    sys.stdin.read()  # until the parent closes our stdin
    events.stop()
    thread.join(30)
    events.close()
    client.close()
    if errors:
        print(f"run_forever raised {errors[0]!r}", file=sys.stderr)
        return 1
    return 0 if not thread.is_alive() else 3


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    # a dict, not the dataclass: under ``-m`` this module is ``__main__``
    fields: dict[str, Any] = pickle.loads(Path(args[0]).read_bytes())
    return _serve(DatasiteSpec(**fields))


if __name__ == "__main__":
    raise SystemExit(main())
