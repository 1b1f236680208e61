"""``syftflwr report RESULT``: the summary of a run kept by ``run`` or ``simulate``, and
its plot."""

from __future__ import annotations

from pathlib import Path

import click

from syftflwr.cli._live import print_summary
from syftflwr.cli._output import echo_json, make_console
from syftflwr.flower import results


@click.command()
@click.argument("result", type=click.Path(path_type=Path))
@click.option(
    "--plot",
    "plot_to",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write accuracy and loss per round (the ServerApp's and each datasite's) to "
    "this image (.png, .svg, .pdf); needs matplotlib.",
)
@click.option("--json", "json_out", is_flag=True, help="Print the result document as JSON.")
def report(result: Path, plot_to: Path | None, json_out: bool) -> None:
    """Summarise RESULT: a result.json that `syftflwr run` or `syftflwr simulate` printed
    the path of, its runs/<run id> folder, or a Flower app's folder (its latest result)."""
    path = results.find(result)
    loaded = results.load(path)
    console = make_console(stderr=json_out)
    if json_out:
        echo_json(results.to_document(loaded))
    title = f"{loaded.app_name or 'run'}: run {loaded.run_id}"
    print_summary(console, loaded, title=title)
    console.print(f"result: {path}", highlight=False, soft_wrap=True)
    if plot_to is not None:
        figure = results.plot(loaded)
        plot_to.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(plot_to, dpi=120)
        console.print(f"plot: {plot_to}", highlight=False, soft_wrap=True)
