"""Names that end up in paths: every accepted value is one safe path component."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest
from hypothesis import given
from hypothesis import strategies as st
from syftflwr.errors import UnsafeNameError
from syftflwr.names import (
    new_message_id,
    validate_email,
    validate_identifier,
    validate_message_id,
)


@pytest.mark.parametrize("email", ["alice@example.org", "a.b+c@sub.example.co.uk", "x_1@y.io"])
def test_plain_emails_pass(email: str) -> None:
    assert validate_email(email) == email


@pytest.mark.parametrize(
    "email",
    [
        "../x@y.org",
        "a/b@c.org",
        "a\\b@c.org",
        "..@y.org",
        "a..b@c.org",
        ".a@c.org",
        "x@y",
        "x\x00@y.org",
        "/abs@y.org",
        "",
        "no-at-sign",
        "x@y..org",
        42,
    ],
)
def test_unsafe_emails_fail(email: object) -> None:
    with pytest.raises(UnsafeNameError, match="email"):
        validate_email(email)


@pytest.mark.parametrize("name", ["..", ".", ".hidden", "a/b", "a\\b", "", "x" * 65, "a..b"])
def test_unsafe_identifiers_fail(name: str) -> None:
    with pytest.raises(UnsafeNameError):
        validate_identifier(name, "app name")


def test_message_ids_are_unique_and_valid() -> None:
    ids = {new_message_id() for _ in range(1000)}
    assert len(ids) == 1000
    for mid in ids:
        validate_message_id(mid)


@given(st.text(max_size=80))
def test_anything_accepted_is_a_single_safe_path_component(text: str) -> None:
    for validate in (validate_email, validate_identifier, validate_message_id):
        try:
            value = validate(text)
        except UnsafeNameError:
            continue
        parts = PurePosixPath(value).parts
        assert parts == (value,)
        assert value not in (".", "..") and "/" not in value and "\\" not in value
        assert "\x00" not in value
