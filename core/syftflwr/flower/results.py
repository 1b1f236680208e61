"""A run's result (:class:`RunResult`), as a file a person can keep, read back,
summarise and plot.

``syftflwr run`` (the aggregator) and ``syftflwr simulate`` write it to the aggregator's
state directory, ``runs/<run id>/result.json``; ``syftflwr report`` reads it. The format
is versioned (docs/results.md): a JSON object with ``format`` = ``"syftflwr-result"``,
``version`` = 1, and the fields of :class:`~syftflwr.flower.launch.RunResult` (and of
:class:`SimulationResult` for a simulation).
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from syftflwr.atomic import atomic_write
from syftflwr.config import ProjectConfig, load_participant, participant_state_dir
from syftflwr.config.resolve import resolve_state_dir
from syftflwr.errors import ConfigError
from syftflwr.flower.progress import (
    FailureEvent,
    MessageInfo,
    RoundInfo,
    failure_from,
    round_from,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from syftflwr.flower.runner import RunnerStats

FORMAT = "syftflwr-result"
VERSION = 1
"""Bumped on an incompatible change; a reader refuses versions it does not know."""
RUNS_FOLDER = "runs"
RESULT_FILE = "result.json"
PANELS = ("accuracy", "loss")
"""What ``report --plot`` draws: one panel each, the ServerApp's metric and every reply
metric whose name holds ``acc`` (accuracy) or ``loss``, per datasite."""
PLOT_INSTALL = "pip install matplotlib"
Mode = Literal["threads", "processes"]


# --------------------------------------------------------------------------- the result
@dataclass
class RunResult:
    """What an aggregator's run did, per round; ``ok`` is False if anything failed."""

    transport: str
    aggregator: str
    datasites: tuple[str, ...]
    rounds: list[RoundInfo]
    failures: list[FailureEvent]
    stop_acks: dict[str, bool]
    duration: float
    error: str | None = None
    """The ServerApp's traceback if it raised."""
    final_metrics: dict[str, float] = field(default_factory=dict)
    run_id: int | None = None
    resumed: bool = False
    """True for ``--resume``: completed rounds were replayed from the run journal."""
    replayed: int = 0
    """Resumed: instructions answered from the journal (no datasite involved)."""
    reattached: int = 0
    """Resumed: instructions of the stopped run whose replies were awaited again."""
    diverged_at: int | None = None
    """Resumed: the round where the ServerApp sent something else (not deterministic)."""
    divergence: str | None = None
    """Resumed and diverged: which instruction differed, in which part, and what that means."""
    checkpoints: str | None = None
    """The folder of the per-round checkpoints (docs/resume.md)."""
    encryption: str | None = None
    """How messages were protected, as the participant's roles did it
    (:attr:`~syftflwr.session.Participant.encryption`): "core" (syftflwr's envelope
    encryption), the transport's name (it encrypts them itself, e.g. "syftbox"), ""
    (plaintext), or None when the run ended before it connected (not known)."""
    interrupted: str | None = None
    """Why the run was stopped before its ServerApp finished (a signal); resumable."""
    pending: list[MessageInfo] = field(default_factory=list)
    """Interrupted: the instructions whose replies had not come yet."""
    app_name: str = ""
    broadcast: str = ""
    """How a broadcast's model travelled: once per phase as a shared blob, or one copy
    per datasite and why (:func:`syftflwr.flower.launch.broadcast_mode`)."""

    @property
    def accuracy(self) -> float | None:
        """The latest centralised ``accuracy`` the ServerApp reported, if any."""
        for info in reversed(self.rounds):
            if "accuracy" in info.metrics:
                return info.metrics["accuracy"]
        return None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.failures and self.interrupted is None

    def describe_failures(self) -> list[str]:
        return [f.describe() for f in self.failures]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __repr__(self) -> str:  # one line, not every event of the run
        return describe(self)

    def _repr_html_(self) -> str:
        return html_table(self)

    def plot(self) -> Figure:
        """Accuracy and loss per round, the ServerApp's and each datasite's (needs
        matplotlib; shown inline in a notebook)."""
        return plot(self)


@dataclass(repr=False)  # RunResult's one-line repr
class SimulationResult(RunResult):
    """A :class:`RunResult` plus how the simulation ran."""

    mode: Mode = "threads"
    runner_stats: dict[str, RunnerStats] = field(default_factory=dict)
    """Per-datasite counters (threads mode)."""
    exit_codes: dict[str, int | None] = field(default_factory=dict)
    """Per-participant process exit codes (processes mode)."""
    workspace: Path | None = None
    """Kept only when asked (``keep_workspace``); holds logs and mailboxes."""


