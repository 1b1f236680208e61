"""A small Google Drive v3 server on loopback, for tests (no Drive emulator exists).

It speaks the subset of the REST API the gdrive transport uses, close enough that the
REAL google-api-python-client drives it (built from its bundled discovery document with
``rootUrl`` pointed here, see :func:`drive_service`):

* several users, told apart by their bearer token; each has a My Drive root folder;
* folders and files with parents; ``permissions.create`` (sharing with another user);
  access follows the permissions of a file and of its ancestors; only the OWNER may
  delete (Drive's rule), and deleting a folder deletes what it contains;
* ``files.list`` with a ``q`` subset (``'X' in parents``, ``name = '...'``, ``name
  contains '...'`` — PREFIX-only, like Drive — ``mimeType =/!= '...'``, ``trashed =
  false``, ``'me' in owners``, ``sharedWithMe``, joined by ``and``) and pagination;
* multipart, simple and resumable uploads (a resumable session's progress can be asked
  for with ``Content-Range: bytes */N``, as a client resuming after a restart does);
  ``alt=media`` downloads with ``Range``;
* batch requests (``POST /batch/drive/v3``, ``multipart/mixed`` of HTTP requests, each
  authorised and answered on its own, as googleapiclient's ``BatchHttpRequest`` sends
  them), parsed with the standard library's MIME parser;
* ``changes.getStartPageToken`` / ``changes.list``: one feed per user covering every
  file the user can access (its own and those shared with it), with pagination;
* ``about.get`` (the token owner's email);
* OAuth: access tokens may expire (:meth:`DriveState.add_user` ``expires_in``,
  :meth:`DriveState.expire`; Drive then answers 401 ``authError`` with
  ``WWW-Authenticate``), and ``POST /token`` serves the authorization-code grant (the
  login flow) and the ``refresh_token`` grant (a new access token for the same user,
  optionally a rotated refresh token; ``invalid_grant`` once revoked,
  :meth:`DriveState.revoke`), counting grants in :attr:`DriveState.grants`;
* fault injection: :meth:`DriveState.inject` makes the next N requests fail with 429,
  403 ``rateLimitExceeded`` or 500, and :attr:`DriveState.calls` counts API calls per
  user and method (the benchmark of API calls per idle poll reads it; each request of a
  batch is one call, as Drive's quota counts them), :attr:`DriveState.http_requests` the
  HTTP requests per user (a batch is one) and :attr:`DriveState.media_bytes` the file
  content received per user; :meth:`DriveState.stall_uploads` holds a resumable upload
  at a given offset (a test kills the uploading process there);
* a slower network, for benchmarks (default off): :attr:`DriveState.latency` seconds
  added to every HTTP request and :attr:`DriveState.upload_rate`, bytes per second that
  each user's requests share (an uplink); :attr:`DriveState.request_bytes` counts the
  body bytes each user sent. ``python drive_server.py --users FILE`` serves in a process
  of its own (:func:`main`), its counters at ``GET /_test/stats``.

Response bodies always carry every field (``fields=`` partial responses are ignored):
the client does not mind extra fields.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.parser
import email.policy
import http.client
import io
import itertools
import json
import re
import sys
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FOLDER = "application/vnd.google-apps.folder"
_EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


class DriveError(Exception):
    """An error response in Drive's JSON shape."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        domain: str = "global",
        headers: dict[str, str] | None = None,
        **detail: str,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.domain = domain
        self.headers = headers or {}
        self.detail = detail
        """Extra fields of the error item (``location``, ``locationType``)."""

    def body(self) -> dict[str, Any]:
        item = {"domain": self.domain, "reason": self.reason, "message": str(self), **self.detail}
        return {"error": {"code": self.code, "message": str(self), "errors": [item]}}


def auth_error() -> DriveError:
    """What Drive answers to a missing, unknown, expired or revoked access token."""
    return DriveError(
        401,
        "authError",
        "Invalid Credentials",
        headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", '
                 'error="invalid_token"'},
        location="Authorization",
        locationType="header",
    )  # fmt: skip


@dataclass
class File:
    id: str
    name: str
    mime_type: str
    owner: str
    parents: list[str]
    created: str
    content: bytes = b""
    writers: set[str] = field(default_factory=set)
    readers: set[str] = field(default_factory=set)
    trashed: bool = False
    app_properties: dict[str, str] = field(default_factory=dict)
    version: int = 1

    def resource(self, users: dict[str, str]) -> dict[str, Any]:
        names = {email: email.split("@")[0] for email in users.values()}
        return {
            "kind": "drive#file",
            "id": self.id,
            "name": self.name,
            "mimeType": self.mime_type,
            "parents": list(self.parents),
            "createdTime": self.created,
            "modifiedTime": self.created,
            "size": str(len(self.content)),
            "trashed": self.trashed,
            "version": str(self.version),
            "appProperties": dict(self.app_properties),
            "owners": [{"emailAddress": self.owner, "displayName": names.get(self.owner, "")}],
            "permissions": [
                {"type": "user", "role": "owner", "emailAddress": self.owner},
                *(
                    {"type": "user", "role": "writer", "emailAddress": w}
                    for w in sorted(self.writers)
                ),
                *(
                    {"type": "user", "role": "reader", "emailAddress": r}
                    for r in sorted(self.readers - self.writers)
                ),
            ],
        }


