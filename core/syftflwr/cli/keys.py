"""``syftflwr keys``: see, publish, rotate, trust and pin encryption keys, and accept a
peer's new signing key (docs/security.md).

``show`` works offline from the private state directory; the others connect through the
project's transport to publish this participant's key or read its peers'.
"""

from __future__ import annotations

import datetime
import re
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from syftflwr.cli._output import echo_json, warn_line
from syftflwr.config import (
    find_pyproject,
    load_participant,
    resolve_email,
    resolve_state_dir,
    write_key_pins,
)
from syftflwr.crypto.admin import (
    LocalKeys,
    PeerStatus,
    Published,
    check_fingerprint,
    peer_statuses,
    published_keys,
    require_encryption,
)
from syftflwr.crypto.keys import short
from syftflwr.crypto.signing import SignerTrust, SigningIdentity
from syftflwr.errors import ConfigError, EncryptionError, MissingKeyError
from syftflwr.names import validate_email
from syftflwr.session import Participant, as_project, connect, infer_identity, local_keys

F = TypeVar("F", bound=Callable[..., Any])
STYLE = {"pinned": "green", "trusted": "green", "new": "yellow", "unchecked": "dim",
         "unpublished": "yellow", "changed": "red bold", "error": "red"}  # fmt: skip


def _common(func: F) -> F:
    """PROJECT, --as and --transport: the same meaning as in ``syftflwr run``."""
    func = click.option("--transport", help="Transport name (overrides env and config).")(func)
    func = click.option(
        "--as",
        "email",
        metavar="EMAIL",
        help="Who you are (default: SYFTFLWR_EMAIL, settings, the only participant that ran here).",
    )(func)
    return click.argument("project", type=click.Path(path_type=Path), default=".")(func)


def _connect(project: Path, email: str | None, transport: str | None) -> Participant:
    """Connected with encryption on: connecting publishes this participant's key."""
    loaded = as_project(project)
    require_encryption(loaded)
    email, _ = infer_identity(loaded, email)
    participant = connect(loaded, email=email, transport=transport)
    if participant.keyring is None:  # a transport with its own end-to-end encryption
        participant.close()
        raise EncryptionError(
            f"the {participant.transport.name!r} transport encrypts end to end with its own "
            "keys, so syftflwr's keys are not used with it (see its documentation)"
        )
    return participant


def _lookup(participant: Participant, keys: LocalKeys) -> dict[str, Published]:
    assert participant.keyring is not None
    return published_keys(participant.keyring, keys.project.correspondents(keys.email))


@click.group()
def keys() -> None:
    """Manage this participant's encryption keys and its trust in its peers' keys.

    Every message is sealed to its recipient and signed by its sender's key. A peer's key
    is believed if the project pins it ([tool.syftflwr.keys]) or, unpinned, the first time
    it is seen; a changed key is refused until you accept it (`keys trust`).
    """


@keys.command()
@_common
@click.option("--published", is_flag=True, help="Also look up the keys peers have published.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def show(
    project: Path, email: str | None, transport: str | None, published: bool, as_json: bool
) -> None:
    """Your key's fingerprint (created if you have none), and what you trust of your peers'.

    Read your fingerprint out to your peers over a channel you trust (a call, a signed
    e-mail): that comparison is what makes pinning and accepting keys safe.
    """
    mine = local_keys(as_project(project), email)
    created = not mine.store.exists()
    pair = mine.store.load_or_create()
    signing = _signing_key(mine.email)
    looked_up: dict[str, Published] | None = None
    if published:
        with _connect(project, mine.email, transport) as participant:
            looked_up = _lookup(participant, mine)
    peers = peer_statuses(mine, looked_up)
    path = mine.store.current_path
    if as_json:
        echo_json(
            {
                "email": mine.email,
                "fingerprint": pair.fingerprint,
                "key_file": str(path),
                "created": created,
                "retired": len(mine.store.retired()),
                "signing_fingerprint": signing.fingerprint if signing else None,
                "peers": [_peer_json(p) for p in peers],
            }
        )
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    when = datetime.datetime.fromtimestamp(path.stat().st_mtime).isoformat(timespec="seconds")
    retired = len(mine.store.retired())
    click.echo(f"{mine.email}  {pair.fingerprint}")
    click.echo(f"  {'created now' if created else 'created ' + when}: {path} (mode {mode:o})")
    if retired:
        click.echo(f"  {retired} retired key(s) kept to open messages sealed before a rotation")
    if signing:
        click.echo(f"  signing key (jobs and decisions, every app): {signing.fingerprint}")
    else:
        click.echo(
            "  signing key: none yet (made by the first `syftflwr submit` or `syftflwr jobs`)"
        )
    _print_peers(peers)


