"""A runner's replies, as serving and crash recovery both publish them: encoded by the
wire profile, published exclusively in my outbox toward the sender (only one reply
object can exist per request id, so a requester never receives two), error replies for
refusals, and a small reply's encoding handed back for the journal to keep."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from syftflwr.envelope import Buffer, Response
from syftflwr.errors import MessageTooLargeError
from syftflwr.info import Capabilities
from syftflwr.mailbox import chunking
from syftflwr.mailbox.layout import Route
from syftflwr.mailbox.profile import WireProfile, refuse_oversized
from syftflwr.mailbox.storage import Storage

log = logging.getLogger("syftflwr.mailbox")

KEEP_REPLY_LIMIT = 1 << 20
"""Replies up to this many bytes (encoded) are kept in the journal, so a reply lost after
a crash is published again instead of recomputed."""


@dataclass(frozen=True, slots=True)
class Replies:
    """Publishes the replies of ``me`` (serving ``app``) to ``storage``."""

    storage: Storage
    profile: WireProfile
    capabilities: Capabilities
    me: str
    app: str

    def publish(self, route: Route, response: Response) -> bytes | None:
        """Publish ``response``; returns its encoding when small enough to keep in the
        journal (:data:`KEEP_REPLY_LIMIT`). A profile that cannot chunk gets an error
        reply instead of one above ``max_object_size``."""
        parts = self.profile.encode(response)
        size = sum(memoryview(p).nbytes for p in parts)
        if not self.profile.chunking:
            try:
                refuse_oversized(
                    size, self.capabilities.max_object_size, f"the reply to {response.id}",
                    self.profile.name,
                )  # fmt: skip
            except MessageTooLargeError as exc:
                log.warning("%s", exc)
                parts = self.profile.encode(self._error(route, response.id, str(exc)))
                size = sum(memoryview(p).nbytes for p in parts)
        self.publish_encoded(route, response.id, parts)
        if size > KEEP_REPLY_LIMIT:
            return None
        return b"".join(bytes(p) for p in parts)

    def publish_encoded(self, route: Route, message_id: str, parts: list[Buffer]) -> None:
        published = chunking.publish(
            self.storage,
            route.response_path(message_id),
            parts,
            max_object_size=self.capabilities.max_object_size,
            exclusive=True,
        )
        if not published:
            log.info("request %s already has a reply; keeping the first one", message_id)

    def refuse(self, route: Route, message_id: str, reason: str) -> None:
        """Publish the error reply saying why ``message_id`` was refused."""
        self.publish(route, self._error(route, message_id, reason))

    def _error(self, route: Route, message_id: str, reason: str) -> Response:
        return Response(
            id=message_id,
            sender=self.me,
            recipient=route.sender,
            app=self.app,
            endpoint=route.endpoint,
            body=f"rejected: {reason}".encode("utf-8", "replace"),
            status="error",
        )

    def present(self, route: Route, message_id: str) -> bool:
        """Whether my reply to ``message_id`` is in storage (read at most a few KiB: a
        chunked reply's manifest, or the size check of a large one)."""
        try:
            return self.storage.get(route.response_path(message_id), max_size=4096) is not None
        except MessageTooLargeError:
            return True
