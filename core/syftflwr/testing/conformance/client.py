"""Client role: identity and mailbox locations, and that every role factory returns an
object satisfying core's interfaces."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from pathlib import Path

import pytest

from syftflwr.crypto.directory import key_directory_of
from syftflwr.crypto.keys import KeyPair, PublicKeyRecord
from syftflwr.errors import SyftflwrError
from syftflwr.registry import Transport
from syftflwr.roles import ClientRole, EventsRole, RPCRole
from syftflwr.testing.conformance._federation import AGGREGATOR, DS1, DS2, Federation
from syftflwr.testing.conformance.base import ConformanceBase

USER_ENV = (
    "HOME", "USERPROFILE", "LOCALAPPDATA", "APPDATA", "XDG_CONFIG_HOME", "XDG_DATA_HOME",
    "XDG_STATE_HOME", "XDG_CACHE_HOME", "SYFTFLWR_HOME",
)  # fmt: skip
"""Where per-user folders come from: a transport takes them from its context only."""


class ClientConformance(ConformanceBase):
    """The client role and the role factories."""

    def test_roles_satisfy_core_interfaces(self, federation: Federation) -> None:
        client = federation.client(AGGREGATOR)
        assert isinstance(client, ClientRole)
        rpc = federation.new_rpc(AGGREGATOR)
        assert isinstance(rpc, RPCRole)
        events = federation.events(DS1)
        assert isinstance(events, EventsRole)

    def test_client_reports_the_participant_identity(self, federation: Federation) -> None:
        for email in (AGGREGATOR, DS1, DS2):
            client = federation.client(email)
            assert client.email.lower() == email.lower(), (
                f"the client built for {email} reports {client.email}; the identity a "
                "transport reports must be the configured participant's (or core refuses "
                "to run with IdentityMismatchError)"
            )

    def test_roles_act_as_their_participant(self, federation: Federation) -> None:
        """Core's Grid and runner check ``role.client.email`` when a role exposes it."""
        for role in (federation.new_rpc(AGGREGATOR), federation.events(DS1)):
            client = getattr(role, "client", None)
            if client is not None:
                assert client.email in (AGGREGATOR, DS1)

    def test_datasite_url_names_every_participant(self, federation: Federation) -> None:
        client = federation.client(AGGREGATOR)
        urls = {email: client.datasite_url(email) for email in (AGGREGATOR, DS1, DS2)}
        for email, url in urls.items():
            assert isinstance(url, str) and url, f"datasite_url({email!r}) returned {url!r}"
        assert len(set(urls.values())) == len(urls), (
            f"datasite_url gives the same location for different participants: {urls}"
        )

    def test_reads_only_the_environment_in_its_context(
        self,
        transport: Transport,
        federation: Federation,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Environment variables — and HOME / XDG_* for default folders — come from
        ``context.env``, never ``os.environ``: ``simulate`` and test suites give each
        participant an environment of its own, and a transport reading the process's
        would write into the user's real folders. With its default options and a
        process environment pointing elsewhere, the roles (and publishing a key) must
        leave that elsewhere untouched."""
        process_home, context_home = tmp_path / "process-home", tmp_path / "context-home"
        context_env = {k: v for k, v in os.environ.items() if k not in USER_ENV}
        for var in USER_ENV:
            monkeypatch.setenv(var, str(process_home / var.lower()))
            context_env[var] = str(context_home / var.lower())
        monkeypatch.setenv("HOME", str(process_home))
        context_env["HOME"] = str(context_home)
        for spec in transport.info.options:  # a path option set in the process only
            if spec.env and spec.type == "path":
                monkeypatch.setenv(spec.env, str(process_home / spec.name))
                context_env.pop(spec.env, None)
        context = dataclasses.replace(
            federation.context(DS1), options=transport.default_options(), env=context_env
        )
        transport.detect(context)
        with contextlib.suppress(SyftflwrError, ValueError):  # e.g. no token at home
            client = transport.make_client(context)
            try:
                directory = key_directory_of(client, context.app_name)
                if directory is not None:
                    record = PublicKeyRecord(DS1, KeyPair.generate().public, 0.0)
                    directory.publish(record.encode(), [AGGREGATOR])
                transport.make_rpc(client, context).close()
                transport.make_events(client, context).close()
            finally:
                client.close()
        written = sorted(str(p.relative_to(process_home)) for p in process_home.rglob("*"))
        assert not written, (
            f"the {transport.name!r} transport wrote into the process's HOME / XDG / "
            f"SYFTFLWR_HOME folders although its context names others: {written[:5]}; "
            "read environment variables and home folders from context.env "
            "(syftflwr.config.dirs.user_dir / expand_user take it)"
        )

    def test_client_needs_an_email(self, federation: Federation) -> None:
        with pytest.raises((ValueError, SyftflwrError)):
            federation.transport.make_client(federation.context(None))

    def test_close_is_idempotent(self, federation: Federation) -> None:
        client = federation.client(DS1)
        client.close()
        client.close()
        events = federation.events(DS2)
        events.close()
        events.close()
        rpc = federation.new_rpc(AGGREGATOR)
        rpc.close()
        rpc.close()