# --------------------------------------------------------------------------- files
def result_path(state_dir: Path, run_id: int | None) -> Path:
    """``<state dir>/runs/<run id>/result.json`` (beside the run journal)."""
    return Path(state_dir, RUNS_FOLDER, "unknown" if run_id is None else str(run_id), RESULT_FILE)


def aggregator_state_dir(fed: ProjectConfig, *, create: bool = True) -> Path:
    """Where ``syftflwr run`` keeps the state of ``fed``'s aggregator, as this user
    resolves it: ``simulate`` keeps its result there too (its participants live in a
    workspace removed at the end)."""
    base, _ = resolve_state_dir(load_participant())
    return participant_state_dir(base, fed.app_name, fed.aggregator or "", create=create)


def latest(state_dir: Path) -> Path | None:
    """The newest result file in ``state_dir`` (None if there is none)."""
    found = list((Path(state_dir) / RUNS_FOLDER).glob(f"*/{RESULT_FILE}"))
    return max(found, key=lambda p: p.stat().st_mtime, default=None)


def to_document(result: RunResult) -> dict[str, Any]:
    """The JSON-ready document of ``result`` (header first)."""
    document: dict[str, Any] = {"format": FORMAT, "version": VERSION}
    document.update(asdict(result))
    plain: dict[str, Any] = json.loads(json.dumps(document, default=str))  # Paths as text
    return plain


def save(result: RunResult, path: Path) -> Path:
    """Write ``result`` to ``path`` atomically (a reader never sees half a file)."""
    atomic_write(path, json.dumps(to_document(result), indent=1))
    return path


def from_document(data: Mapping[str, Any], **defaults: Any) -> RunResult:
    """A result from a document, or from an aggregator's ``result_file`` (no header);
    ``defaults`` fill what the document lacks. A simulation's document (it has a
    ``mode``, or ``defaults`` give one) is a :class:`SimulationResult`; an aggregator's
    is a plain :class:`RunResult`, never a simulation in a mode it did not run in."""
    kind = SimulationResult if "mode" in data or "mode" in defaults else RunResult
    known = {f.name for f in fields(kind)}
    values: dict[str, Any] = {**defaults}
    values.update({k: v for k, v in data.items() if k in known})
    values["datasites"] = tuple(values.get("datasites", ()))
    values["rounds"] = [round_from(r) for r in values.get("rounds", [])]
    values["failures"] = [failure_from(f) for f in values.get("failures", [])]
    values["pending"] = [MessageInfo(**p) for p in values.get("pending", [])]
    if values.get("runner_stats"):  # threads mode only (importing the runner imports Flower)
        from syftflwr.flower.runner import RunnerStats

        values["runner_stats"] = {k: RunnerStats(**v) for k, v in values["runner_stats"].items()}
    if values.get("workspace"):
        values["workspace"] = Path(values["workspace"])
    return kind(**values)


def find(path: str | Path) -> Path:
    """The result file ``path`` names: the file itself, a ``runs/<run id>`` folder, or
    a Flower app's folder (its aggregator's latest result).

    :raises ConfigError: a Flower app with no result yet.
    """
    source = Path(path)
    if (source / "pyproject.toml").is_file():
        from syftflwr.flower.simulation_setup import simulation_project
        from syftflwr.session import as_project

        state = aggregator_state_dir(simulation_project(as_project(source)), create=False)
        newest = latest(state)
        if newest is None:
            raise ConfigError(
                f"{source} has no result yet (none in {state / RUNS_FOLDER})",
                fix=f"run `syftflwr simulate {source}`, or its aggregator with "
                f"`syftflwr run {source} --as EMAIL`, first",
            )
        return newest
    return source / RESULT_FILE if source.is_dir() else source


