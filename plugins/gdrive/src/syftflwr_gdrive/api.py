"""Calling Drive v3 through google-api-python-client: one service per thread (httplib2 is
not thread-safe), retries with exponential backoff and full jitter on rate limits and
server errors, and every other failure mapped onto syftflwr's exception tree.

The service is built from the client library's BUNDLED discovery document (no discovery
request at start-up); ``root_url`` points it elsewhere (the tests' loopback server, a
proxy).
"""

from __future__ import annotations

import functools
import importlib
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from syftflwr.plugin import StorageError

log = logging.getLogger("syftflwr.gdrive")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
FOLDER_MIME = "application/vnd.google-apps.folder"
BATCH_LIMIT = 100
"""Calls per batch request: Drive may refuse a batch of more than 100."""
T = TypeVar("T")


MAX_IDLE = 64
"""Idle services kept (each holds a connection): more threads than that at once build
their own and drop them after."""

RESOURCES = frozenset({"about", "changes", "drives", "files", "permissions"})


class _Service:
    """A google-api-python-client service whose resources are built once."""

    def __init__(self, service: Any) -> None:
        self._service = service
        self._resources: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._service, name)
        if name not in RESOURCES:
            return attribute

        def resource() -> Any:
            built = self._resources.get(name)
            if built is None:
                built = self._resources[name] = attribute()
            return built

        return resource


class DriveAPIError(StorageError):
    """Drive answered with an error status (after retries, for transient ones)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class DriveAuthError(DriveAPIError):
    """The access token expired and could not be renewed (the refresh token was revoked
    or expired): only a new login helps, so it is never retried."""


class DriveNotFoundError(DriveAPIError):
    """The file or folder does not exist (or is not visible to this user)."""


class DriveForbiddenError(DriveAPIError):
    """Drive refused the operation (not the owner, not shared with this user)."""


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter: attempt ``n`` sleeps a random time in
    ``[0, min(cap, base * 2**n)]`` (Google's advice for 429/403-rate/5xx)."""

    retries: int = 8
    base: float = 0.5
    cap: float = 32.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0, min(self.cap, self.base * 2**attempt))


def _reason(exc: Any) -> str:
    try:
        data = json.loads(exc.content)
        return str(data["error"]["errors"][0].get("reason", ""))
    except (ValueError, KeyError, IndexError, TypeError):
        return ""


def is_retryable(status: int, reason: str) -> bool:
    return status in RETRY_STATUSES or (status == 403 and reason in RATE_LIMIT_REASONS)


def load_discovery(root_url: str | None) -> dict[str, Any]:
    """The bundled Drive v3 discovery document, optionally aimed at ``root_url``."""
    from googleapiclient.discovery_cache import get_static_doc

    text = get_static_doc("drive", "v3")
    if not text:
        raise StorageError(
            "google-api-python-client has no bundled Drive v3 discovery document; "
            "fix: pip install -U google-api-python-client"
        )
    doc: dict[str, Any] = json.loads(text)
    if root_url:
        root = root_url if root_url.endswith("/") else root_url + "/"
        doc["rootUrl"] = doc["mtlsRootUrl"] = root
        doc["baseUrl"] = root + doc["servicePath"]
    return doc


