"""Dependencies approved with an app (issue 19 item 6): its ``pylock.toml`` is one of the
bundle's files (in the FAB's hash, listed and diffed by review); review refuses a lock
that is not exact wheels with SHA-256 hashes; ``serve`` installs exactly the locked wheels
(pip: wheels only, hashes required, no other package, from the data owner's wheelhouse:
nothing is downloaded here) and puts them first on the app process's path."""

from __future__ import annotations

import base64
import hashlib
import os
import time
import zipfile
from pathlib import Path

import pytest
from _bundle_apps import write_app
from flwr.app import ConfigRecord, Message, RecordDict
from flwr.common.constant import SUPERLINK_NODE_ID
from syftflwr.config.participant import DependencySources
from syftflwr.crypto.signing import SigningIdentity
from syftflwr.errors import ConfigError
from syftflwr.flower import compat
from syftflwr.jobs.bundle import inspect_bundle
from syftflwr.jobs.deps import DependencyError, LockedPackage, install, read_lock
from syftflwr.jobs.fab import build_fab
from syftflwr.jobs.serve import ApprovedCode, ServedApp
from syftflwr.jobs.staging import STALE_AFTER
from syftflwr.jobs.statements import JobOffer, sign_offer
from syftflwr.jobs.store import JobStore
from syftflwr.names import new_message_id

AGG, DS1 = "agg@example.org", "ds1@example.org"
CLIENT = b"""from flwr.app import Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

import tinydep

app = ClientApp()


@app.train()
def train(msg, context):
    where = 1 if tinydep.__file__.split("/")[-3].endswith(".deps") else 0
    return Message(RecordDict({"metrics": MetricRecord({"value": tinydep.VALUE,
                                                        "from_deps": where})}), reply_to=msg)
"""


