"""Validation of every name that may end up in a path: emails, app names, endpoints, ids.

One source of truth: config, envelopes and the mailbox layout all validate through
these functions, so no message field or config value can ever address a file outside
its mailbox (no ``/``, ``\\``, ``..``, NUL, leading dot, or over-long component).
"""

from __future__ import annotations

import difflib
import re
import uuid
from collections.abc import Iterable

from syftflwr._deprecation import mark_private as _mark_private
from syftflwr.errors import UnsafeNameError

_EMAIL = re.compile(
    r"^[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,62}[A-Za-z0-9_%+-])?"  # local part, no leading/trailing dot
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)
_IDENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_MESSAGE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{7,127}$")
_PROJECT = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,253}[A-Za-z0-9])?$")
"""A ``[project].name`` (PEP 508's name rule), at most 255 characters."""
_UNIX_TIME = re.compile(r"^[0-9]{1,20}$")
SYFT_FLWR_05 = "syft-flwr-0.5"
"""The wire profile whose app names may take upstream bootstrap's generated form."""
JOBS_APP = "syftflwr-jobs"
"""The reserved app name of the participant-level jobs endpoint (issue 19), whose state
folder is also where a participant's one signing key lives. Defined down here so config
(refusing it as a project's ``app_name``) and crypto (the signing key's folder) can name
it; :mod:`syftflwr.jobs` exports it."""


FLOWER_NAME_MAX = 32
"""Flower's limit on an app's name (``flwr.supercore.constant.MAX_NAME_LENGTH``, 1.42)."""
_FLOWER_NAME = re.compile(rf"[A-Za-z][A-Za-z0-9-]{{0,{FLOWER_NAME_MAX - 1}}}")


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


def generated_app_name_parts(value: object) -> tuple[str, str, str] | None:
    """``(email, project, unix_time)`` of an app name in the form syft-flwr 0.5's
    ``bootstrap`` writes — ``f"{aggregator}_{project}_{int(time.time())}"`` — else None.

    The email ends at the first ``_`` after its ``@`` (a domain has none), the time is
    the digits after the last ``_``. Every part is validated, so such a name holds only
    letters, digits and ``_ . - @ % +``, never ``..`` and never starts with a dot: one
    path component that cannot leave its folder.
    """
    if not isinstance(value, str) or ".." in value:
        return None
    at = value.find("@")
    cut = value.find("_", at) if at > 0 else -1
    if cut < 0:
        return None
    email, (project, sep, stamp) = value[:cut], value[cut + 1 :].rpartition("_")
    if not (sep and _UNIX_TIME.fullmatch(stamp) and _PROJECT.fullmatch(project)):
        return None
    return (email, project, stamp) if is_valid_email(email) else None


def validate_app_name(value: object, *, profile: str | None = None) -> str:
    """An app name: an identifier (:func:`validate_identifier`) in every profile; under
    ``syft-flwr-0.5`` also upstream bootstrap's generated ``{email}_{project}_{unix
    time}`` (:func:`generated_app_name_parts`). ``profile=None`` accepts either: for an
    envelope's field, whose route the reader compares with its own app."""
    if isinstance(value, str) and (
        (_IDENT.fullmatch(value) and ".." not in value)
        or (profile in (None, SYFT_FLWR_05) and generated_app_name_parts(value) is not None)
    ):
        return value
    if profile is None or profile == SYFT_FLWR_05:
        rule = (
            "use 1-64 letters, digits, '_', '.', '-', starting with a letter or digit, "
            "or syft-flwr 0.5 bootstrap's form {aggregator email}_{project}_{unix time}"
        )
    elif generated_app_name_parts(value) is not None:
        rule = (
            "this is syft-flwr 0.5 bootstrap's generated form, accepted only with "
            f'profile = "{SYFT_FLWR_05}"; in the {profile!r} profile use 1-64 letters, '
            "digits, '_', '.', '-', starting with a letter or digit"
        )
    else:
        rule = "use 1-64 letters, digits, '_', '.', '-', starting with a letter or digit"
    raise _reject("app name", value, rule)


def validate_message_id(value: object) -> str:
    """Message ids: 8-128 chars of letters, digits, ``_`` and ``-`` (never a path)."""
    if not isinstance(value, str) or not _MESSAGE_ID.fullmatch(value):
        raise _reject("message id", value, "expected 8-128 letters, digits, '_' or '-'")
    return value


def new_message_id() -> str:
    """A fresh id, unique across processes and machines (uuid4: 122 random bits)."""
    return uuid.uuid4().hex


def suggest(name: str, candidates: Iterable[str]) -> str | None:
    """The nearest of ``candidates`` to a typo (a key, a transport, an email), if one is
    close enough: the one did-you-mean of every error message."""
    matches = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return matches[0] if matches else None


def flower_name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid Flower app name (``[project].name``), or None: flwr 1.42
    refuses a name that is not a letter, then letters, digits and hyphens, at most
    :data:`FLOWER_NAME_MAX` characters; ``syftflwr new`` and ``syftflwr submit`` refuse it
    under any flwr."""
    if _FLOWER_NAME.fullmatch(name):
        return None
    if not name:
        return "it is empty"
    if len(name) > FLOWER_NAME_MAX:
        return f"it has {len(name)} characters (at most {FLOWER_NAME_MAX})"
    if not name[0].isalpha() or not name[0].isascii():
        return "it must start with a letter"
    bad = sorted({c for c in name if not (c.isascii() and (c.isalnum() or c == "-"))})
    return f"it may hold only letters, digits and hyphens, not {' '.join(map(repr, bad))}"


def suggest_flower_name(name: str) -> str:
    """The nearest valid Flower app name: other runs of characters become one hyphen."""
    words = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")
    words = words if words[:1].isalpha() else f"app-{words}".rstrip("-")
    return words[:FLOWER_NAME_MAX].rstrip("-")


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


_mark_private(__name__)  # plugins importing plugin-API names from here get a warning
