"""``syftflwr new NAME``: start from nothing, offline."""

from __future__ import annotations

from pathlib import Path

import click

from syftflwr.scaffold import DEFAULT_PUBLISHER, new_app


@click.command()
@click.argument("name", type=click.Path(path_type=Path))
@click.option(
    "--publisher",
    default=DEFAULT_PUBLISHER,
    show_default=True,
    help="[tool.flwr.app].publisher: your Flower account, for `flwr build`.",
)
def new(name: Path, publisher: str) -> None:
    """Write a ready-to-run Flower app into the new directory NAME, with its
    [tool.syftflwr] table (no network needed).

    NAME follows Flower's rule for app names: a letter, then letters, digits and
    hyphens, at most 32 characters (e.g. my-app).
    """
    written = new_app(name, publisher=publisher)
    click.echo(f"wrote the Flower app {name.name!r} in {name}/:")
    for path in written:
        click.echo(f"  {path.relative_to(name)}")
    click.echo(f"next: syftflwr simulate {name}   (the whole federation on this machine)")
