"""Coercion of sizes, durations, booleans and paths as users write them."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from syftflwr.config._values import (
    parse_bool,
    parse_duration,
    parse_mapping,
    parse_path,
    parse_size,
    parse_text_bool,
    suggest,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (4096, 4096),
        ("4096", 4096),
        ("512MiB", 512 * 2**20),
        ("512 mib", 512 * 2**20),
        ("1.5GB", 1_500_000_000),
        ("2k", 2000),
        ("10KiB", 10240),
        ("1 GiB", 2**30),
        ("7B", 7),
    ],
)
def test_sizes(text: object, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["", "MiB", "12 parsecs", "-5", True, 1.5, [1]])
def test_bad_sizes_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="size in bytes"):
        parse_size(bad)


@given(st.integers(min_value=0, max_value=2**40))
def test_size_strings_round_trip(n: int) -> None:
    assert parse_size(str(n)) == n
    assert parse_size(f"{n}KiB") == n * 1024


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (30, 30.0),
        (1.5, 1.5),
        ("90", 90.0),
        ("500ms", 0.5),
        ("10m", 600.0),
        ("1h", 3600.0),
        ("2d", 172800.0),
        ("30 s", 30.0),
    ],
)
def test_durations(text: object, expected: float) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("bad", ["soon", "10 years", True, "nan", float("inf")])
def test_bad_durations_are_refused(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


@pytest.mark.parametrize("text", ["1", "true", "YES", "on", True])
def test_true(text: object) -> None:
    assert parse_text_bool(text) is True


@pytest.mark.parametrize("text", ["0", "false", "No", "off", False])
def test_false(text: object) -> None:
    assert parse_text_bool(text) is False


@pytest.mark.parametrize("bad", ["maybe", 1, "", None])
def test_bad_text_booleans_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="1/0, true/false, yes/no or on/off"):
        parse_text_bool(bad)


@pytest.mark.parametrize("bad", ["off", "false", "true", 0, 1, "", None])
def test_a_file_boolean_is_a_toml_boolean(bad: object) -> None:
    with pytest.raises(ValueError, match="TOML boolean"):
        parse_bool(bad)
    assert parse_bool(True) is True and parse_bool(False) is False


def test_paths_expand_home_and_resolve_relative_to_their_file(tmp_path: Path) -> None:
    assert parse_path("~/x") == Path.home() / "x"
    assert parse_path("data/root", base=tmp_path) == tmp_path / "data/root"
    assert parse_path("/abs/root", base=tmp_path) == Path("/abs/root")
    assert parse_path("rel").is_absolute()
    for bad in ("", "  ", "a\x00b", 3):
        with pytest.raises(ValueError):
            parse_path(bad)


def test_mappings_from_tables_and_json() -> None:
    assert parse_mapping({"a": 1}) == {"a": 1}
    assert parse_mapping('{"a": 1}') == {"a": 1}
    with pytest.raises(ValueError, match="JSON object"):
        parse_mapping("[1, 2]")


def test_suggest_finds_near_typos_only() -> None:
    keys = ["aggregator", "datasites", "transport"]
    assert suggest("agregator", keys) == "aggregator"
    assert suggest("datasite", keys) == "datasites"
    assert suggest("zzz", keys) is None
