"""The one place syftflwr's plugin hooks are declared.

A transport plugin is a module (named by an entry point in the group
``syftflwr.transports``; the entry-point name is the transport name) that implements
these hooks with :data:`hookimpl`. Core registers each transport in a plugin manager of
its own, so a hook call always reaches exactly the selected transport — selection is a
lookup by name, never "whichever plugin answered first".

Keep the hook module light: ``syftflwr_transport_info`` and ``syftflwr_detect`` are
called to list and auto-detect transports, and must not import the transport's heavy
libraries (google clients, gcsfs, syft-rpc...). Import those inside the role factories.

A minimal plugin::

    from syftflwr import hookimpl
    from syftflwr.info import Capabilities, Detection, TransportInfo

    @hookimpl
    def syftflwr_transport_info():
        return TransportInfo(name="foo", description="Foo storage",
                             capabilities=Capabilities(notifies_arrivals=False,
                                                       poll_interval=0.5))

    @hookimpl
    def syftflwr_make_client(context):
        from syftflwr_foo.client import FooClient   # heavy imports here
        return FooClient(context)

    ... syftflwr_make_rpc / syftflwr_make_events likewise.

Every hook below is ``firstresult``: one plugin manager holds one transport.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

from syftflwr._deprecation import mark_private as _mark_private

if TYPE_CHECKING:
    import click

    from syftflwr.info import Detection, TransportContext, TransportInfo
    from syftflwr.roles import ClientRole, EventsRole, RPCRole

PROJECT_NAME = "syftflwr"
ENTRY_POINT_GROUP = "syftflwr.transports"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

REQUIRED_HOOKS = (
    "syftflwr_transport_info",
    "syftflwr_make_client",
    "syftflwr_make_rpc",
    "syftflwr_make_events",
)
"""A transport must implement these; the others are optional."""


# =============================================================================
# Metadata and detection
# =============================================================================
@hookspec(firstresult=True)
def syftflwr_transport_info() -> TransportInfo:
    """Describe the transport: name, description, capabilities, options, API version.

    :return: a :class:`~syftflwr.info.TransportInfo`. ``name`` must equal the
        entry-point name. ``api_version`` is the plugin-API version the plugin was built
        for (:data:`syftflwr.info.PLUGIN_API_VERSION`).

    Must be cheap and side-effect free: it is called to list transports.

    Example::

        @hookimpl
        def syftflwr_transport_info():
            return TransportInfo(
                name="foo", description="Foo object storage",
                capabilities=Capabilities(notifies_arrivals=False, poll_interval=0.5,
                                          max_object_size=5 * 2**20),
                options=(OptionSpec("bucket", "str", "bucket to use", required=True),),
            )
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def syftflwr_detect(context: TransportContext) -> Detection:
    """Say whether the transport is usable here, why, and how strongly it is preferred.

    :param context: what is known so far (``email`` may be None, ``options`` hold the
        transport's validated table or its defaults).
    :return: a :class:`~syftflwr.info.Detection`. Auto-detection picks the usable
        transport with the highest ``preference`` (ties broken by name). Not implementing
        this hook means "never auto-selected" (explicit selection still works).

    Must not import heavy libraries or touch the network; look for config files,
    tokens, environment variables.

    Example::

        @hookimpl
        def syftflwr_detect(context):
            path = Path(os.environ.get("FOO_TOKEN", "~/.foo/token")).expanduser()
            if path.exists():
                return Detection(True, f"token found at {path}", preference=50)
            return Detection(False, f"no token at {path}")
    """
    raise NotImplementedError


# =============================================================================
# Client role: who am I, where are my and my peers' mailboxes
# =============================================================================
@hookspec(firstresult=True)
def syftflwr_make_client(context: TransportContext) -> ClientRole:
    """Build the participant's client role.

    :param context: a context whose ``email`` is set.
    :return: an object satisfying :class:`~syftflwr.roles.ClientRole`. Its ``email``
        is the identity the *transport* reports (from its own config or token); core
        raises :class:`~syftflwr.errors.IdentityMismatchError` when it differs from
        ``context.email``.

    Example::

        @hookimpl
        def syftflwr_make_client(context):
            return FooClient(email=context.require_email(), bucket=context.options["bucket"])
    """
    raise NotImplementedError


# =============================================================================
# RPC role: send a request, get a handle, fetch / wait for its response, forget it
# =============================================================================
@hookspec(firstresult=True)
def syftflwr_make_rpc(client: ClientRole, context: TransportContext) -> RPCRole:
    """Build the RPC role used by the aggregator (the Grid) to talk to datasites.

    :param client: the object returned by ``syftflwr_make_client``.
    :param context: the same context.
    :return: an object satisfying :class:`~syftflwr.roles.RPCRole`; subclass
        :class:`~syftflwr.roles.BaseRPC` so waiting is event-driven (call
        ``notify_arrival()`` on arrival) or polled at ``Capabilities.poll_interval``.

    Example::

        @hookimpl
        def syftflwr_make_rpc(client, context):
            return FooRPC(client, context, CAPABILITIES)
    """
    raise NotImplementedError


# =============================================================================
# Events role: register endpoint handlers, serve until stopped, stop
# =============================================================================
@hookspec(firstresult=True)
def syftflwr_make_events(client: ClientRole, context: TransportContext) -> EventsRole:
    """Build the events role a datasite runner serves requests with.

    :param client: the object returned by ``syftflwr_make_client``.
    :param context: the same context.
    :return: an object satisfying :class:`~syftflwr.roles.EventsRole`; subclass
        :class:`~syftflwr.roles.BaseEvents` and hand each arriving request to
        ``dispatch()``, storing the response it returns.

    Example::

        @hookimpl
        def syftflwr_make_events(client, context):
            return FooEvents(client, context, CAPABILITIES)
    """
    raise NotImplementedError


# =============================================================================
# CLI
# =============================================================================
@hookspec
def syftflwr_register_commands(group: click.Group) -> None:
    """Add transport-specific commands under ``syftflwr <transport-name> ...``.

    :param group: a click group named after the transport; add commands to it.
    :return: nothing.

    Called only when the user invokes (or asks for help on) this transport's group,
    with the hook module imported, so keep heavy imports inside the commands.

    Example::

        @hookimpl
        def syftflwr_register_commands(group):
            @group.command()
            def login():
                "Authorise this machine."
                ...
    """


_mark_private(__name__)  # plugins importing plugin-API names from here get a warning