class DriveAPI:
    """Thread-safe access to Drive v3 for one set of credentials."""

    def __init__(
        self,
        credentials: Any,
        *,
        root_url: str | None = None,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.credentials = credentials
        self.root_url = root_url
        self.policy = policy or RetryPolicy()
        self._doc = load_discovery(root_url)
        self._idle: list[_Service] = []
        """Services no thread is using: taken by :meth:`session`, given back after, so
        the send threads a push starts (new ones each time) reuse built resources and
        open connections instead of building and connecting again."""
        self._idle_lock = threading.Lock()
        self._sleep = sleep
        self._rng = random.Random()
        self._count_lock = threading.Lock()
        self.calls = 0
        """HTTP requests made (observability; the benchmark of calls per idle poll); a
        batch is one."""
        self.retried = 0

    @contextmanager
    def session(self) -> Iterator[Any]:
        """A Drive service for this thread alone until the block ends (httplib2 is not
        thread-safe): an idle one, or a new one. Its ``files()``, ``permissions()``...
        are built once (google-api-python-client builds a resource anew on every call:
        1.7 ms each, per request)."""
        with self._idle_lock:
            service = self._idle.pop() if self._idle else None
        if service is None:
            from googleapiclient.discovery import build_from_document

            service = _Service(build_from_document(self._doc, credentials=self.credentials))
        try:
            yield service
        finally:
            with self._idle_lock:
                if len(self._idle) < MAX_IDLE:
                    self._idle.append(service)

    def call(self, what: str, make: Callable[[Any], Any]) -> Any:
        """Build a request with ``make(service)`` and execute it, retrying transient
        failures (each attempt builds a fresh request). ``what`` names the object for
        error messages."""

        def once() -> Any:
            with self.session() as service:
                return make(service).execute(num_retries=0)

        return self.retrying(what, once)

    def retrying(self, what: str, attempt_once: Callable[[], T]) -> T:
        """Run ``attempt_once`` (one HTTP exchange, e.g. a resumable upload's
        ``next_chunk``) until it succeeds, backing off on 429, 403 rate limits, 5xx and
        connection errors; other failures become :class:`StorageError`."""
        from google.auth.exceptions import RefreshError
        from google.auth.exceptions import TransportError as AuthTransportError
        from googleapiclient.errors import HttpError

        transport_errors = (
            OSError,
            importlib.import_module("httplib2").HttpLib2Error,
            AuthTransportError,  # the token endpoint unreachable during a refresh
        )

        attempt = 0
        while True:
            with self._count_lock:
                self.calls += 1
            try:
                return attempt_once()
            except HttpError as exc:
                status, reason = int(exc.resp.status), _reason(exc)
                if is_retryable(status, reason) and attempt < self.policy.retries:
                    self._backoff(what, attempt, f"{status} {reason}".strip())
                    attempt += 1
                    continue
                raise self._error(what, status, reason, exc) from exc
            except RefreshError as exc:
                if getattr(exc, "retryable", False) and attempt < self.policy.retries:
                    self._backoff(what, attempt, "token refresh failed")
                    attempt += 1
                    continue
                raise self._auth_error(what, exc) from exc
            except transport_errors as exc:
                if attempt < self.policy.retries:
                    self._backoff(what, attempt, type(exc).__name__)
                    attempt += 1
                    continue
                raise StorageError(
                    f"Google Drive unreachable while working on {what}: {exc}; check the "
                    "network (retried with backoff)"
                ) from exc

    def batch(self, what: str, makes: Sequence[Callable[[Any], Any]]) -> list[Any]:
        """Run the calls built by ``makes(service)`` in as few HTTP requests as Drive
        allows (batches of :data:`BATCH_LIMIT`), their results in order. Drive answers
        each call of a batch on its own: the ones that failed transiently (429, 403 rate
        limits, 5xx) are sent again, in a batch of their own, with backoff; any other
        failure is raised."""
        from googleapiclient.errors import HttpError

        results: list[Any] = [None] * len(makes)
        pending = list(range(len(makes)))
        attempt = 0
        while pending:
            failed: dict[int, HttpError] = {}
            for start in range(0, len(pending), BATCH_LIMIT):
                group = pending[start : start + BATCH_LIMIT]
                send = functools.partial(self._batch_once, makes, group, results, failed)
                self.retrying(what, send)
            pending = sorted(failed)
            for index in pending:
                exc = failed[index]
                status, reason = int(exc.resp.status), _reason(exc)
                if not is_retryable(status, reason) or attempt >= self.policy.retries:
                    raise self._error(what, status, reason, exc) from exc
            if pending:
                self._backoff(what, attempt, f"{len(pending)} of a batch failed")
                attempt += 1
        return results

    def _batch_once(
        self,
        makes: Sequence[Callable[[Any], Any]],
        group: list[int],
        results: list[Any],
        failed: dict[int, Any],
    ) -> None:
        """One batch request of the calls ``group``; each answer lands in ``results``
        or, failed, in ``failed``."""

        def done(request_id: str, response: Any, exception: Exception | None) -> None:
            index = int(request_id)
            if exception is None:
                results[index] = response
                failed.pop(index, None)
            else:
                failed[index] = exception

        with self.session() as service:
            request = service.new_batch_http_request()
            for index in group:
                request.add(makes[index](service), callback=done, request_id=str(index))
            request.execute()

    def _backoff(self, what: str, attempt: int, cause: str) -> None:
        with self._count_lock:
            self.retried += 1
        delay = self.policy.delay(attempt, self._rng)
        log.debug("Drive %s on %s; retry %d in %.2fs", cause, what, attempt + 1, delay)
        self._sleep(delay)

    def _auth_error(self, what: str, exc: Exception) -> DriveAuthError:
        cause = exc.args[0] if exc.args else exc
        path = getattr(self.credentials, "path", None)
        if path is not None:
            fix = (
                f"run `syftflwr gdrive login --token-file {path}` again to sign in (access "
                "was revoked, or unused for too long); a running runner picks the new token "
                "up by itself"
            )
        else:  # Colab's own credentials (or credentials built by hand)
            fix = "sign in again (in Colab: re-run the notebook's authentication cell)"
        return DriveAuthError(
            f"Google Drive access expired and could not be renewed while working on {what} "
            f"({cause}); fix: {fix}",
            401,
        )

    @staticmethod
    def _error(what: str, status: int, reason: str, exc: Any) -> DriveAPIError:
        detail = f"{status} {reason}".strip()
        if status == 404:
            return DriveNotFoundError(f"{what} not found on Google Drive ({detail})", status)
        if status == 401:
            return DriveAPIError(
                f"Google Drive rejected the credentials while working on {what} ({detail}); "
                "fix: log in again with `syftflwr gdrive login` or point token_file at a "
                "valid token",
                status,
            )
        if status == 403:
            return DriveForbiddenError(
                f"Google Drive refused {what} ({detail}): only a file's owner may delete it, "
                "and only folders shared with you are readable; check who owns the object",
                status,
            )
        if is_retryable(status, reason):
            return DriveAPIError(
                f"Google Drive kept failing on {what} ({detail}) after retries with backoff; "
                "try again later or lower the request rate (poll_interval)",
                status,
            )
        return DriveAPIError(f"Google Drive refused {what} ({detail}): {exc}", status)
