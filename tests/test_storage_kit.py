"""The mailbox kit (``syftflwr.kit``): a storage-backed transport is one Storage plus one
small registration, and every storage transport of the repository stays that small."""

from __future__ import annotations

import ast
import inspect
import io
import tokenize
from pathlib import Path

import pytest
from syftflwr.config import resolve_options
from syftflwr.errors import ConfigError, IdentityMismatchError
from syftflwr.info import Detection, TransportContext
from syftflwr.kit import MailboxClient, MailboxSettings, StorageTransport, mailbox_options
from syftflwr.mailbox import LocalDirStorage
from syftflwr.mailbox.arrivals import Poller

ROOT = Path(__file__).resolve().parents[1]
HOOK_MODULE_BAR = 40
"""Code lines a storage transport needs beyond its Storage (issue 17)."""
KIT_TRANSPORTS = {
    "template": [ROOT / "examples/transport-template/src/syftflwr_template/plugin.py"],
    "sqlite": [ROOT / "examples/sqlite-transport/src/syftflwr_sqlite/plugin.py"],
    "fsspec-local": [ROOT / "plugins/fsspec-local/src/syftflwr_fsspec_local/plugin.py"],
    "gdrive": [ROOT / "plugins/gdrive/src/syftflwr_gdrive/plugin.py"],
}
"""Each storage transport on the kit: its hook module, registration and detection (not its
Storage, nor the modules holding its own option specs, arrival source or commands)."""


def code_lines(path: Path) -> int:
    """Physical lines holding code: not blank, not comments, not docstrings (module,
    class, function and attribute docstrings alike), as the file is formatted."""
    source = path.read_text()
    docstrings: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            docstrings.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT}
    code: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in skip and token.type != tokenize.ENDMARKER:
            code.update(range(token.start[0], token.end[0] + 1))
    return len(code - docstrings)


def test_the_counter_counts_code_only(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text(
        '"""Module\ndocstring."""\n\n# a comment\nimport os  # trailing\n\n'
        'X = 1\n"""An attribute docstring."""\n\ndef f(\n    a: int,\n) -> int:\n'
        '    """Doc."""\n    return a\n'
    )
    assert code_lines(sample) == 6  # import, X, def (3 lines), return


@pytest.mark.parametrize("name", sorted(KIT_TRANSPORTS))
def test_a_storage_transport_needs_at_most_40_lines_beyond_its_storage(name: str) -> None:
    counts = {path.name: code_lines(path) for path in KIT_TRANSPORTS[name]}
    assert sum(counts.values()) <= HOOK_MODULE_BAR, f"{name}: {counts}"


# --------------------------------------------------------------------------- the kit itself
class OwnedStorage(LocalDirStorage):
    """A directory storage that knows its user, as a token-based one does."""

    email = "owner@example.org"


def open_local(context: TransportContext, settings: MailboxSettings) -> LocalDirStorage:
    root = context.options.get("root")
    if not root:
        raise ConfigError("no root", key="root", fix="set root")
    cls = OwnedStorage if context.options.get("owned") else LocalDirStorage
    return cls(Path(str(root)), fsync=settings.fsync)


def kit(**kwargs: object) -> StorageTransport:
    return StorageTransport(
        "kitted",
        "test",
        storage=open_local,
        options=mailbox_options(poll_interval=0.25, fsync=True),
        **kwargs,  # type: ignore[arg-type]
    )


def context(tmp_path: Path, email: str = "a@example.org", **options: object) -> TransportContext:
    return TransportContext(
        transport="kitted",
        app_name="app",
        email=email,
        options={"root": str(tmp_path / "root"), **options},
        state_dir=tmp_path / "state" / email,
    )


def test_shared_options_validate_and_give_the_effective_capabilities(tmp_path: Path) -> None:
    transport = kit()
    info = transport.syftflwr_transport_info()
    names = [spec.name for spec in info.options]
    assert names == ["poll_interval", "max_poll_interval", "max_object_size",
                     "retention_interval", "workers", "fsync"]  # fmt: skip
    assert info.capabilities.poll_interval == 0.25 and not info.capabilities.notifies_arrivals
    client = transport.syftflwr_make_client(context(tmp_path, max_object_size=65536))
    try:
        assert client.capabilities.max_object_size == 65536
        assert client.capabilities.poll_interval == 0.25
        assert isinstance(client.arrivals, Poller)
        assert client.datasite_url("b@example.org").endswith("/syft_outbox_inbox_b@example.org_to_")
        assert (tmp_path / "root" / ".syftflwr" / "layout.json").is_file()  # the layout
        assert client.key_directory() is not None
    finally:
        client.close()


def test_options_are_validated_by_core_like_any_transport() -> None:
    info = kit().syftflwr_transport_info()
    with pytest.raises(ConfigError, match="poll_interval"):
        resolve_options(info, None, None, env={}, cli={"poll_interval": 0})


def test_a_storage_with_its_own_identity_is_reported_and_checked(tmp_path: Path) -> None:
    from syftflwr.config import check_identity

    ctx = context(tmp_path, owned=True)
    client = kit().syftflwr_make_client(ctx)
    try:
        assert client.email == OwnedStorage.email
        with pytest.raises(IdentityMismatchError):
            check_identity(ctx, client.email)
    finally:
        client.close()


def test_shared_storage_is_opened_once_per_key_and_forgotten(tmp_path: Path) -> None:
    transport = kit(share=lambda ctx, settings: ctx.options["root"])
    first = transport.syftflwr_make_client(context(tmp_path, "a@example.org"))
    second = transport.syftflwr_make_client(context(tmp_path, "b@example.org"))
    assert first.storage is second.storage and first.arrivals is second.arrivals
    first.close()  # a shared source outlives its clients
    unshared = kit().syftflwr_make_client(context(tmp_path, "c@example.org"))
    assert unshared.storage is not first.storage
    unshared.close()
    transport.forget()
    third = transport.syftflwr_make_client(context(tmp_path, "a@example.org"))
    assert third.storage is not first.storage
    transport.forget()


def test_a_storage_named_by_module_is_imported_when_a_role_is_built(tmp_path: Path) -> None:
    transport = kit()
    transport._storage = f"{__name__}:open_local"
    client = transport.syftflwr_make_client(context(tmp_path))
    assert isinstance(client, MailboxClient) and isinstance(client.storage, LocalDirStorage)
    client.close()
    with pytest.raises(ConfigError, match="no root"):
        transport.syftflwr_make_client(context(tmp_path, root=""))


def test_a_registration_without_the_shared_options_is_refused() -> None:
    with pytest.raises(TypeError, match="mailbox_options"):
        StorageTransport("x", "x", storage=open_local)


def test_detection_never_raises_on_options_it_cannot_read() -> None:
    transport = kit()

    @transport.detection
    def syftflwr_detect(context: TransportContext) -> Detection:
        return Detection(int(str(context.options["n"])) > 0, "counted")

    ok = TransportContext(transport="kitted", app_name="app", options={"n": 1})
    bad = TransportContext(transport="kitted", app_name="app", options={"n": "many"})
    assert syftflwr_detect(ok).usable
    verdict = syftflwr_detect(bad)
    assert not verdict.usable and verdict.reason.startswith("invalid kitted options: ")
    assert list(inspect.signature(syftflwr_detect).parameters) == ["context"]  # the hookspec's
