"""Start ``simulate``'s participants by forking one pre-imported process.

Every participant of a simulation is a ``syftflwr run`` process that imports the same
things — Flower, numpy, the app (scikit-learn for the quickstart), the transport — which
costs each of them about as much as the whole federated run. Instead, ``simulate``
starts ONE *fork server* (a fresh interpreter, ``python -m syftflwr.flower.forkserver``):
it imports all of that once, then forks a participant per request; the participant runs
``python -m syftflwr run ...`` (through :mod:`runpy`) with its own arguments,
environment, working directory, stdout and stderr (pipes of the parent, passed over a
Unix socket), exactly as a spawned one.

Forking is only safe from a process with one thread and nothing a child must not
share: the server starts no thread, pool, channel or watch. It imports with the
numeric libraries' thread pools at one thread (``OMP_NUM_THREADS=1`` and the like,
unless set: a loaded OpenBLAS would otherwise already run threads), and before every
fork checks that it still has exactly one OS thread and no inotify instance; if not —
or if preloading fails, or on a platform without ``pidfd_open`` — it says why and
``simulate`` spawns every participant as before (``SYFTFLWR_SIMULATE_START=spawn``
forces that; ``fork`` makes a refusal an error).

The parent talks to the server over a ``SOCK_SEQPACKET`` pair (one JSON message per
packet, file descriptors alongside): ``start`` (argv, env, cwd, transport; stdout and
stderr fds) -> ``started`` (pid) or ``failed``; ``signal`` (pid, signum); the server
reports ``exited`` (pid, returncode) as each child ends (it is their parent; it waits
on pidfds, no thread and no polling). The server ends when the parent closes the
socket, stopping children that still run.
"""

from __future__ import annotations

import contextlib
import json
import os
import runpy
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Literal

START_ENV = "SYFTFLWR_SIMULATE_START"
StartMethod = Literal["auto", "fork", "spawn"]
THREAD_LIMITS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)
"""Set to 1 (unless set) in the server and its participants: a pool started at import
would make forking unsafe, and N participants share this machine's cores anyway."""
MAX_PACKET = 1 << 20
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def start_method(env: Mapping[str, str]) -> StartMethod:
    value = (env.get(START_ENV) or "auto").strip().lower()
    if value not in ("auto", "fork", "spawn"):
        from syftflwr.errors import ConfigError

        raise ConfigError(
            f"{START_ENV}={value!r} is not a start method",
            key=START_ENV,
            fix=f"set {START_ENV} to auto (the default), fork or spawn",
        )
    return value  # type: ignore[return-value]


