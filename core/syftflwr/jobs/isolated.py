"""A ClientApp in a child process: approved code sees messages, never the datasite's keys.

``syftflwr serve`` runs code a data owner approved but did not write. Running it inside
the serving process would hand it the decrypted key store, the transport's credentials
and every other app's state. :class:`IsolatedClientApp` instead starts one child process
per app (:func:`main` with ``APP_DIR``, in the interpreter of that app's
environment) and passes it each decrypted Flower message over a private socket; the
child keeps one Flower ``Context`` per run, exactly as :class:`DatasiteRunner` does
in-process, and answers with the reply. The child gets no ``SYFTFLWR_*`` variable, a
working directory of its own and none of the parent's open files.

This is process isolation, not a sandbox: the child runs as the same user and could
read whatever that user can read. It keeps the approved code away from what the serving
process holds in memory (keys, tokens, the mailbox) and makes its crash or its exit a
failed message instead of a dead datasite.

Protocol (one ``multiprocessing.connection.Connection`` over a socket pair, every frame
``send_bytes``): the child first sends ``{"ready": true}`` or ``{"ready": false,
"error": ...}``; then per message the parent sends a JSON header (``run_id``,
``node_id``, ``node_config``, ``run_config``: null for the app's own) and the encoded
message, and the child
answers ``{"ok": true}`` + the encoded reply or ``{"ok": false, "reason": ...}``.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from flwr.app import Context, Message

from syftflwr.errors import SyftflwrError
from syftflwr.flower.serde import decode_message, encode_message

log = logging.getLogger("syftflwr.jobs")

READY_TIMEOUT = 120.0
"""Seconds a child may take to import its app (Flower, numpy, torch...) before it is
given up on."""
STOP_GRACE = 5.0
CHILD = "import sys; from syftflwr.jobs.isolated import main; sys.exit(main(sys.argv[1:]))"
"""The child's program: this module imported as itself (run as ``__main__``, its imports
of syftflwr's private modules would count as a plugin's and warn)."""
PRIVATE_ENV_PREFIXES = ("SYFTFLWR_",)
"""Variables the child never sees: they locate the participant's keys, tokens and state."""


class IsolatedAppError(SyftflwrError):
    """The app's process could not start, died, or broke the protocol."""


class ClientAppRaisedError(Exception):
    """The ClientApp raised in its process; ``flower_reason`` is the reason Flower would
    have given in-process (``<class 'ValueError'>:<'...'>`` and the last frames)."""

    def __init__(self, flower_reason: str) -> None:
        super().__init__(flower_reason.split("\n", 1)[0])
        self.flower_reason = flower_reason


def child_env(env: Mapping[str, str], workdir: Path) -> dict[str, str]:
    """The parent's environment without what locates the participant's secrets."""
    kept = {k: v for k, v in env.items() if not k.startswith(PRIVATE_ENV_PREFIXES)}
    kept["PWD"] = str(workdir)
    kept.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    return kept


