"""The per-participant layer: where it is found, what it may hold, the state directory."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from _config_helpers import write
from hypothesis import given, settings
from hypothesis import strategies as st
from syftflwr.config import (
    default_state_dir,
    load_participant,
    participant_state_dir,
    settings_path,
)
from syftflwr.errors import ConfigError


def test_default_location_is_the_per_user_config_dir(isolated_env: Path) -> None:
    path, explicit = settings_path(os.environ)
    assert path == isolated_env / "config" / "syftflwr" / "settings.toml"
    assert not explicit
    assert default_state_dir(os.environ) == isolated_env / "state" / "syftflwr"


def test_no_settings_file_yet_means_empty_settings(isolated_env: Path) -> None:
    settings = load_participant(os.environ)
    assert not settings.exists
    assert settings.email is None
    assert settings.state_dir is None
    assert settings.default_state_dir == isolated_env / "state" / "syftflwr"
    assert settings.transport_options == {}


def test_default_file_is_read(isolated_env: Path) -> None:
    write(isolated_env / "config" / "syftflwr" / "settings.toml", 'email = "a@b.org"\n')
    assert load_participant(os.environ).email == "a@b.org"


def test_syftflwr_home_holds_settings_and_state(tmp_path: Path) -> None:
    home = tmp_path / "alice"
    write(
        home / "settings.toml",
        """email = "alice@hospital-a.org"

[transport.fsspec-local]
root = "shared"   # relative to this file