def limited_threads(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with every numeric thread pool at one thread, unless set there."""
    out = dict(env)
    for name in THREAD_LIMITS:
        out.setdefault(name, "1")
    return out


def _send(sock: socket.socket, message: Mapping[str, Any], fds: Sequence[int] = ()) -> None:
    data = json.dumps(message).encode()
    if fds:
        socket.send_fds(sock, [data], list(fds))
    else:
        sock.send(data)


def _receive(sock: socket.socket) -> tuple[dict[str, Any] | None, list[int]]:
    data, fds, _flags, _addr = socket.recv_fds(sock, MAX_PACKET, 4)
    if not data:
        return None, fds
    message: dict[str, Any] = json.loads(data)
    return message, fds


# --------------------------------------------------------------------------- parent side
class ForkedProcess:
    """A participant forked by the server, with the part of ``subprocess.Popen``'s
    interface ``simulate`` uses (``pid``, ``stdout``/``stderr``, ``poll``, ``wait``,
    ``send_signal``, ``kill``, ``returncode``)."""

    def __init__(self, server: ForkServer, pid: int, stdout: IO[bytes], stderr: IO[bytes]):
        self.server = server
        self.pid = pid
        self.stdout: IO[bytes] | None = stdout
        self.stderr: IO[bytes] | None = stderr
        self.returncode: int | Any = None

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.server.cond:
            while self.returncode is None:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise subprocess.TimeoutExpired(f"participant {self.pid}", timeout or 0.0)
                if self.server.lost and self.returncode is None:
                    self.returncode = -signal.SIGKILL  # the server died: so did its children
                    break
                self.server.cond.wait(left)
            return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            self.server.signal(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class ForkServer:
    """The parent's handle on a fork server (see the module docstring)."""

    def __init__(self, proc: subprocess.Popen[bytes], sock: socket.socket) -> None:
        self.proc = proc
        self.sock = sock
        self.cond = threading.Condition()
        self.lost = False
        self._ready: tuple[bool, str] | None = None
        self._started: list[dict[str, Any]] = []
        self._children: dict[int, ForkedProcess] = {}
        self._send_lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, name="syftflwr-forkserver", daemon=True)
        self._reader.start()

    @classmethod
    def start(cls, project_dir: Path, env: Mapping[str, str], log: Path) -> ForkServer:
        """Start the server (it imports in the background); :meth:`ready` says whether
        it can fork."""
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "syftflwr.flower.forkserver", str(theirs.fileno()),
                 str(project_dir)],
                env=limited_threads(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                pass_fds=(theirs.fileno(),),
            )  # fmt: skip
        theirs.close()
        return cls(proc, mine)

    def _read(self) -> None:
        try:
            while True:
                message, _fds = _receive(self.sock)
                if message is None:
                    break
                with self.cond:
                    if "ready" in message:
                        self._ready = (bool(message["ready"]), str(message.get("reason", "")))
                    elif "started" in message or "failed" in message:
                        self._started.append(message)
                    elif "exited" in message:
                        child = self._children.get(int(message["exited"]))
                        if child is not None:
                            child.returncode = int(message["returncode"])
                    self.cond.notify_all()
        except OSError:
            pass
        finally:
            with self.cond:
                self.lost = True
                if self._ready is None:
                    self._ready = (False, "the fork server ended while importing (see its log)")
                self.cond.notify_all()

    def ready(self, timeout: float) -> tuple[bool, str]:
        """Whether the server imported everything and may fork, and if not, why."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while self._ready is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False, f"the fork server was not ready within {timeout:.0f} s"
                self.cond.wait(left)
            return self._ready

    def launch(
        self, argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, transport: str
    ) -> ForkedProcess:
        """Fork a participant running ``syftflwr <argv>``.

        :raises OSError: the server could not fork it (the caller spawns it instead).
        """
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        request = {
            "start": {
                "argv": list(argv),
                "env": limited_threads(env),
                "cwd": str(cwd),
                "transport": transport,
            }
        }
        try:
            with self._send_lock, self.cond:
                _send(self.sock, request, (out_w, err_w))
                while not self._started and not self.lost:
                    self.cond.wait()
                if not self._started:
                    raise OSError("the fork server ended")
                reply = self._started.pop(0)
                if "failed" in reply:
                    raise OSError(str(reply["failed"]))
                child = ForkedProcess(
                    self, int(reply["started"]), os.fdopen(out_r, "rb"), os.fdopen(err_r, "rb")
                )
                self._children[child.pid] = child
                return child
        except BaseException:
            for fd in (out_r, err_r):
                with contextlib.suppress(OSError):
                    os.close(fd)
            raise
        finally:
            os.close(out_w)
            os.close(err_w)

    def signal(self, pid: int, signum: int) -> None:
        try:
            with self._send_lock:
                _send(self.sock, {"signal": pid, "signum": int(signum)})
        except OSError:
            pass  # the server is gone, and its children with it

    def close(self, timeout: float = 10.0) -> None:
        """End the server (it stops children still running) and wait for it."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=5.0)


# --------------------------------------------------------------------------- server side
def threads_and_watches() -> str | None:
    """Why forking this process would be unsafe now (None: it is safe)."""
    try:
        tasks = len(list(Path("/proc/self/task").iterdir()))
    except OSError:
        return "cannot count this process's threads (/proc/self/task)"
    if tasks != 1 or threading.active_count() != 1:
        return f"{tasks} threads after importing the app (forking needs one)"
    for fd in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):
            if str(fd.readlink()) == "anon_inode:inotify":
                return "an inotify instance is open after importing the app"
    return None


