"""Hook implementations of the ``gdrive`` transport (entry point
``syftflwr.transports: gdrive``).

Kept light: nothing here imports the Google libraries; the role factories do.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from syftflwr.hookspecs import hookimpl
from syftflwr.info import Detection, TransportContext, TransportInfo

from syftflwr_gdrive.options import (
    NAME,
    OPTIONS,
    STATIC_CAPABILITIES,
    Settings,
    legacy_file,
)

if TYPE_CHECKING:
    import click
    from syftflwr.mailbox.events import MailboxEvents
    from syftflwr.mailbox.rpc import MailboxRPC

    from syftflwr_gdrive.client import GDriveClient


@hookimpl
def syftflwr_transport_info() -> TransportInfo:
    return TransportInfo(
        name=NAME,
        description="File mailbox in shared Google Drive folders (changes feed: one API "
        "call per idle poll).",
        capabilities=STATIC_CAPABILITIES,
        options=OPTIONS,
        docs_url="docs/transports/gdrive.md",
    )


@hookimpl
def syftflwr_detect(context: TransportContext) -> Detection:
    try:
        settings = Settings.from_context(context)
    except (ValueError, TypeError) as exc:
        return Detection(False, f"invalid options: {exc}")
    token = settings.token_path(context.email)
    if token.is_file():
        return Detection(True, f"Google Drive token at {token}", preference=30)
    old = None if settings.token_configured else legacy_file(token, context.env)
    if old is not None:
        return Detection(True, f"Google Drive token at {old} (moves to {token} on first use)", 30)
    if settings.per_participant and context.email is None and token.parent.is_dir():
        return Detection(True, f"per-participant Google Drive tokens in {token.parent}", 30)
    if not settings.token_configured and settings.colab:
        return Detection(True, "Google Colab (its built-in Google login)", preference=40)
    return Detection(False, f"no Google Drive token at {token} (run `syftflwr gdrive login`)")


@hookimpl
def syftflwr_make_client(context: TransportContext) -> GDriveClient:
    from syftflwr_gdrive.client import GDriveClient

    return GDriveClient(context)


@hookimpl
def syftflwr_make_rpc(client: GDriveClient, context: TransportContext) -> MailboxRPC:
    from syftflwr_gdrive.client import make_rpc

    return make_rpc(client, context)


@hookimpl
def syftflwr_make_events(client: GDriveClient, context: TransportContext) -> MailboxEvents:
    from syftflwr_gdrive.client import make_events

    return make_events(client, context)


@hookimpl
def syftflwr_register_commands(group: click.Group) -> None:
    import click

    @group.command()
    @click.option(
        "--client-secrets",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="OAuth client JSON of a 'Desktop app' client (default: "
        "$SYFTFLWR_GDRIVE_CLIENT_SECRETS, else client_secret.json next to the token: "
        "$SYFTFLWR_HOME/gdrive or ~/.config/syftflwr/gdrive).",
    )
    @click.option(
        "--token-file",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Where to save the token (default: the transport's token_file default).",
    )
    @click.option("--no-browser", is_flag=True, help="Print the URL instead of opening it.")
    @click.option("--browser", default=None, help="Name of the browser to open (webbrowser).")
    @click.option("--port", type=int, default=0, help="Local redirect port (0: any free one).")
    def login(
        client_secrets: Path | None,
        token_file: Path | None,
        no_browser: bool,
        browser: str | None,
        port: int,
    ) -> None:
        """Sign this machine in to Google Drive and save the token syftflwr uses."""
        from syftflwr_gdrive.login import default_client_secrets
        from syftflwr_gdrive.login import login as run_login

        target = token_file or Settings.from_options({}).token_path(None)
        run_login(
            client_secrets or default_client_secrets(),
            target,
            open_browser=not no_browser,
            browser=browser,
            port=port,
        )
        click.echo(f"saved the Google Drive token to {target}")
