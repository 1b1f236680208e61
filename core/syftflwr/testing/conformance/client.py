"""Client role: identity and mailbox locations, and that every role factory returns an
object satisfying core's interfaces."""

from __future__ import annotations

import pytest

from syftflwr.errors import SyftflwrError
from syftflwr.roles import ClientRole, EventsRole, RPCRole
from syftflwr.testing.conformance._federation import AGGREGATOR, DS1, DS2, Federation
from syftflwr.testing.conformance.base import ConformanceBase


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
