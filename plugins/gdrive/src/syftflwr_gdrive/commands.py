"""The ``syftflwr gdrive`` commands (imported only when the user runs or asks for help on
them)."""

from __future__ import annotations

from pathlib import Path

import click

from syftflwr_gdrive.options import Settings


def register(group: click.Group) -> None:
    """``syftflwr gdrive login``."""

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