@dataclass
class _Change:
    seq: int
    file_id: str
    removed: bool
    audience: frozenset[str]
    """Who could access the file when it changed (the file may be gone since)."""
    snapshot: dict[str, Any] | None


@dataclass
class _Upload:
    owner: str
    metadata: dict[str, Any]
    total: int | None
    data: bytearray = field(default_factory=bytearray)
    file_id: str | None = None
    """The file it created, once complete (asking a finished session answers with it)."""


SWITCH_INTERVAL = 0.0005
"""Seconds between GIL hand-offs in a server process of its own (:func:`main`)."""
LINK_BUFFER = 2 * 1024 * 1024
"""Bytes a paced uplink delivers ahead of a late reader (a socket's receive buffer)."""


@dataclass
class _Uplink:
    """One user's uplink (:meth:`DriveState.receiving`): a token bucket."""

    receiving: int = 0
    """Request bodies of the user on their way."""
    at: float = 0.0
    credit: float = 0.0
    """Bytes carried ahead of the reads at :attr:`at`, at most :data:`LINK_BUFFER`;
    negative: bytes read ahead of the link, still to carry."""


class DriveState:
    """Everything the server knows; thread-safe (one lock)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.users: dict[str, str] = {}  # token -> email
        self.files: dict[str, File] = {}
        self.changes: list[_Change] = []
        self.uploads: dict[str, _Upload] = {}
        self.calls: Counter[tuple[str, str]] = Counter()
        self.http_requests: Counter[str] = Counter()
        """HTTP requests per user (a batch of N calls is one)."""
        self.media_bytes: Counter[str] = Counter()
        """File content received per user (uploads of every kind)."""
        self.notify_requested: list[tuple[str, str]] = []
        """``permissions.create`` calls that asked for a notification e-mail (``(user,
        file id)``): Drive's default when ``sendNotificationEmail`` is not false."""
        self._stall_at: int | None = None
        self.stalled = threading.Event()
        """Set when a resumable upload reached the stall offset (:meth:`stall_uploads`)."""
        self._release = threading.Event()
        self._faults: list[tuple[int, str]] = []
        self._clock = itertools.count(1)
        self.oauth_codes: dict[str, str] = {}
        """Authorization code -> the access token ``POST /token`` exchanges it for."""
        self.fault_filter: Callable[[str], bool] | None = None
        self.expiry: dict[str, float] = {}
        """Access token -> when it stops working (``time.time()``); absent: never."""
        self.refresh_tokens: dict[str, str] = {}
        """Refresh token -> its user (revoked ones are removed)."""
        self.token_lifetime = 3600.0
        """Seconds an access token issued by ``POST /token`` lives (``expires_in``)."""
        self.rotate_refresh_tokens = False
        """The refresh grant issues a new refresh token and revokes the one it used."""
        self.token_delay = 0.0
        """Seconds ``POST /token`` takes (makes concurrent refreshes overlap in tests)."""
        self.requests_per_token: int | None = None
        """An access token stops working after this many requests (expiry mid-run,
        deterministically, in every code path); None: no limit."""
        self._uses: Counter[str] = Counter()
        self.grants: Counter[str] = Counter()
        """``POST /token`` answers: successful grants by ``grant_type``, refusals as
        ``invalid_grant``."""
        self.rejected: Counter[str] = Counter()
        """401 answers, by the user whose (expired) access token was refused."""
        self.latency = 0.0
        """Seconds every HTTP request waits before it is answered (a batch is one
        request): the network's round trip, for benchmarks. 0: none."""
        self.upload_rate: float | None = None
        """Bytes per second that the request bodies of each user share, however many
        requests are in flight (that user's uplink), for benchmarks. None: no cap."""
        self.request_bytes: Counter[str] = Counter()
        """Request body bytes received per user (uploads, metadata, batches): what the
        user sent to Drive."""
        self._uplinks: dict[str, _Uplink] = {}

    # -- set-up and observation (tests) ------------------------------------------------------
    def add_user(
        self, email_address: str, token: str | None = None, *, expires_in: float | None = None
    ) -> str:
        """Register a user and its My Drive root; returns its bearer token (valid for
        ``expires_in`` seconds, forever by default)."""
        token = token or f"token-{uuid.uuid4().hex}"
        with self.lock:
            self.users[token] = email_address
            if expires_in is not None:
                self.expiry[token] = time.time() + expires_in
            root = self.root_id(email_address)
            if root not in self.files:
                self.files[root] = File(root, "My Drive", FOLDER, email_address, [], self._now())
        return token

    def refresh_token_for(self, email_address: str) -> str:
        """A new refresh token of ``email_address`` (as a consent would grant)."""
        refresh = f"refresh-{uuid.uuid4().hex}"
        with self.lock:
            self.refresh_tokens[refresh] = email_address
        return refresh

    def expire(self, access_token: str) -> None:
        """``access_token`` stops working now (Drive answers 401), as after an hour."""
        with self.lock:
            self.expiry[access_token] = 0.0

    def expire_all(self, email_address: str) -> None:
        """Every access token of ``email_address`` stops working now."""
        with self.lock:
            for token in [t for t, user in self.users.items() if user == email_address]:
                self.expiry[token] = 0.0

    def revoke(self, refresh_token: str) -> None:
        """The user revoked the app's access: the refresh grant answers ``invalid_grant``."""
        with self.lock:
            self.refresh_tokens.pop(refresh_token, None)

    def user_of(self, access_token: str) -> str | None:
        """The owner of a live access token; None if unknown or expired."""
        with self.lock:
            user = self.users.get(access_token)
            if user is None:
                return None
            self._uses[access_token] += 1
            worn = self.requests_per_token is not None and (
                self._uses[access_token] > self.requests_per_token
            )
            if worn or self.expiry.get(access_token, float("inf")) <= time.time():
                self.rejected[user] += 1
                return None
            return user

    def grant(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """``POST /token``: the authorization-code and refresh-token grants."""
        if self.token_delay:
            time.sleep(self.token_delay)
        kind = form.get("grant_type")
        with self.lock:
            if kind == "authorization_code":
                access = self.oauth_codes.pop(form.get("code", ""), None)
                if access is None:
                    self.grants["invalid_grant"] += 1
                    return 400, {"error": "invalid_grant", "error_description": "Bad Request"}
                refresh = f"refresh-{access}"
                self.refresh_tokens[refresh] = self.users[access]
            elif kind == "refresh_token":
                used = form.get("refresh_token", "")
                user = self.refresh_tokens.get(used)
                if user is None:
                    self.grants["invalid_grant"] += 1
                    return 400, {
                        "error": "invalid_grant",
                        "error_description": "Token has been expired or revoked.",
                    }
                access = self.add_user(user, expires_in=self.token_lifetime)
                refresh = used
                if self.rotate_refresh_tokens:
                    del self.refresh_tokens[used]
                    refresh = self.refresh_token_for(user)
            else:
                return 400, {"error": "unsupported_grant_type"}
            self.grants[kind] += 1
        out = {
            "access_token": access,
            "expires_in": int(self.token_lifetime),
            "token_type": "Bearer",
            "scope": "https://www.googleapis.com/auth/drive",
        }
        if kind == "authorization_code" or refresh != form.get("refresh_token"):
            out["refresh_token"] = refresh  # Google omits it when it is unchanged
        return 200, out

    @staticmethod
    def root_id(email_address: str) -> str:
        return "root-" + re.sub(r"[^A-Za-z0-9]", "-", email_address)

    def inject(self, status: int, count: int = 1, reason: str | None = None) -> None:
        """The next ``count`` requests fail with ``status`` (429, 403 rate limit, 500...)."""
        default = {429: "rateLimitExceeded", 403: "rateLimitExceeded", 500: "backendError"}
        with self.lock:
            self._faults.extend([(status, reason or default.get(status, "error"))] * count)

    def stall_uploads(self, offset: int | None) -> None:
        """Hold every resumable chunk that starts at or past ``offset`` unapplied (the
        request gets no answer until :meth:`release_uploads`, then a 503), so a test can
        kill the uploading process mid-upload; None: no stall."""
        with self.lock:
            self._stall_at = offset
            self.stalled.clear()
            self._release.clear()

    def release_uploads(self) -> None:
        """Answer the held chunks (503, nothing applied) and stop stalling."""
        with self.lock:
            self._stall_at = None
        self._release.set()

    def hold_chunk(self, start: int) -> bool:
        """Whether a chunk starting at ``start`` is held (waits for the release)."""
        with self.lock:
            held = self._stall_at is not None and start >= self._stall_at
        if held:
            self.stalled.set()
            self._release.wait()
        return held

    @contextmanager
    def receiving(self, user: str) -> Iterator[Callable[[int], None]]:
        """Receive one request body of ``user`` at :attr:`upload_rate`, which the user's
        concurrent requests share (an uplink): yields ``pace(size)``, which returns once
        the link carried the body's next ``size`` bytes.

        The link keeps carrying while the server's reading thread is late (a handler of
        this one-process server holds the GIL): into the socket buffer, so while a body
        is on its way up to :data:`LINK_BUFFER` bytes of credit build up for its late
        reads. Each request takes its own bytes from that credit and nothing else: a
        3 kB message arriving in the middle of an upload costs the upload 3 kB of link
        time. A body never arrives faster than the link since its request started, and
        an idle link holds no credit (nothing was on its way)."""
        started, sent = time.monotonic(), 0

        def pace(size: int) -> None:
            nonlocal sent
            if not self.upload_rate:
                return
            rate = self.upload_rate
            with self.lock:
                now = time.monotonic()
                link = self._uplinks[user]
                link.credit = min(float(LINK_BUFFER), link.credit + (now - link.at) * rate)
                link.credit -= size
                link.at = now
                done = max(now - min(0.0, link.credit) / rate, started + (sent + size) / rate)
            sent += size
            time.sleep(max(0.0, done - now))

        with self.lock:
            link = self._uplinks.setdefault(user, _Uplink())
            if not link.receiving:  # an idle link: nothing was on its way, no credit
                link.at, link.credit = started, 0.0
            link.receiving += 1
        try:
            yield pace
        finally:
            with self.lock:
                self._uplinks[user].receiving -= 1

    def stats(self) -> dict[str, Any]:
        """The counters, JSON-ready (``GET /_test/stats`` of a server in its own process)."""
        with self.lock:
            calls: dict[str, dict[str, int]] = {}
            for (user, method), n in self.calls.items():
                calls.setdefault(user, {})[method] = n
            return {
                "calls": calls,
                "http_requests": dict(self.http_requests),
                "media_bytes": dict(self.media_bytes),
                "request_bytes": dict(self.request_bytes),
                "notify_requested": len(self.notify_requested),
            }

    def calls_by(self, email_address: str) -> Counter[str]:
        with self.lock:
            return Counter({m: n for (u, m), n in self.calls.items() if u == email_address})

    def find(self, name: str) -> list[File]:
        with self.lock:
            return [f for f in self.files.values() if f.name == name]

    # -- internals ----------------------------------------------------------------------------
    def _now(self) -> str:
        tick = next(self._clock)
        return (_EPOCH + dt.timedelta(microseconds=tick)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def take_fault(self, method: str) -> DriveError | None:
        with self.lock:
            if not self._faults or (self.fault_filter and not self.fault_filter(method)):
                return None
            status, reason = self._faults.pop(0)
        domain = (
            "usageLimits"
            if reason.endswith("RateLimitExceeded") or reason == ("rateLimitExceeded")
            else "global"
        )
        return DriveError(status, reason, f"injected {status} {reason}", domain)

    def ancestors(self, f: File) -> Iterator[File]:
        seen: set[str] = set()
        todo = list(f.parents)
        while todo:
            pid = todo.pop()
            if pid in seen or pid not in self.files:
                continue
            seen.add(pid)
            parent = self.files[pid]
            yield parent
            todo.extend(parent.parents)

    def can_read(self, user: str, f: File) -> bool:
        if self.can_write(user, f) or user in f.readers:
            return True
        return any(user in a.readers for a in self.ancestors(f))

    def can_write(self, user: str, f: File) -> bool:
        if f.owner == user or user in f.writers:
            return True
        return any(a.owner == user or user in a.writers for a in self.ancestors(f))

    def audience(self, f: File) -> frozenset[str]:
        people = {f.owner, *f.writers, *f.readers}
        for a in self.ancestors(f):
            people |= {a.owner, *a.writers, *a.readers}
        return frozenset(people)

    def record(self, f: File, *, removed: bool = False) -> None:
        snapshot = None if removed else f.resource(self.users)
        self.changes.append(
            _Change(len(self.changes) + 1, f.id, removed, self.audience(f), snapshot)
        )

    def get_file(self, user: str, file_id: str) -> File:
        if file_id == "root":
            file_id = self.root_id(user)
        f = self.files.get(file_id)
        if f is None or not self.can_read(user, f):
            raise DriveError(404, "notFound", f"File not found: {file_id}.")
        return f

    def create(self, user: str, metadata: dict[str, Any], content: bytes) -> File:
        name = metadata.get("name") or "Untitled"
        parents = [
            self.root_id(user) if p == "root" else p for p in (metadata.get("parents") or ["root"])
        ]
        for pid in parents:
            parent = self.get_file(user, pid)
            if parent.mime_type != FOLDER:
                raise DriveError(400, "invalidParent", f"parent {pid} is not a folder")
            if not self.can_write(user, parent):
                raise DriveError(403, "insufficientFilePermissions", "cannot write there")
        f = File(
            id=uuid.uuid4().hex,
            name=name,
            mime_type=metadata.get("mimeType") or "application/octet-stream",
            owner=user,
            parents=parents,
            created=self._now(),
            content=content,
            app_properties=dict(metadata.get("appProperties") or {}),
        )
        self.files[f.id] = f
        self.record(f)
        return f

    def delete(self, user: str, file_id: str) -> None:
        f = self.get_file(user, file_id)
        if f.owner != user:
            raise DriveError(
                403,
                "insufficientFilePermissions",
                "The user does not have sufficient permissions for this file.",
            )
        doomed = [f, *(g for g in self.files.values() if f in self.ancestors(g))]
        for g in doomed:
            self.record(g, removed=True)
        for g in doomed:
            self.files.pop(g.id, None)

    def share(
        self, user: str, file_id: str, body: dict[str, Any], *, notify: bool = True
    ) -> dict[str, Any]:
        f = self.get_file(user, file_id)
        if not self.can_write(user, f):
            raise DriveError(403, "insufficientFilePermissions", "cannot share this file")
        role, email_address = body.get("role"), body.get("emailAddress")
        if body.get("type") != "user" or role not in ("writer", "reader") or not email_address:
            raise DriveError(400, "invalid", "only user permissions with a role are supported")
        if notify:
            self.notify_requested.append((user, file_id))
        (f.writers if role == "writer" else f.readers).add(email_address)
        for g in [f, *(g for g in self.files.values() if f in self.ancestors(g))]:
            self.record(g)
        return {
            "kind": "drive#permission",
            "id": f"perm-{email_address}",
            "type": "user",
            "role": role,
            "emailAddress": email_address,
        }

    def list_files(self, user: str, params: dict[str, str]) -> dict[str, Any]:
        match = compile_query(params.get("q", ""), user, self)
        size = min(int(params.get("pageSize", 100)), 1000)
        start = int(params.get("pageToken", 0) or 0)
        hits = [
            f
            for f in sorted(self.files.values(), key=lambda f: (f.created, f.id))
            if self.can_read(user, f) and f.id != self.root_id(f.owner) and match(f)
        ]
        page = hits[start : start + size]
        out: dict[str, Any] = {
            "kind": "drive#fileList",
            "files": [f.resource(self.users) for f in page],
        }
        if start + size < len(hits):
            out["nextPageToken"] = str(start + size)
        return out

    def list_changes(self, user: str, params: dict[str, str]) -> dict[str, Any]:
        token = params.get("pageToken")
        if not token or not token.isdigit():
            raise DriveError(400, "invalid", "pageToken is required")
        size = min(int(params.get("pageSize", 100)), 1000)
        out: list[dict[str, Any]] = []
        seq = int(token)
        last = len(self.changes)
        while seq <= last and len(out) < size:
            change = self.changes[seq - 1]
            seq += 1
            if user not in change.audience:
                continue
            item: dict[str, Any] = {
                "kind": "drive#change",
                "changeType": "file",
                "fileId": change.file_id,
                "removed": change.removed,
                "time": self._now(),
            }
            if change.snapshot is not None:
                item["file"] = change.snapshot
            out.append(item)
        result: dict[str, Any] = {"kind": "drive#changeList", "changes": out}
        if seq <= last:
            result["nextPageToken"] = str(seq)
        else:
            result["newStartPageToken"] = str(last + 1)
        return result


# --------------------------------------------------------------------------- the q grammar
_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^'\\]|\\.)*')|(?P<op>!=|=|\(|\))|(?P<word>[A-Za-z_][A-Za-z0-9_]*))"
)