def preload(project_dir: str) -> str | None:
    """Import what every participant imports; None, or why forking cannot be used."""
    if not hasattr(os, "pidfd_open") or not hasattr(socket, "send_fds"):
        return "this platform has no pidfd_open (Linux only)"
    try:
        import syftflwr.flower.launch  # noqa: F401  (Flower, numpy)
        from syftflwr.flower.apps import load_client_app, load_server_app, read_app

        app = read_app(project_dir)
        load_server_app(app)
        load_client_app(app)
    except Exception as exc:  # the participants report it, as spawned ones would
        return f"preloading the app failed ({type(exc).__name__}: {exc})"
    return threads_and_watches()


def _load_transport(name: str, loaded: set[str]) -> str | None:
    if not name or name in loaded:
        return None
    try:
        from syftflwr.registry import get_registry

        get_registry().load(name)
    except Exception as exc:
        return f"loading the {name!r} transport failed ({type(exc).__name__}: {exc})"
    loaded.add(name)
    return threads_and_watches()


def _child(sock: socket.socket, request: Mapping[str, Any], fds: Sequence[int]) -> None:
    """In the forked child: become the participant, run it, never return."""
    code = 1
    try:
        sock.close()
        out, err = fds
        os.dup2(out, 1)
        os.dup2(err, 2)
        os.close(out)
        os.close(err)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        for stream in (sys.stdout, sys.stderr):
            stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        if "numpy" in sys.modules:  # as a spawned process: not the server's random state
            sys.modules["numpy"].random.seed()
        sys.argv = ["syftflwr", *request["argv"]]
        try:  # what `python -m syftflwr ARGV` runs (core's CLI is above this layer)
            runpy.run_module("syftflwr", run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as exc:
            if isinstance(exc.code, int) or exc.code is None:
                code = exc.code or 0
            else:
                print(exc.code, file=sys.stderr)
                code = 1
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


def serve(sock: socket.socket, project_dir: str) -> None:
    """The server's loop (see the module docstring)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)  # children start blocked too
    reason = preload(project_dir)
    _send(sock, {"ready": reason is None, "reason": reason or ""})
    if reason is not None:
        return
    loaded: set[str] = set()
    children: dict[int, int] = {}  # pidfd -> pid
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ)
    try:
        while True:
            for key, _events in selector.select():
                if key.fileobj is sock:
                    message, fds = _receive(sock)
                    if message is None:
                        return
                    if "start" in message:
                        request = message["start"]
                        problem = _load_transport(str(request.get("transport", "")), loaded)
                        if problem is not None:
                            for fd in fds:
                                os.close(fd)
                            _send(sock, {"failed": problem})
                            continue
                        pid = os.fork()
                        if pid == 0:
                            selector.close()
                            _child(sock, request, fds)
                        for fd in fds:
                            os.close(fd)
                        pidfd = os.pidfd_open(pid)
                        children[pidfd] = pid
                        selector.register(pidfd, selectors.EVENT_READ)
                        _send(sock, {"started": pid})
                    elif "signal" in message:
                        pid = int(message["signal"])
                        if pid in children.values():  # never a pid reused after reaping
                            os.kill(pid, int(message["signum"]))
                else:
                    pidfd = int(key.fd)
                    pid = children.pop(pidfd)
                    selector.unregister(pidfd)
                    os.close(pidfd)
                    _, status = os.waitpid(pid, 0)
                    code = os.waitstatus_to_exitcode(status)
                    _send(sock, {"exited": pid, "returncode": code})
    finally:
        _stop_children(list(children.values()))


def _stop_children(pids: Sequence[int], grace: float = 2.5) -> None:
    """The parent is gone: no participant outlives it (SIGKILL after ``grace``: all gone
    within 5 s of the parent, however their stop goes)."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
    deadline = time.monotonic() + grace
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG) != (0, 0):
                    break
            except ChildProcessError:
                break
            time.sleep(0.05)
        else:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass


if __name__ == "__main__":
    fd, project = int(sys.argv[1]), sys.argv[2]
    try:
        serve(socket.socket(fileno=fd), project)
    finally:  # no interpreter teardown of everything preloaded: nothing is left to save
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