def _signing_key(email: str) -> SigningIdentity | None:
    """This participant's signing key (one for every app), if it has made one."""
    base, _ = resolve_state_dir(load_participant())
    try:
        return SigningIdentity.load(base, email)
    except MissingKeyError:
        return None


def _peer_json(peer: PeerStatus) -> dict[str, Any]:
    return {
        "email": peer.email,
        "role": peer.role,
        "pinned": peer.pinned,
        "trusted": peer.known,
        "published": None if peer.published is None else peer.published.fingerprint,
        "verdict": peer.verdict,
        "explanation": peer.explanation,
    }


def _print_peers(peers: list[PeerStatus]) -> None:
    if not peers:
        return
    table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    for column in ("participant", "role", "pinned", "trusted", "published", "verdict"):
        table.add_column(column)
    for p in peers:
        seen = p.published.fingerprint if p.published else None
        table.add_row(
            p.email,
            p.role,
            short(p.pinned) if p.pinned else "-",
            short(p.known) if p.known else "-",
            short(seen) if seen else ("-" if p.published is None else "none"),
            f"[{STYLE[p.verdict]}]{p.verdict}[/]",
        )
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
    console.print()
    console.print(table)
    for p in peers:
        if p.verdict in ("changed", "error", "unpublished", "new"):
            console.print(f"  {p.email}: {p.explanation}", markup=False)


@keys.command()
@_common
def publish(project: Path, email: str | None, transport: str | None) -> None:
    """Publish your public key where your peers read it (`syftflwr run` does it too)."""
    with _connect(project, email, transport) as participant:
        assert participant.keyring is not None
        fp = participant.keyring.own.fingerprint
        readers = [p for p in participant.project.participants if p != participant.email]
    click.echo(f"published {fp} of {participant.email} for {', '.join(readers)}")


@keys.command()
@_common
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def rotate(project: Path, email: str | None, transport: str | None, yes: bool) -> None:
    """Replace your key pair with a new one and publish it.

    Your peers will refuse the new key until each accepts it (`syftflwr keys trust
    YOUR_EMAIL`) or the project's pin is updated (`syftflwr keys pin`). Old private keys
    are kept (retired) so replies sealed to them can still be opened.
    """
    mine = local_keys(as_project(project), email)
    if not yes:
        click.confirm(
            f"rotate the key of {mine.email}? every peer must then accept the new one", abort=True
        )
    old, new = mine.store.rotate()
    click.echo(f"rotated {mine.email}: {old.fingerprint} -> {new.fingerprint}")
    try:
        with _connect(project, mine.email, transport):
            pass
    except Exception as exc:
        warn_line(f"the new key is not published yet ({exc}); run `syftflwr keys publish`")
    else:
        click.echo("published the new key")
    if mine.email in mine.project.keys:
        warn_line(
            f"the project pins the old key of {mine.email}: run `syftflwr keys pin --replace "
            f"{mine.email}` and share the updated pyproject.toml with every participant"
        )
    click.echo(f"next: tell your peers {new.fingerprint}; each runs")
    click.echo(f"  syftflwr keys trust {mine.email} --fingerprint {new.fingerprint}")


@keys.command()
@click.argument("peer", metavar="EMAIL")
@_common
@click.option("--fingerprint", "expected", metavar="SHA256", help="Accept only this fingerprint.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def trust(
    peer: str,
    project: Path,
    email: str | None,
    transport: str | None,
    expected: str | None,
    yes: bool,
) -> None:
    """Accept the key EMAIL publishes now, e.g. after they rotated it.

    Compare the fingerprint shown with the one EMAIL reads out from `syftflwr keys show`;
    --fingerprint makes that comparison exact (and scriptable).
    """
    mine = local_keys(as_project(project), email)
    peer = mine.project.participant_email(peer)
    if peer in mine.project.keys:
        raise EncryptionError(
            f"the project pins the key of {peer}; a pin outranks what you trust, so update "
            f"the pin instead with `syftflwr keys pin --replace {peer}` (and share "
            "pyproject.toml)"
        )
    mine.project.role_of(peer)
    with _connect(project, mine.email, transport) as participant:
        assert participant.keyring is not None
        record = participant.keyring.fetch_record(peer)
    if record is None:
        raise MissingKeyError(
            f"{peer} has not published a key yet; it is published when they start "
            "`syftflwr run` or run `syftflwr keys publish`"
        )
    fp = record.fingerprint
    previous = mine.trust.known().get(peer)
    if previous == fp:
        click.echo(f"{peer}: {fp} is already trusted")
        return
    if expected is not None:
        check_fingerprint(expected, fp, peer)
    elif not yes:
        was = f" (was {previous})" if previous else ""
        click.confirm(f"trust {fp} as the key of {peer}{was}?", abort=True)
    mine.trust.trust(peer, fp)
    click.echo(f"trusted {fp} for {peer}")