class IsolatedClientApp:
    """A ``(message, context) -> Message`` callable that runs the app in a child process.

    :param app_dir: the unpacked app (its ``pyproject.toml`` names the ClientApp).
    :param python: the interpreter of the app's environment (default: this one).
    :param workdir: the child's working directory (created; default ``app_dir``).
    :param env: the environment to start from (``SYFTFLWR_*`` removed).
    :param own_run_config: the app's Contexts get the run config of its own
        ``pyproject.toml`` (what its data owner approved), not the runner's.

    A child that died is started again for the next message; the message it was
    handling fails with :class:`IsolatedAppError`. Calls are serialised: one child
    handles one message at a time.
    """

    def __init__(
        self,
        app_dir: Path,
        *,
        python: str | Path | None = None,
        workdir: Path | None = None,
        env: Mapping[str, str] | None = None,
        ready_timeout: float = READY_TIMEOUT,
        own_run_config: bool = False,
    ) -> None:
        self.app_dir = Path(app_dir).resolve()
        self.python = str(python or sys.executable)
        self.workdir = Path(workdir or self.app_dir)
        self.env = child_env(os.environ if env is None else env, self.workdir)
        self.ready_timeout = ready_timeout
        self.own_run_config = own_run_config
        self.starts = 0
        """Children started so far (a restart after a crash counts)."""
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        """Whether a child is alive now (a dead one is replaced by the next message)."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the child now (otherwise the first message does) and wait until its app
        is imported; :class:`IsolatedAppError` with the child's own error if it fails."""
        with self._lock:
            self._ensure_started()

    def _ensure_started(self) -> Connection:
        if self._conn is not None and self.running:
            return self._conn
        self._reap()
        self.workdir.mkdir(parents=True, exist_ok=True)
        parent_sock, child_sock = socket.socketpair()
        with parent_sock, child_sock:
            fd = child_sock.fileno()
            proc = subprocess.Popen(
                [self.python, "-c", CHILD, str(self.app_dir), str(fd)],
                cwd=self.workdir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                pass_fds=(fd,),
                close_fds=True,
            )
            conn = Connection(os.dup(parent_sock.fileno()))
        self.starts += 1
        self._proc, self._conn = proc, conn
        if not conn.poll(self.ready_timeout):
            self._reap()
            raise IsolatedAppError(
                f"the app in {self.app_dir} did not start within {self.ready_timeout:.0f} s"
                "\n  fix: check that it imports quickly with its environment's python"
            )
        hello = self._receive_header(conn, "starting")
        if not hello.get("ready"):
            self._reap()
            raise IsolatedAppError(
                f"the app in {self.app_dir} could not be loaded: {hello.get('error')}"
                "\n  fix: fix the app (its ClientApp reference, its imports) and submit it "
                "again"
            )
        log.info("ClientApp of %s started in process %d", self.app_dir.name, proc.pid)
        return conn

    def _receive_header(self, conn: Connection, doing: str) -> dict[str, Any]:
        try:
            header = json.loads(conn.recv_bytes())
        except (EOFError, OSError, ValueError) as exc:
            code = self._proc.wait(STOP_GRACE) if self._proc is not None else None
            self._reap()
            raise IsolatedAppError(
                f"the ClientApp's process ended while {doing} (exit code {code}; its own "
                f"error, if any, is on stderr above): {exc!r}"
            ) from None
        if not isinstance(header, dict):
            self._reap()
            raise IsolatedAppError(f"the ClientApp's process broke the protocol while {doing}")
        return header

    def _reap(self) -> None:
        conn, proc = self._conn, self._proc
        self._conn = self._proc = None
        if conn is not None:
            conn.close()
        if proc is not None:
            try:
                proc.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def close(self) -> None:
        """End the child (it exits when its socket closes; killed after a grace period)."""
        with self._lock:
            self._reap()

    def __enter__(self) -> IsolatedClientApp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ calls
    def __call__(self, message: Message, context: Context) -> Message:
        header = {
            "run_id": context.run_id,
            "node_id": context.node_id,
            "node_config": dict(context.node_config),
            "run_config": None if self.own_run_config else dict(context.run_config),
        }
        body = encode_message(message)
        with self._lock:
            conn = self._ensure_started()
            try:
                conn.send_bytes(json.dumps(header).encode())
                conn.send_bytes(body)
            except OSError as exc:
                self._reap()
                raise IsolatedAppError(f"the ClientApp's process is gone: {exc!r}") from None
            answer = self._receive_header(conn, f"handling message {message.metadata.message_id}")
            if not answer.get("ok"):
                raise ClientAppRaisedError(str(answer.get("reason")))
            try:
                reply = conn.recv_bytes()
            except (EOFError, OSError) as exc:
                self._reap()
                raise IsolatedAppError(
                    f"the ClientApp's process ended mid-reply: {exc!r}"
                ) from None
        return decode_message(reply)


# ---------------------------------------------------------------------- the child
def _serve(app_dir: Path, conn: Connection) -> None:
    from syftflwr.flower.apps import load_client_app, read_app
    from syftflwr.flower.compat import new_context
    from syftflwr.flower.runner import error_reason

    try:
        app = read_app(app_dir)
        client_app = load_client_app(app)
    except Exception as exc:  # the parent reports it; nothing else to do here
        conn.send_bytes(
            json.dumps({"ready": False, "error": f"{type(exc).__name__}: {exc}"}).encode()
        )
        return
    conn.send_bytes(json.dumps({"ready": True}).encode())
    contexts: dict[int, Context] = {}
    while True:
        try:
            header = json.loads(conn.recv_bytes())
            message = decode_message(conn.recv_bytes())
        except EOFError:
            return
        run_id = int(header["run_id"])
        context = contexts.get(run_id)
        if context is None:
            context = contexts[run_id] = new_context(
                run_id=run_id,
                node_id=int(header["node_id"]),
                node_config=header["node_config"],
                run_config=app.run_config if header["run_config"] is None else header["run_config"],
            )
        try:
            reply = client_app(message, context)
            body = encode_message(reply)
        except Exception as exc:
            conn.send_bytes(json.dumps({"ok": False, "reason": error_reason(exc)}).encode())
            continue
        conn.send_bytes(json.dumps({"ok": True}).encode())
        conn.send_bytes(body)


def main(argv: list[str]) -> int:
    app_dir, fd = Path(argv[0]), int(argv[1])
    conn = Connection(fd)
    # The app's prints go to stderr, with its log lines: stdout is the serving command's
    # own output (tables, summaries), which app chatter must not interleave with.
    os.dup2(2, 1)
    try:
        _serve(app_dir, conn)
    finally:
        conn.close()
    return 0