def _tokens(q: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    q = q.strip()
    while pos < len(q):
        m = _TOKEN.match(q, pos)
        if m is None:
            raise DriveError(400, "invalidQuery", f"Invalid query near {q[pos:]!r}")
        pos = m.end()
        kind = m.lastgroup or ""
        text = m.group(kind)
        if kind == "str":
            text = re.sub(r"\\(.)", r"\1", text[1:-1])
        out.append((kind, text))
    return out


def compile_query(q: str, user: str, state: DriveState) -> Callable[[File], bool]:
    """A predicate for Drive's ``q`` (the subset this server supports; anything else is
    a 400, so a client relying on more shows up in tests)."""
    tokens = _tokens(q)
    clauses: list[Callable[[File], bool]] = []
    i = 0

    def bad() -> DriveError:
        return DriveError(400, "invalidQuery", f"Invalid Value: unsupported query {q!r}")

    while i < len(tokens):
        t = tokens[i : i + 3]
        kinds = [k for k, _ in t]
        if kinds[:3] == ["str", "word", "word"] and t[1][1] == "in":
            value, target = t[0][1], t[2][1]
            if target == "parents":
                pid = state.root_id(user) if value == "root" else value
                clauses.append(lambda f, pid=pid: pid in f.parents)
            elif target == "owners":
                who = user if value == "me" else value
                clauses.append(lambda f, who=who: f.owner == who)
            else:
                raise bad()
            i += 3
        elif kinds[:1] == ["word"] and t[0][1] == "sharedWithMe":
            clauses.append(lambda f: f.owner != user and user in f.writers | f.readers)
            i += 1
        elif len(t) == 3 and kinds[0] == "word" and t[1][1] in ("=", "!=", "contains"):
            fname, op, (vkind, value) = t[0][1], t[1][1], t[2]
            getter: Callable[[File], Any]
            if fname == "name":
                getter = lambda f: f.name  # noqa: E731
            elif fname == "mimeType":
                getter = lambda f: f.mime_type  # noqa: E731
            elif fname == "trashed" and vkind == "word" and value in ("true", "false"):
                getter, value = (lambda f: f.trashed), value == "true"
            else:
                raise bad()
            if op == "=":
                clauses.append(lambda f, g=getter, v=value: g(f) == v)
            elif op == "!=":
                clauses.append(lambda f, g=getter, v=value: g(f) != v)
            elif fname == "name":  # Drive's `contains` on names matches prefixes only
                clauses.append(lambda f, g=getter, v=value: g(f).startswith(v))
            else:
                raise bad()
            i += 3
        else:
            raise bad()
        if i < len(tokens):
            if tokens[i] != ("word", "and"):
                raise bad()
            i += 1
            if i == len(tokens):
                raise bad()
    return lambda f: all(c(f) for c in clauses)


# --------------------------------------------------------------------------- HTTP
class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    # -- plumbing -----------------------------------------------------------------------------
    _reply: tuple[int, bytes, dict[str, str], str]
    """The answer being built (one request of a batch, or the request itself)."""

    def _send(
        self,
        status: int,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        content_type: str = "application/json; charset=UTF-8",
    ) -> None:
        self._reply = (status, body, dict(headers or {}), content_type)

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers)

    def _write(self, status: int, body: bytes, headers: dict[str, str], content_type: str) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        if body or status not in (204, 308):
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _user(self) -> str:
        auth = self.headers.get("Authorization", "")
        user = self.server.state.user_of(auth.removeprefix("Bearer ").strip()) if auth else None
        if user is None:
            raise auth_error()
        return user

    def _serve(self, verb: str) -> None:
        body = self._body()
        if self.server.state.latency:
            time.sleep(self.server.state.latency)
        if urllib.parse.urlsplit(self.path).path == "/token" and verb == "POST":
            self._token_endpoint(body)
        elif urllib.parse.urlsplit(self.path).path == "/_test/stats" and verb == "GET":
            self._json(200, self.server.state.stats())
        elif urllib.parse.urlsplit(self.path).path == "/batch/drive/v3" and verb == "POST":
            self._batch(body)
        else:
            self._answer(verb, self.path, body, counted=True)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a killed client
            self._write(*self._reply)

    def _body(self) -> bytes:
        """The request body, read at the sender's :attr:`DriveState.upload_rate` and
        counted in :attr:`DriveState.request_bytes` (by the bearer token's user)."""
        length = int(self.headers.get("Content-Length") or 0)
        if not length:
            return b""
        state = self.server.state
        token = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        with state.lock:
            user = state.users.get(token, "?")
            state.request_bytes[user] += length
        if not state.upload_rate:
            return self.rfile.read(length)
        body = bytearray()
        with state.receiving(user) as pace:
            while len(body) < length:
                piece = self.rfile.read(min(length - len(body), 256 * 1024))
                if not piece:
                    break
                pace(len(piece))
                body += piece
        return bytes(body)

    def _answer(self, verb: str, target: str, body: bytes, *, counted: bool) -> None:
        """Answer one API call (into :attr:`_reply`); ``counted``: an HTTP request of
        its own (not one of a batch)."""
        url = urllib.parse.urlsplit(target)
        params = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        state = self.server.state
        try:
            user = self._user()
            method = self._route(verb, url.path, params)
            with state.lock:
                state.calls[(user, method)] += 1
                state.http_requests[user] += counted
            fault = state.take_fault(method)
            if fault is not None:
                raise fault
            if method == "files.upload" and state.hold_chunk(self._chunk_start()):
                raise DriveError(503, "backendError", "upload held by the test, then dropped")
            self._dispatch(method, user, verb, url.path, params, body)
        except DriveError as exc:
            self._json(exc.code, exc.body(), exc.headers)

    def _batch(self, body: bytes) -> None:
        """A batch: each ``application/http`` part is one API call, authorised, counted
        and answered on its own; the answers go back as ``multipart/mixed`` whose parts'
        Content-IDs are ``response-`` + the request's. Parsed and written with the
        standard library's MIME package (googleapiclient reads the answer with it too)."""
        try:
            user = self._user()
        except DriveError as exc:
            self._json(exc.code, exc.body(), exc.headers)
            return
        with self.server.state.lock:
            self.server.state.http_requests[user] += 1
        head = f"Content-Type: {self.headers.get('Content-Type', '')}\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
        if not message.is_multipart():
            self._json(400, DriveError(400, "invalid", "a batch is multipart/mixed").body())
            return
        answer = MIMEMultipart("mixed")
        outer = self.headers
        try:
            for part in message.iter_parts():
                request = part.get_payload(decode=True)
                assert isinstance(request, bytes)
                line, _, rest = request.partition(b"\n")
                verb, target, _version = line.decode().strip().split(" ", 2)
                stream = io.BytesIO(rest)
                self.headers = http.client.parse_headers(stream)
                inner = stream.read()
                length = self.headers.get("Content-Length")
                self._answer(verb, target, inner[: int(length)] if length else b"", counted=False)
                status, data, headers, content_type = self._reply
                lines = [f"HTTP/1.1 {status} {http.client.responses.get(status, '')}"]
                lines += [f"{k}: {v}" for k, v in {**headers, "Content-Type": content_type}.items()]
                reply = MIMENonMultipart("application", "http")
                reply["Content-ID"] = "<response-" + str(part["Content-ID"]).strip("<>") + ">"
                reply.set_payload("\r\n".join(lines) + "\r\n\r\n" + data.decode())
                answer.attach(reply)
        finally:
            self.headers = outer
        text = answer.as_bytes(policy=email.policy.HTTP)
        _, _, payload = text.partition(b"\r\n\r\n")  # the body, after the outer headers
        self._send(200, payload, content_type=f"multipart/mixed; boundary={answer.get_boundary()}")

    def _chunk_start(self) -> int:
        m = re.fullmatch(r"bytes (\d+)-\d+/(?:\d+|\*)", self.headers.get("Content-Range", ""))
        return int(m.group(1)) if m else -1

    @staticmethod
    def _route(verb: str, path: str, params: dict[str, str]) -> str:
        if path.startswith("/upload/drive/v3/files"):
            return "files.create" if "upload_id" not in params else "files.upload"
        rest = path.removeprefix("/drive/v3/")
        if rest == "files":
            return {"GET": "files.list", "POST": "files.create"}.get(verb, "?")
        if rest.startswith("files/") and rest.endswith("/permissions"):
            return "permissions.create"
        if rest.startswith("files/"):
            return {"GET": "files.get", "DELETE": "files.delete"}.get(verb, "?")
        return {
            "about": "about.get",
            "changes/startPageToken": "changes.getStartPageToken",
            "changes": "changes.list",
        }.get(rest, "?")

    def _dispatch(
        self, method: str, user: str, verb: str, path: str, params: dict[str, str], body: bytes
    ) -> None:
        state = self.server.state
        with state.lock:
            if method == "about.get":
                self._json(
                    200,
                    {
                        "kind": "drive#about",
                        "user": {
                            "emailAddress": user,
                            "displayName": user.split("@", maxsplit=1)[0],
                        },
                    },
                )
            elif method == "files.list":
                self._json(200, state.list_files(user, params))
            elif method == "files.get":
                f = state.get_file(user, path.rsplit("/", 1)[1])
                if params.get("alt") == "media":
                    self._media(f)
                else:
                    self._json(200, f.resource(state.users))
            elif method == "files.delete":
                state.delete(user, path.rsplit("/", 1)[1])
                self._send(204)
            elif method == "permissions.create":
                file_id = path.split("/")[-2]
                notify = params.get("sendNotificationEmail", "true") != "false"
                body_json = json.loads(body or b"{}")
                self._json(200, state.share(user, file_id, body_json, notify=notify))
            elif method == "changes.getStartPageToken":
                self._json(200, {"startPageToken": str(len(state.changes) + 1)})
            elif method == "changes.list":
                self._json(200, state.list_changes(user, params))
            elif method == "files.create":
                self._create(user, params, body)
            elif method == "files.upload":
                self._upload_chunk(user, params, body)
            else:
                raise DriveError(404, "notFound", f"no such method: {verb} {path}")

    def _token_endpoint(self, body: bytes) -> None:
        """OAuth 2.0 token endpoint (see :meth:`DriveState.grant`)."""
        status, answer = self.server.state.grant(dict(urllib.parse.parse_qsl(body.decode())))
        self._json(status, answer)

    def _media(self, f: File) -> None:
        data, total = f.content, len(f.content)
        spec = self.headers.get("Range")
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", spec or "")
        if not m:
            self._send(200, data, content_type="application/octet-stream")
            return
        start = int(m.group(1))
        end = min(int(m.group(2)) if m.group(2) else total - 1, total - 1)
        if start >= total and total:
            self._send(416, b"", {"Content-Range": f"bytes */{total}"})
            return
        self._send(
            206,
            data[start : end + 1],
            {"Content-Range": f"bytes {start}-{end}/{total}"},
            content_type="application/octet-stream",
        )

    def _create(self, user: str, params: dict[str, str], body: bytes) -> None:
        state = self.server.state
        kind = params.get("uploadType")
        if kind is None:
            f = state.create(user, json.loads(body or b"{}"), b"")
        elif kind == "media":
            state.media_bytes[user] += len(body)
            f = state.create(user, {}, body)
        elif kind == "multipart":
            metadata, content = _split_multipart(self.headers.get("Content-Type", ""), body)
            state.media_bytes[user] += len(content)
            f = state.create(user, metadata, content)
        elif kind == "resumable":
            upload_id = uuid.uuid4().hex
            total = self.headers.get("X-Upload-Content-Length")
            state.uploads[upload_id] = _Upload(
                user, json.loads(body or b"{}"), int(total) if total else None
            )
            host = self.headers.get("Host", "127.0.0.1")
            location = (
                f"http://{host}/upload/drive/v3/files?uploadType=resumable&upload_id={upload_id}"
            )
            self._send(200, b"", {"Location": location})
            return
        else:
            raise DriveError(400, "invalid", f"unsupported uploadType {kind}")
        self._json(200, f.resource(state.users))

    def _upload_chunk(self, user: str, params: dict[str, str], body: bytes) -> None:
        state = self.server.state
        upload = state.uploads.get(params["upload_id"])
        if upload is None or upload.owner != user:
            raise DriveError(404, "notFound", "upload session not found")
        if upload.file_id is not None:
            self._json(200, state.get_file(user, upload.file_id).resource(state.users))
            return
        spec = self.headers.get("Content-Range", "")
        m = re.fullmatch(r"bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)", spec)
        if not m:
            raise DriveError(400, "invalid", f"bad Content-Range {spec!r}")
        if m.group(3) != "*":
            upload.total = int(m.group(3))
        if m.group(1) is not None:
            start = int(m.group(1))
            if start != len(upload.data):
                raise DriveError(400, "invalid", "chunk does not continue the upload")
            upload.data += body
            state.media_bytes[user] += len(body)
        if upload.total is not None and len(upload.data) >= upload.total:
            f = state.create(user, upload.metadata, bytes(upload.data))
            upload.file_id, upload.data = f.id, bytearray()
            self._json(200, f.resource(state.users))
            return
        headers = {"Range": f"bytes=0-{len(upload.data) - 1}"} if upload.data else {}
        self._send(308, b"", headers)