@keys.command("trust-signer")
@click.argument("peer", metavar="EMAIL")
@click.option(
    "--fingerprint",
    "expected",
    required=True,
    metavar="SHA256",
    help="The signing-key fingerprint EMAIL read out to you (`syftflwr keys show`).",
)
@click.option(
    "--as",
    "email",
    metavar="EMAIL",
    help="Who you are (default: SYFTFLWR_EMAIL, settings).",
)
def trust_signer(peer: str, expected: str, email: str | None) -> None:
    """Accept a new signing key of EMAIL, e.g. after they replaced theirs.

    A signing key belongs to a participant, not to a project: jobs and decisions signed
    by any other key than the one first seen (or pinned) are refused until you accept
    it here, with the fingerprint they read out to you over a channel you trust.
    """
    settings = load_participant()
    who, _ = resolve_email(settings, email=email)
    if who is None:
        raise ConfigError(
            "who are you? no email given",
            fix='pass --as EMAIL, set SYFTFLWR_EMAIL, or write email = "..." in your settings file',
        )
    peer = validate_email(peer)
    fp = expected.strip().lower()
    if not re.fullmatch(r"sha256:[0-9a-f]{64}", fp):
        raise ConfigError(
            f"{expected!r} is not a fingerprint",
            key="--fingerprint",
            fix="copy it exactly as `syftflwr keys show` prints it: sha256: and 64 hex digits",
        )
    if peer in settings.signing_keys:
        raise ConfigError(
            f"your settings pin the signing key of {peer}; a pin outranks what you trust",
            source=settings.source,
            key=f"signing_keys.{peer}",
            fix=f'write the new fingerprint there instead: "{peer}" = "{fp}"',
        )
    trust = SignerTrust.of(settings, who)
    previous = trust.store.known().get(peer)
    if previous == fp:
        click.echo(f"{peer}: signing key {fp} is already trusted")
        return
    trust.accept(peer, fp)
    was = f" (was {previous})" if previous else ""
    click.echo(f"trusted signing key {fp} for {peer}{was}")


@keys.command()
@_common
@click.option(
    "--replace",
    multiple=True,
    metavar="EMAIL",
    help="Re-pin EMAIL whose published key differs from its pin (after checking it with them).",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def pin(
    project: Path, email: str | None, transport: str | None, replace: tuple[str, ...], yes: bool
) -> None:
    """Pin every participant's published key in pyproject.toml ([tool.syftflwr.keys]).

    Then share the file: every participant refuses any other key for a pinned peer, so
    nobody who can write to the shared storage can swap one. Peers who have not published
    yet are left unpinned (run it again once they have). A pinned key that changed is
    replaced only if named with --replace.
    """
    pin_keys(project, email, transport, replace=replace, yes=yes)


def pin_keys(
    project: Path,
    email: str | None,
    transport: str | None,
    *,
    replace: tuple[str, ...] = (),
    yes: bool,
) -> None:
    """``keys pin``, also run by ``bootstrap --pin-keys``."""
    mine = local_keys(as_project(project), email)
    with _connect(project, mine.email, transport) as participant:
        found = _lookup(participant, mine)
    pins = {mine.email: mine.store.current().fingerprint}
    notes = {mine.email: "(you)"}
    missing = []
    for peer in peer_statuses(mine, found):
        seen = peer.published.fingerprint if peer.published else None
        if peer.verdict == "error" or (peer.verdict == "changed" and peer.email not in replace):
            raise EncryptionError(f"{peer.email}: {peer.explanation}; nothing pinned")
        if seen is None:
            missing.append(peer.email)
            continue
        pins[peer.email] = seen
        if peer.verdict == "changed":
            notes[peer.email] = f"REPLACES {peer.pinned or peer.known}"
    width = max(len(e) for e in pins)
    for who, fp in pins.items():
        click.echo(f"  {who:<{width}}  {fp}  {notes.get(who, '')}".rstrip())
    if not yes:
        click.confirm("pin these keys? (compare them with each participant first)", abort=True)
    changed = write_key_pins(find_pyproject(project), pins)
    click.echo(f"{'pinned' if changed else 'already pinned'}: {len(pins)} keys")
    if missing:
        warn_line(
            f"not pinned (no key published yet): {', '.join(missing)}; run `syftflwr keys "
            "pin` again once they have started"
        )
