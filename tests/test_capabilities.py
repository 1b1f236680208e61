"""The optional capabilities of the plugin API: declared protocols that core asks
through (never ad-hoc getattr probes), each with a stated behaviour when absent, and the
client's effective capabilities as the one source of truth."""

from __future__ import annotations

import ast
from dataclasses import replace
from pathlib import Path

import pytest
from syftflwr.capabilities import declares
from syftflwr.crypto.directory import key_directory_of
from syftflwr.flower.grid import check_identity
from syftflwr.mailbox.localdir import LocalDirStorage
from syftflwr.mailbox.storage import StorageWrapper
from syftflwr.plugin import (
    CAPABILITIES,
    Capabilities,
    DeclaresCapabilities,
    ExposesClient,
    IdentityMismatchError,
    PublishesKeys,
    ReattachesRequests,
    effective_capabilities,
    offers,
)

CORE = Path(__file__).resolve().parents[1] / "core" / "syftflwr"
DEFAULT = Capabilities(notifies_arrivals=False, poll_interval=0.5)


class Plain:
    email = "a@x.org"

    def datasite_url(self, email: str) -> str:
        return email

    def close(self) -> None: ...


class Full(Plain):
    capabilities: Capabilities  # declared on the class: seen by transports --check

    def __init__(self, own: Capabilities, encrypts: bool) -> None:
        self.capabilities = own
        self._encrypts = encrypts

    def key_directory(self) -> object:
        return Directory()

    def encrypts_messages(self) -> bool:
        return self._encrypts


class Directory:
    app: str | None = None

    def for_app(self, app: str) -> Directory:
        scoped = Directory()
        scoped.app = app
        return scoped


def test_offers_reads_instances_and_declares_reads_classes() -> None:
    full = Full(DEFAULT, encrypts=False)
    assert offers(full, PublishesKeys) and declares(Full, PublishesKeys)
    assert offers(full, DeclaresCapabilities) and declares(Full, DeclaresCapabilities)
    assert not offers(Plain(), PublishesKeys) and not declares(Plain, DeclaresCapabilities)
    assert not declares(Plain, ReattachesRequests)

    class AssignsInInit(Plain):
        def __init__(self) -> None:
            self.capabilities = DEFAULT

    assert declares(AssignsInInit, DeclaresCapabilities)


def test_a_wrapper_forwarding_through_getattr_offers_what_it_wraps() -> None:
    """Core's sealed roles forward every member through ``__getattr__``; isinstance() on
    a runtime protocol stopped seeing those in Python 3.12 (inspect.getattr_static)."""

    class Sealed:
        def __init__(self, inner: object) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> object:
            return getattr(self.inner, name)

    assert offers(Sealed(Full(DEFAULT, encrypts=True)), PublishesKeys)
    assert effective_capabilities(Sealed(Full(DEFAULT, encrypts=True)), DEFAULT).native_encryption
    assert not offers(Sealed(Plain()), PublishesKeys)


def test_effective_capabilities_are_the_clients_own() -> None:
    own = replace(DEFAULT, poll_interval=0.05, max_object_size=1024)
    assert effective_capabilities(Plain(), DEFAULT) is DEFAULT  # absent: the defaults
    assert effective_capabilities(Full(own, encrypts=False), DEFAULT) == own
    declared_native = replace(own, native_encryption=True)
    # a transport able to encrypt, configured not to: the client's answer wins
    assert not effective_capabilities(Full(declared_native, False), DEFAULT).native_encryption
    assert effective_capabilities(Full(own, encrypts=True), DEFAULT).native_encryption


def test_key_directory_only_from_a_client_that_publishes_keys() -> None:
    assert key_directory_of(Plain(), "app") is None
    directory = key_directory_of(Full(DEFAULT, False), "quickstart")
    assert isinstance(directory, Directory) and directory.app == "quickstart"


def test_identity_is_rechecked_only_on_roles_that_expose_their_client() -> None:
    class Role:
        def __init__(self, client: object) -> None:
            self.client = client

    check_identity(object(), "b@x.org", "aggregator")  # absent: nothing to check here
    assert isinstance(Role(Plain()), ExposesClient)
    with pytest.raises(IdentityMismatchError, match=r"acts as a@x\.org"):
        check_identity(Role(Plain()), "b@x.org", "aggregator")


def test_storage_location_is_forwarded_or_empty(tmp_path: Path) -> None:
    assert StorageWrapper(LocalDirStorage(tmp_path)).url == str(tmp_path)
    assert StorageWrapper(object()).url == ""  # type: ignore[arg-type]


def test_every_capability_states_what_its_absence_costs() -> None:
    for capability in CAPABILITIES:
        doc = capability.protocol.__doc__ or ""
        assert "Absent:" in doc or "Without it" in doc, capability.protocol
        assert capability.absent and capability.label
    assert [c.protocol for c in CAPABILITIES if c.needed_by] == [PublishesKeys]


PROBED = {"key_directory", "encrypts_messages", "attach", "url", "email", "on_picked_up",
          "capabilities", "client", "for_app", "explain_missing"}  # fmt: skip


def test_core_asks_through_the_protocols_not_getattr() -> None:
    """No getattr/hasattr probe of an optional capability's member left in core."""
    found = []
    for path in CORE.rglob("*.py"):
        if "testing" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("getattr", "hasattr")
                and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant)
                and node.args[1].value in PROBED
            ):
                found.append(f"{path.relative_to(CORE)}:{node.lineno} {ast.unparse(node)}")
    # on_picked_up on the progress *reporters* (core's own, not a plugin role); kit.py's
    # storage url: kit switches it to HasLocation (handoff in /work/briefs/team.md)
    allowed = {"flower/progress.py", "flower/liveness.py", "kit.py"}
    assert [f for f in found if f.split(":")[0] not in allowed] == []


def test_the_hook_reference_documents_every_capability() -> None:
    text = (CORE.parents[1] / "docs" / "reference" / "hooks.md").read_text()
    section = text[text.index("## Optional capabilities") :]
    for capability in CAPABILITIES:
        row = f"| `{capability.protocol.__name__}` |"
        assert row in section, f"no row for {capability.protocol.__name__}"