def make_wheel(folder: Path, value: int = 41) -> tuple[Path, str]:
    """A real pure-Python wheel of ``tinydep 1.0`` (what pip installs), and its SHA-256."""
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / "tinydep-1.0-py3-none-any.whl"
    files = {
        "tinydep/__init__.py": f"VALUE = {value}\n".encode(),
        "tinydep-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: tinydep\nVersion: 1.0\n",
        "tinydep-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\n"
        b"Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append("tinydep-1.0.dist-info/RECORD,,")
    files["tinydep-1.0.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return wheel, hashlib.sha256(wheel.read_bytes()).hexdigest()


def lock(sha256: str, extra: str = "") -> bytes:
    return (
        'lock-version = "1.0"\ncreated-by = "tests"\n\n[[packages]]\nname = "tinydep"\n'
        f'version = "1.0"\n{extra}\n[[packages.wheels]]\n'
        f'name = "tinydep-1.0-py3-none-any.whl"\nhashes = {{sha256 = "{sha256}"}}\n'
    ).encode()


def test_a_lock_is_exact_wheels_with_hashes() -> None:
    digest = "a" * 64
    assert read_lock(lock(digest)) == (LockedPackage("tinydep", "1.0", (digest,)),)
    assert read_lock(lock(digest))[0].requirement() == f"tinydep==1.0 --hash=sha256:{digest}"
    bad = {
        lock(digest, 'sdist = {name = "tinydep-1.0.tar.gz"}'): "not a wheel",
        lock("not-a-hash"): "a wheel without a SHA-256 hash",
        lock(digest).replace(b'version = "1.0"\n', b""): "no exact version",
        b"[[packages]]\nname = 'x'\nversion = '1'\n": "no wheels",
        b"packages = 3\n": "not an array of tables",
        b"= nonsense": "not valid TOML",
    }
    for data, problem in bad.items():
        with pytest.raises(ValueError, match=problem):
            read_lock(data)


def app_with_lock(root: Path, data: bytes) -> bytes:
    app = write_app(root, extra={"marker_app/client_app.py": CLIENT, "pylock.toml": data})
    return build_fab(app).data


def test_the_lock_ships_in_the_bundle_and_review_refuses_a_bad_one(tmp_path: Path) -> None:
    _, digest = make_wheel(tmp_path / "wheels")
    info = inspect_bundle(app_with_lock(tmp_path / "good", lock(digest)))
    assert "pylock.toml" in info.files  # in the FAB's hash: approved with the app
    assert info.locked == (LockedPackage("tinydep", "1.0", (digest,)),)
    with pytest.raises(
        ConfigError, match=r"datasites would refuse its bundle: pylock\.toml: tinydep: not a wheel"
    ):  # submit refuses it before sending
        app_with_lock(tmp_path / "sdist", lock(digest, 'sdist = {name = "t.tar.gz"}'))


class Datasite:
    def __init__(self, tmp: Path, fab: bytes, wheelhouse: Path) -> None:
        agg = SigningIdentity.load_or_create(tmp / "agg", AGG)
        me = SigningIdentity.load_or_create(tmp / "ds", DS1)
        self.store = JobStore(tmp / "ds", DS1)
        offer = JobOffer(
            job_id=new_message_id(),
            aggregator=AGG,
            datasite=DS1,
            app="marker-app",
            version="1.0.0",
            fab_hash=hashlib.sha256(fab).hexdigest(),
            created_at=1.0,
            rollback=False,
            signer=agg.fingerprint,
            app_name="marker",
            datasites=(DS1,),
        )
        self.store.receive(offer, sign_offer(offer, agg), agg.public, fab)
        self.store.decide(offer.job_id, "approved", me)
        self.hash = offer.fab_hash
        self.code = ApprovedCode(
            self.store,
            ServedApp(AGG, "marker"),
            tmp / "apps",
            env=dict(os.environ),
            sources=DependencySources(wheelhouse=wheelhouse),
        )

    def train(self) -> dict[str, float]:
        compat.set_task_identity(7)
        message = Message(RecordDict({"config": ConfigRecord({})}), 42, "train", ttl=60)
        compat.stamp_instruction(message, run_id=7, src_node_id=SUPERLINK_NODE_ID)
        compat.set_message_id(message, new_message_id())
        context = compat.new_context(run_id=7, node_id=42)
        reply = self.code.app_for(self.hash)(message, context)
        return dict(reply.content["metrics"])  # type: ignore[arg-type]

    def close(self) -> None:
        self.code.close()
        self.store.close()


def test_serve_installs_exactly_the_locked_wheel_from_the_wheelhouse(tmp_path: Path) -> None:
    wheel, digest = make_wheel(tmp_path / "wheels", value=41)
    site = Datasite(tmp_path, app_with_lock(tmp_path / "app", lock(digest)), wheel.parent)
    try:
        assert site.train() == {"value": 41, "from_deps": 1}
        installed = tmp_path / "apps" / f"{site.hash}.deps"
        assert (installed / "tinydep" / "__init__.py").exists()
        assert (installed / ".installed").read_text() == f"tinydep==1.0 --hash=sha256:{digest}\n"
    finally:
        site.close()


def test_a_wheel_that_is_not_the_locked_one_is_never_installed(tmp_path: Path) -> None:
    _, locked_digest = make_wheel(tmp_path / "locked", value=41)
    other, _ = make_wheel(tmp_path / "wheels", value=666)  # same name, other content
    site = Datasite(tmp_path, app_with_lock(tmp_path / "app", lock(locked_digest)), other.parent)
    try:
        with pytest.raises(DependencyError) as refused:
            site.train()
        assert "could not be installed from wheelhouse" in str(refused.value)
        assert "HASH" in str(refused.value).upper()
        assert "fix:" in str(refused.value)
        assert not (tmp_path / "apps" / f"{site.hash}.deps").exists()
    finally:
        site.close()


def test_an_install_removes_what_a_killed_install_left_beside_it(tmp_path: Path) -> None:
    """A serve killed mid-install leaves its staging folder and pip's requirement file;
    the next install there removes them once stale, never a younger one (another
    process installing right now)."""
    apps = tmp_path / "apps"
    apps.mkdir()
    stale = [apps / ".a.deps.installing-old", apps / ".a.deps.installing-old.txt"]
    stale[0].mkdir()
    (stale[0] / "half.py").write_text("")
    stale[1].write_text("pkg==1 --hash=sha256:00\n")
    old = time.time() - STALE_AFTER - 60
    for path in stale:
        os.utime(path, (old, old))
    busy = apps / ".b.deps.installing-now"
    busy.mkdir()
    install([], apps / "c.deps")
    assert sorted(p.name for p in apps.iterdir()) == [busy.name, "c.deps"]
