"""Validation of every name that may end up in a path: emails, app names, endpoints, ids.

One source of truth: config, envelopes and the mailbox layout all validate through
these functions, so no message field or config value can ever address a file outside
its mailbox (no ``/``, ``\\``, ``..``, NUL, leading dot, or over-long component).
"""

from __future__ import annotations

import re
import uuid

from syftflwr.errors import UnsafeNameError

_EMAIL = re.compile(
    r"^[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,62}[A-Za-z0-9_%+-])?"  # local part, no leading/trailing dot
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)
_IDENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_MESSAGE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{7,127}$")


def _reject(kind: str, value: object, rule: str) -> UnsafeNameError:
    return UnsafeNameError(f"invalid {kind} {value!r}: {rule}")


def validate_email(value: object) -> str:
    """Return the email if it is a plain address safe to use as one path component."""
    if (
        not isinstance(value, str)
        or len(value) > 254
        or not _EMAIL.fullmatch(value)
        or ".." in value
    ):
        raise _reject("email", value, "expected a plain address like alice@example.org")
    return value


def validate_identifier(value: object, kind: str = "name") -> str:
    """App names and endpoints: letters, digits, ``_ . -``; 1-64 chars; no ``..``."""
    if not isinstance(value, str) or not _IDENT.fullmatch(value) or ".." in value:
        raise _reject(
            kind,
            value,
            "use 1-64 letters, digits, '_', '.', '-', starting with a letter or digit",
        )
    return value


def validate_message_id(value: object) -> str:
    """Message ids: 8-128 chars of letters, digits, ``_`` and ``-`` (never a path)."""
    if not isinstance(value, str) or not _MESSAGE_ID.fullmatch(value):
        raise _reject("message id", value, "expected 8-128 letters, digits, '_' or '-'")
    return value


def new_message_id() -> str:
    """A fresh id, unique across processes and machines (uuid4: 122 random bits)."""
    return uuid.uuid4().hex


def is_valid_email(value: object) -> bool:
    try:
        validate_email(value)
    except UnsafeNameError:
        return False
    return True


def is_valid_message_id(value: object) -> bool:
    try:
        validate_message_id(value)
    except UnsafeNameError:
        return False
    return True