def _split_multipart(content_type: str, body: bytes) -> tuple[dict[str, Any], bytes]:
    """The metadata and media parts of a multipart/related upload, byte-exact.

    Not Python's email parser: it is line-based, so media ending in CR or LF lost its
    last byte (1 message in 128 once bodies were ciphertext). Not python-multipart
    either: it requires CRLF delimiters, and googleapiclient writes LF (checked with
    python-multipart 0.0.34: "Did not find CR at end of boundary"); werkzeug's parser
    wants form-data. Per RFC 2046 the line break before each delimiter belongs to the
    delimiter; the client's line break (googleapiclient writes LF, others CRLF) is read
    from the first delimiter line. Batches (text only) use the email parser."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not match:
        raise DriveError(400, "invalid", "multipart upload without a boundary")
    chunks = body.split(b"--" + match.group(1).encode())
    if len(chunks) < 3:
        raise DriveError(400, "invalid", "multipart upload needs metadata and media parts")
    linesep = b"\r\n" if chunks[1].startswith(b"\r\n") else b"\n"
    parts = []
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):  # the close delimiter
            break
        part = chunk.removeprefix(linesep).removesuffix(linesep)
        _headers, sep, content = part.partition(linesep + linesep)
        if not sep:
            raise DriveError(400, "invalid", "a multipart part without headers")
        parts.append(content)
    if len(parts) != 2:
        raise DriveError(400, "invalid", "multipart upload needs metadata and media parts")
    return json.loads(parts[0] or b"{}"), parts[1]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: DriveState

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away (a killed process) is not the server's error."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextmanager
def running_drive(state: DriveState | None = None) -> Iterator[tuple[DriveState, str]]:
    """Serve a :class:`DriveState` on 127.0.0.1 (a free port); yields it and the root URL."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.state = state or DriveState()
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="drive-server", daemon=True
    )
    thread.start()
    try:
        yield server.state, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def drive_service(root_url: str, token: str) -> Any:
    """The REAL google-api-python-client Drive v3 service, from its bundled discovery
    document, aimed at ``root_url`` and authorised by ``token``."""
    from google.oauth2.credentials import Credentials
    from googleapiclient.discovery import build_from_document
    from googleapiclient.discovery_cache import get_static_doc

    doc = json.loads(get_static_doc("drive", "v3") or "{}")
    doc["rootUrl"] = root_url
    doc["mtlsRootUrl"] = root_url
    doc["baseUrl"] = root_url + doc["servicePath"]
    return build_from_document(doc, credentials=Credentials(token=token))


def main(argv: list[str] | None = None) -> None:
    """Serve in this process until killed (a benchmark's Drive, off the benchmark's GIL):
    prints the root URL, then answers; ``--users`` is a JSON file ``{email: token}``."""
    import argparse
    import pathlib

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--users", type=pathlib.Path, required=True)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per HTTP request")
    parser.add_argument("--upload-rate", type=float, default=None, help="bytes/s per user")
    args = parser.parse_args(argv)
    # This process stands in for Drive's many frontends: a thread woken to read an
    # upload's next bytes must not wait out a 5 ms GIL slice of a handler parsing another
    # request (CPython's default switch interval). With 50 messages created beside a
    # model's upload it did, ~400 times, and the upload took ~0.1-0.2 s longer than alone.
    sys.setswitchinterval(SWITCH_INTERVAL)
    state = DriveState()
    state.latency, state.upload_rate = args.latency, args.upload_rate
    for email_address, token in json.loads(args.users.read_text()).items():
        state.add_user(email_address, token)
    server = _Server(("127.0.0.1", 0), _Handler)
    server.state = state
    print(f"http://127.0.0.1:{server.server_address[1]}/", flush=True)
    server.serve_forever(0.05)


if __name__ == "__main__":
    main()
