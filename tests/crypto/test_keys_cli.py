"""`syftflwr keys`, `bootstrap --pin-keys` and doctor's key check, over the real
local-directory transport: keys are published to and read from real files."""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from syftflwr.cli.app import cli
from syftflwr.config import load_project
from syftflwr.crypto.trust import TrustStore

ROOT = Path(__file__).resolve().parents[2]
AGG = "aggregator@openmined.org"
DS1, DS2, DS3 = "ds1@openmined.org", "ds2@openmined.org", "ds3@openmined.org"

pytest.importorskip("syftflwr_fsspec_local", reason="the fsspec-local plugin is installed by nox")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "app"
    folder.mkdir()
    shutil.copy(ROOT / "examples" / "quickstart" / "pyproject.toml", folder)
    return folder


class KeysCli:
    """``syftflwr ...`` in-process, as one user of a fresh home directory."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.runner = CliRunner()
        self.env = {"SYFTFLWR_HOME": str(home), "FLWR_TELEMETRY_ENABLED": "0"}

    def __call__(self, *args: str, ok: bool = True, input: str | None = None) -> Result:
        result = self.runner.invoke(cli, list(args), env=self.env, input=input)
        if ok:
            assert result.exit_code == 0, result.output
        return result


@pytest.fixture
def keys(tmp_path: Path) -> KeysCli:
    return KeysCli(tmp_path / "home")


def fingerprint_of(keys: KeysCli, email: str, project: Path) -> str:
    shown = json.loads(keys("keys", "show", str(project), "--as", email, "--json").stdout)
    assert shown["email"] == email
    return str(shown["fingerprint"])


def test_show_creates_a_private_key_once(keys: KeysCli, project: Path) -> None:
    first = json.loads(keys("keys", "show", str(project), "--as", DS1, "--json").stdout)
    assert first["created"] is True and first["fingerprint"].startswith("sha256:")
    key = Path(first["key_file"])
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    again = json.loads(keys("keys", "show", str(project), "--as", DS1, "--json").stdout)
    assert again["created"] is False and again["fingerprint"] == first["fingerprint"]
    # offline view; a datasite exchanges keys with the aggregator only
    assert [(p["email"], p["verdict"]) for p in again["peers"]] == [(AGG, "unchecked")]


def test_pin_then_a_rotated_key_is_refused_until_re_pinned(keys: KeysCli, project: Path) -> None:
    for email in (AGG, DS1, DS2):
        keys("keys", "publish", str(project), "--as", email)
    shown = json.loads(
        keys("keys", "show", str(project), "--as", AGG, "--published", "--json").output
    )
    verdicts = {p["email"]: p["verdict"] for p in shown["peers"]}
    assert verdicts == {DS1: "new", DS2: "new", DS3: "unpublished"}

    pinned = keys("keys", "pin", str(project), "--as", AGG, "--yes")
    assert "not pinned (no key published yet): ds3@openmined.org" in pinned.output
    fps = {e: fingerprint_of(keys, e, project) for e in (AGG, DS1, DS2)}
    assert load_project(project).keys == fps

    rotated = keys("keys", "rotate", str(project), "--as", DS2, "--yes")
    new_fp = fingerprint_of(keys, DS2, project)
    assert new_fp != fps[DS2] and new_fp in rotated.output
    assert f"keys pin --replace {DS2}" in rotated.output  # its own pin is now stale

    before = (project / "pyproject.toml").read_text()
    refused = keys("keys", "pin", str(project), "--as", AGG, "--yes", ok=False)
    assert refused.exit_code == 1
    assert "differs from the project's pin" in refused.output and "nothing pinned" in refused.output
    assert (project / "pyproject.toml").read_text() == before  # nothing written

    shown = json.loads(
        keys("keys", "show", str(project), "--as", AGG, "--published", "--json").output
    )
    assert {p["email"]: p["verdict"] for p in shown["peers"]}[DS2] == "changed"
    keys("keys", "pin", str(project), "--as", AGG, "--yes", "--replace", DS2)
    assert load_project(project).keys[DS2] == new_fp


def test_trust_accepts_only_the_published_fingerprint(keys: KeysCli, project: Path) -> None:
    keys("keys", "publish", str(project), "--as", DS2)
    keys("keys", "trust", DS2, str(project), "--as", AGG, "--yes")  # first use, explicit
    old = fingerprint_of(keys, DS2, project)
    keys("keys", "rotate", str(project), "--as", DS2, "--yes")
    new = fingerprint_of(keys, DS2, project)

    shown = json.loads(
        keys("keys", "show", str(project), "--as", AGG, "--published", "--json").output
    )
    ds2 = {p["email"]: p for p in shown["peers"]}[DS2]
    assert (ds2["trusted"], ds2["published"], ds2["verdict"]) == (old, new, "changed")

    wrong = keys("keys", "trust", DS2, str(project), "--as", AGG, "--fingerprint", old, ok=False)
    assert wrong.exit_code == 1 and f"publishes {new}" in wrong.output
    keys("keys", "trust", DS2, str(project), "--as", AGG, "--fingerprint", new.upper())
    home = keys.home
    assert TrustStore(home / "state" / "quickstart" / AGG, {}).known()[DS2] == new


def test_interactive_trust_can_be_declined(keys: KeysCli, project: Path) -> None:
    keys("keys", "publish", str(project), "--as", DS2)
    declined = keys("keys", "trust", DS2, str(project), "--as", AGG, input="n\n", ok=False)
    assert declined.exit_code == 1 and "Aborted" in declined.output
    home = keys.home
    assert TrustStore(home / "state" / "quickstart" / AGG, {}).known() == {}


def test_key_commands_refuse_a_project_without_encryption(keys: KeysCli, project: Path) -> None:
    file = project / "pyproject.toml"
    file.write_text(file.read_text() + "encryption = false\n")
    out = keys("keys", "publish", str(project), "--as", DS1, ok=False)
    assert out.exit_code == 2
    assert "encryption is off" in out.output and "encryption = false" in out.output


def test_bootstrap_pins_the_keys_already_published(keys: KeysCli, project: Path) -> None:
    keys("keys", "publish", str(project), "--as", DS1)
    out = keys(
        "bootstrap", str(project), "--aggregator", AGG, "--datasite", DS1, "--datasite", DS2,
        "--pin-keys", "--as", AGG,
    )  # fmt: skip
    assert "pinned: 2 keys" in out.output and "ds2@openmined.org" in out.output
    project_config = load_project(project)
    assert project_config.datasites == (DS1, DS2)
    assert set(project_config.keys) == {AGG, DS1}


def test_doctor_reports_keys_allowlist_and_journal(keys: KeysCli, project: Path) -> None:
    keys("keys", "publish", str(project), "--as", DS1)
    out = keys("doctor", str(project), "--as", AGG, "--json", ok=False)
    checks = {c["name"]: c for c in json.loads(out.stdout)}
    assert checks["encryption"]["status"] == "warn"  # ds2 and ds3 have not published yet
    assert f"{DS1}: new" in checks["encryption"]["detail"]
    assert f"{DS2}: unpublished" in checks["encryption"]["detail"]
    keys("keys", "publish", str(project), "--as", AGG)
    out = keys("doctor", str(project), "--as", DS1, "--json", ok=False)
    checks = {c["name"]: c for c in json.loads(out.stdout)}
    assert f"{AGG}: new" in checks["encryption"]["detail"]
    assert DS2 not in checks["encryption"]["detail"]  # datasites never exchange keys
    assert f"only from the aggregator {AGG}" in checks["allowlist"]["detail"]
    assert checks["journal"]["status"] == "ok"
    assert checks["round trip"]["status"] == "ok"


def test_a_simulation_ignores_the_real_federations_pins(project: Path) -> None:
    """Simulated participants make fresh keys in the simulation's workspace: the pins of
    the real participants would refuse every one of them."""
    from syftflwr.flower.simulation import simulation_project

    file = project / "pyproject.toml"
    file.write_text(file.read_text() + f'\n[tool.syftflwr.keys]\n"{DS1}" = "sha256:{"a" * 64}"\n')
    assert load_project(project).keys == {DS1: "sha256:" + "a" * 64}
    assert simulation_project(load_project(project)).keys == {}