def load(path: str | Path) -> RunResult:
    """Read a result file (or what :func:`find` accepts).

    :raises ConfigError: not a file we can read, not a syftflwr result, or a version
        this syftflwr does not know — each with its fix.
    """
    source = find(path)
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{source} does not exist",
            fix="give the path `syftflwr run` or `syftflwr simulate` printed "
            "(…/runs/<run id>/result.json)",
        ) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(
            f"{source} is not a readable result file ({exc})",
            fix="give a result.json written by `syftflwr run` or `syftflwr simulate`",
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError(
            f'{source} is not a syftflwr result (no "format": "{FORMAT}")',
            fix="give a result.json written by `syftflwr run` or `syftflwr simulate`",
        )
    if data.get("version") != VERSION:
        raise ConfigError(
            f"{source} is a version {data.get('version')!r} result; this syftflwr reads "
            f"version {VERSION}",
            fix="read it with the syftflwr version that wrote it, or upgrade syftflwr",
        )
    try:
        return from_document(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(
            f"{source} is a damaged result file ({type(exc).__name__}: {exc})",
            fix="write it again: run the simulation or the aggregator again",
        ) from None


# --------------------------------------------------------------------------- display
def headline(result: RunResult) -> str:
    """What ran and how it ended, in one line."""
    mode = getattr(result, "mode", None) if type(result).__name__ == "SimulationResult" else None
    trained = [r.round for r in result.rounds if r.round]
    status = "ok" if result.ok else ("error" if result.error else f"{len(result.failures)} failed")
    parts = [
        f"run {result.run_id}" if result.run_id is not None else "",
        f"{len(trained)} rounds",
        f"{len(result.datasites)} datasites over {result.transport}",
        f"{mode} mode" if mode else "",
        f"accuracy {result.accuracy:.4f}" if result.accuracy is not None else "",
        f"{result.duration:.1f}s",
        status,
    ]
    return f"{result.app_name or 'run'}: " + ", ".join(p for p in parts if p)


def describe(result: RunResult) -> str:
    """The one-line repr: ``<SimulationResult quickstart: run 42, 3 rounds, ...>``."""
    return f"<{type(result).__name__} {headline(result)}>"


def html_table(result: RunResult) -> str:
    """A notebook's view: the line of :func:`describe` and one row per round."""
    rows = []
    for info in result.rounds:
        counts = info.replies_by_type()
        rows.append(
            "<tr>"
            + "".join(
                f"<td>{html.escape(cell)}</td>"
                for cell in (
                    str(info.round) if info.round else "init/eval",
                    ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "-",
                    ", ".join(info.failed_datasites) or "-",
                    *(f"{info.metrics[m]:.4f}" if m in info.metrics else "-" for m in PANELS),
                )
            )
            + "</tr>"
        )
    head = "".join(f"<th>{c}</th>" for c in ("round", "replies", "failed datasites", *PANELS))
    error = f"<pre>{html.escape(result.error)}</pre>" if result.error else ""
    return (
        f"<div><p>{html.escape(headline(result))}</p>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        f"{error}</div>"
    )


def series(result: RunResult) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """Per panel (accuracy, loss), label -> [(round, value)]: the ServerApp's metric
    (label ``server``) and each datasite's reply metrics (``ds1 eval_acc``)."""
    out: dict[str, dict[str, list[tuple[int, float]]]] = {p: {} for p in PANELS}
    for info in result.rounds:
        for panel in PANELS:
            if panel in info.metrics:
                out[panel].setdefault("server", []).append((info.round, info.metrics[panel]))
        for reply in info.replies:
            who = reply.info.datasite.partition("@")[0]
            for key, value in reply.metrics.items():
                name = key.rpartition(".")[2]
                kind = "accuracy" if "acc" in name else "loss" if "loss" in name else None
                if kind is not None:
                    out[kind].setdefault(f"{who} {name}", []).append((info.round, value))
    return out


def plot(result: RunResult) -> Figure:
    """Accuracy and loss per round: the ServerApp's line, and one per datasite metric
    (a colour per datasite, a line style per metric).

    :raises ConfigError: matplotlib is not installed (with the install line).
    """
    try:
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        raise ConfigError(
            "plotting needs matplotlib, which is not installed", fix=PLOT_INSTALL
        ) from None
    panels = series(result)
    labels = sorted({label for lines in panels.values() for label in lines if label != "server"})
    who = sorted({label.split(" ")[0] for label in labels})
    metrics = sorted({label.split(" ", 1)[1] for label in labels})
    styles = ("--", ":", "-.")
    figure = Figure(figsize=(10, 4), layout="constrained")
    for ax, (panel, lines) in zip(figure.subplots(1, len(PANELS)), panels.items(), strict=True):
        for label in sorted(lines, key=lambda name: (name != "server", name)):
            rounds, values = zip(*sorted(lines[label]), strict=True)
            if label == "server":
                ax.plot(rounds, values, "o-", color="black", linewidth=2.5, label="server")
                continue
            site, metric = label.split(" ", 1)
            ax.plot(
                rounds,
                values,
                marker=".",
                linewidth=1.2,
                color=f"C{who.index(site) % 10}",
                linestyle=styles[metrics.index(metric) % len(styles)],
                label=label,
            )
        ax.set_title(panel)
        ax.set_xlabel("round")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if lines:
            ax.legend(fontsize="small")
    figure.suptitle(headline(result), fontsize="small")
    return figure
