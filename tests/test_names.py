"""Names that end up in paths: every accepted value is one safe path component."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from syftflwr.errors import UnsafeNameError
from syftflwr.names import (
    generated_app_name_parts,
    new_message_id,
    validate_app_name,
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


# --------------------------------------------------------------------------- app names
_LOCAL = st.from_regex(
    r"[A-Za-z0-9]([A-Za-z0-9_%+-]|\.(?!\.)){0,62}[A-Za-z0-9_%+-]", fullmatch=True
)
_LABEL = st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?", fullmatch=True)
_TLD = st.from_regex(r"[A-Za-z]{2,63}", fullmatch=True)


@st.composite
def emails(draw: st.DrawFn) -> str:
    """Addresses our email rule accepts, up to its 254 characters (long ones often)."""
    local, tld = draw(_LOCAL), draw(_TLD)
    labels = draw(st.lists(_LABEL, min_size=1, max_size=5))
    while len(labels) > 1 and len(local) + 2 + len(".".join(labels)) + len(tld) > 254:
        labels.pop(0)
    email = f"{local}@{'.'.join(labels)}.{tld}"
    assume(len(email) <= 254)
    return validate_email(email)


projects = st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,60}[A-Za-z0-9])?", fullmatch=True).filter(
    lambda p: ".." not in p
)


@given(emails(), projects, st.integers(min_value=0, max_value=2**40))
def test_every_name_syftflwr05_bootstrap_generates_is_accepted_and_one_path_component(
    email: str, project: str, now: int
) -> None:
    # syft_flwr/bootstrap.py: f"{aggregator}_{base_app_name}_{int(time.time())}"
    name = f"{email}_{project}_{now}"
    assert validate_app_name(name, profile="syft-flwr-0.5") == name
    assert generated_app_name_parts(name) == (email, project, str(now))
    assert validate_app_name(name) == name  # an envelope's field: either form
    assert PurePosixPath(name).parts == (name,)
    assert "/" not in name and "\\" not in name and "\x00" not in name
    assert not name.startswith(".") and ".." not in name


def test_upstreams_example_name_and_a_254_character_email() -> None:
    assert validate_app_name("ds@openmined.org_fl-numpy-diabetes_1796570782",
                             profile="syft-flwr-0.5")  # fmt: skip
    longest = "a" * 64 + "@" + ".".join(["b" * 63, "c" * 63, "d" * 57]) + ".org"
    assert len(validate_email(longest)) == 254
    name = f"{longest}_my-fed_1796570782"
    assert validate_app_name(name, profile="syft-flwr-0.5") == name


def test_the_generated_form_needs_the_syftflwr05_profile() -> None:
    with pytest.raises(UnsafeNameError, match=r'accepted only with profile = "syft-flwr-0\.5"'):
        validate_app_name("ds@openmined.org_fl-numpy_1796570782", profile="native")


@pytest.mark.parametrize(
    "name",
    [
        "ds@openmined.org_../x_1",  # the project part must be a project name
        "ds@openmined.org_a/b_1",
        "ds@openmined.org_proj_",  # no time
        "ds@openmined.org_proj_12a",
        "../ds@openmined.org_proj_1",  # not an email
        "ds@openmined.org/_proj_1",
        "ds@openmined.org_proj\x00_1",
        ".ds@openmined.org_proj_1",
        "ds@openmined..org_proj_1",
        "ds@openmined.org__1",
        "ds@openmined.org_proj_1\\x",
    ],
)
def test_path_shaped_names_in_the_generated_form_are_refused(name: str) -> None:
    assert generated_app_name_parts(name) is None
    with pytest.raises(UnsafeNameError, match="app name"):
        validate_app_name(name, profile="syft-flwr-0.5")