[transport.gdrive]
token = "~/tokens/alice.json"
""",
    )
    settings = load_participant({"SYFTFLWR_HOME": str(home)})
    assert settings.exists
    assert settings.path == home / "settings.toml"
    assert settings.email == "alice@hospital-a.org"
    assert settings.default_state_dir == home / "state"
    assert settings.transport_options == {
        "fsspec-local": {"root": "shared"},
        "gdrive": {"token": "~/tokens/alice.json"},
    }


def test_syftflwr_settings_names_the_file(tmp_path: Path) -> None:
    file = write(tmp_path / "elsewhere.toml", f'state_dir = "{tmp_path / "st"}"\n')
    settings = load_participant({"SYFTFLWR_SETTINGS": str(file), "SYFTFLWR_HOME": "/ignored"})
    assert settings.path == file
    assert settings.state_dir == tmp_path / "st"


def test_explicit_settings_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist") as info:
        load_participant({"SYFTFLWR_SETTINGS": str(tmp_path / "missing.toml")})
    assert info.value.source is not None and "SYFTFLWR_SETTINGS" in info.value.source


def test_relative_state_dir_is_relative_to_the_settings_file(tmp_path: Path) -> None:
    write(tmp_path / "p" / "settings.toml", 'state_dir = "my-state"\n')
    settings = load_participant({"SYFTFLWR_HOME": str(tmp_path / "p")})
    assert settings.state_dir == tmp_path / "p" / "my-state"


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        ('emial = "a@b.org"', "emial", "unknown key"),
        ('email = "../a@b.org"', "email", "invalid email"),
        ('email = "a/b@c.org"', "email", "invalid email"),
        ("email = 1", "email", "expected a string"),
        ("state_dir = 3", "state_dir", "expected a path"),
        ('transport = "gdrive"', "transport", "table"),
        ("[transport]\ngdrive = 1", "transport.gdrive", "table of options"),
        ('[transport."../x"]\nroot = "/"', "transport.../x", "transport name"),
    ],
)
def test_invalid_settings_name_file_key_and_fix(
    tmp_path: Path, text: str, key: str, fragment: str
) -> None:
    file = write(tmp_path / "settings.toml", text + "\n")
    with pytest.raises(ConfigError) as info:
        load_participant({"SYFTFLWR_SETTINGS": str(file)})
    assert info.value.source == str(file)
    assert info.value.key == key
    assert fragment in info.value.problem
    assert info.value.fix


def test_unknown_key_suggests_the_nearest(tmp_path: Path) -> None:
    file = write(tmp_path / "settings.toml", 'emial = "a@b.org"\n')
    with pytest.raises(ConfigError) as info:
        load_participant({"SYFTFLWR_SETTINGS": str(file)})
    assert "did you mean 'email'" in (info.value.fix or "")


# --------------------------------------------------------------------------- state dir
def test_state_dir_is_per_app_and_participant_and_private(tmp_path: Path) -> None:
    path = participant_state_dir(tmp_path / "state", "quickstart", "alice@hospital-a.org")
    assert path == tmp_path / "state" / "quickstart" / "alice@hospital-a.org"
    assert path.is_dir()
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    # idempotent, and tightens a directory someone loosened
    path.chmod(0o755)
    assert participant_state_dir(tmp_path / "state", "quickstart", "alice@hospital-a.org") == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o700


@pytest.mark.parametrize(
    ("app", "email"),
    [
        ("..", "a@b.org"),
        ("../x", "a@b.org"),
        ("a/b", "a@b.org"),
        ("/abs", "a@b.org"),
        ("ok", "../a@b.org"),
        ("ok", "a/b@c.org"),
        ("ok", ".."),
        ("ok", "x\x00"),
        ("ok", "/etc/passwd"),
    ],
)
def test_state_dir_refuses_path_shaped_names(tmp_path: Path, app: str, email: str) -> None:
    with pytest.raises(ConfigError):
        participant_state_dir(tmp_path, app, email)
    assert list(tmp_path.iterdir()) == []


def test_state_dir_refuses_a_symlink_out_of_the_base(tmp_path: Path) -> None:
    base = tmp_path / "state"
    base.mkdir()
    (tmp_path / "outside").mkdir()
    (base / "app").symlink_to(tmp_path / "outside")
    with pytest.raises(ConfigError, match="outside"):
        participant_state_dir(base, "app", "a@b.org")


@settings(max_examples=300)
@given(app=st.text(max_size=20), email=st.text(max_size=30))
def test_state_dir_never_leaves_its_base(app: str, email: str) -> None:
    base = Path("/srv/state")
    try:
        path = participant_state_dir(base, app, email, create=False)
    except ConfigError:
        return
    assert path.parent.parent == base
    assert ".." not in path.parts


def test_unwritable_state_dir_is_a_config_error(tmp_path: Path) -> None:
    blocker = write(tmp_path / "file", "not a directory")
    with pytest.raises(ConfigError, match="cannot create the state directory") as info:
        participant_state_dir(blocker / "state", "app", "a@b.org")
    assert info.value.fix is not None and "SYFTFLWR_STATE_DIR" in info.value.fix


def test_participants_starting_at_once_create_the_state_dirs_without_a_race(
    tmp_path: Path,
) -> None:
    """Found by the real-sync test: two processes creating state/<app>/ at the same
    time must both succeed (the check-then-mkdir used to fail one with "File exists")."""
    from concurrent.futures import ThreadPoolExecutor

    from syftflwr.config import participant_state_dir

    emails = [f"p{i}@example.org" for i in range(16)]
    for attempt in range(20):
        base = tmp_path / f"state{attempt}"
        with ThreadPoolExecutor(16) as pool:
            paths = list(pool.map(participant_state_dir, [base] * 16, ["app"] * 16, emails))
        assert all(p.is_dir() and stat.S_IMODE(p.stat().st_mode) == 0o700 for p in paths)


def test_a_long_syftflwr05_app_name_gets_a_state_folder_that_fits(tmp_path: Path) -> None:
    """syft-flwr 0.5's generated names hold the aggregator's email (up to 254 characters):
    the state folder keeps the name's start and a digest of the whole (255-byte names)."""
    from syftflwr.config import participant_state_dir

    email = "a" * 64 + "@" + ".".join(["b" * 63, "c" * 63, "d" * 57]) + ".org"
    name = f"{email}_my-fed_1796570782"
    path = participant_state_dir(tmp_path, name, "ds1@example.org")
    assert path.is_dir() and path.parent.parent == tmp_path
    assert len(path.parent.name) <= 128 and path.parent.name.startswith("a" * 64 + "@")
    other = participant_state_dir(
        tmp_path, name.replace("1796570782", "1796570783"), "ds1@example.org"
    )
    assert other.parent != path.parent  # another run of the app, another folder
    assert participant_state_dir(tmp_path, "ds@x.org_fl_1", "ds1@example.org").parent.name == (
        "ds@x.org_fl_1"
    )
