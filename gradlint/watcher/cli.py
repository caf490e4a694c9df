"""`gradlint watch-report`: verdicts, cross-check and heatmap from a watch log (no torch)."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import NoReturn

import click

from gradlint.findings import Severity
from gradlint.probe.spec import Thresholds
from gradlint.watcher.output import rank_log
from gradlint.watcher.record import LogError, Run, read_runs
from gradlint.watcher.report import RunSummary, check_static, render_json, render_text
from gradlint.watcher.timeline import Timeline, merge_ranks

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


def replay(run: Run) -> Timeline:
    """The verdicts of one logged run, recomputed with the thresholds it was watched with."""
    known = {f.name for f in fields(Thresholds)}
    values = {k: v for k, v in (run.header.get("thresholds") or {}).items() if k in known}
    timeline = Timeline(run.location, Thresholds(**values), rank=run.rank)
    anomalies = sorted(run.anomalies, key=lambda a: int(a["step"]))
    for record in run.steps:
        while anomalies and int(anomalies[0]["step"]) <= int(record["step"]):
            timeline.add_anomaly(anomalies.pop(0))
        timeline.add(record)
    for anomaly in anomalies:
        timeline.add_anomaly(anomaly)
    return timeline


def summarize(paths: list[Path]) -> tuple[RunSummary, Run, list[Timeline]]:
    """The last run of each log (plus per-rank logs written beside a rank-0 log)."""
    runs = [read_runs(path)[-1] for path in paths]
    given = {p.resolve() for p in paths}
    for path, run in list(zip(paths, runs)):
        if run.rank != 0:
            continue
        for rank in range(1, int(run.header.get("world_size", 1))):
            sibling = rank_log(path, rank)
            if sibling.resolve() not in given and sibling.is_file():
                runs.append(read_runs(sibling)[-1])
    runs.sort(key=lambda r: r.rank)
    timelines = [replay(run) for run in runs]
    main = runs[0]
    last = main.steps[-1]["step"] if main.steps else -1
    steps = int(main.end["step"]) if main.end else int(last) + 1
    summary = RunSummary(
        location=main.location,
        steps=steps,
        samples=len(main.steps),
        every=int(main.header.get("every", 1)),
        world_size=max(int(main.header.get("world_size", 1)), len(runs)),
        episodes=tuple(
            (e, tuple(r)) for e, r in merge_ranks([list(t.episodes) for t in timelines])
        ),
        last_step=timelines[0].last_step,
        logs=tuple(run.path for run in runs),
    )
    return summary, main, timelines


@click.command("watch-report")
@click.argument("logs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--plot", type=click.Path(path_type=Path), help="Write a layers x steps heatmap.")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(("text", "json")),
    default="text",
    show_default=True,
)
def watch_report_command(logs: tuple[Path, ...], plot: Path | None, output_format: str) -> None:
    """Verdicts over time from a `gradlint.watch` log (JSON lines).

    Exit 1 when a warning or error was seen at some sampled step, 0 when none, 2 when a
    log cannot be read.
    """
    try:
        summary, main, _ = summarize(list(logs))
    except LogError as exc:
        _fail(str(exc))
    check = check_static(summary)
    if output_format == "json":
        click.echo(json.dumps(render_json(summary, check), indent=2))
    else:
        click.echo(render_text(summary, check), nl=False)
    if plot is not None:
        from gradlint.watcher.plot import PlotError, plot_heatmap

        try:
            plot_heatmap(main, [e for e, _ in summary.episodes], plot)
        except PlotError as exc:
            _fail(str(exc))
        click.echo(f"heatmap written to {plot}", err=True)
    severities = {Severity(e.severity) for e, _ in summary.episodes}
    raise SystemExit(
        EXIT_FINDINGS if severities & {Severity.WARNING, Severity.ERROR} else EXIT_CLEAN
    )


def _fail(message: str) -> NoReturn:
    click.echo(f"gradlint watch-report: error: {message}", err=True)
    raise SystemExit(EXIT_ERROR)
