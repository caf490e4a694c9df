"""The end-of-run report: verdicts over time and the static findings they confirm (no torch)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gradlint.probe.crosscheck import CrossCheck, cross_check
from gradlint.probe.render import finding_dict
from gradlint.probe.stats import Location, ProbeReport, StepReport
from gradlint.watcher.timeline import Episode, episode_finding


@dataclass(frozen=True)
class RunSummary:
    """What the report needs: plain data, the same whether live or read from a log."""

    location: Location
    steps: int  # optimizer steps seen (by rank 0)
    samples: int
    every: int
    world_size: int
    episodes: tuple[tuple[Episode, tuple[int, ...]], ...]  # merged over ranks
    last_step: StepReport | None = None
    logs: tuple[str, ...] = ()


def check_static(summary: RunSummary) -> CrossCheck:
    """The probe's cross-check, fed with the first finding of each episode."""
    runtime = [(episode_finding(summary.location, e), e.evidence) for e, _ in summary.episodes]
    steps = (summary.last_step,) if summary.last_step is not None else ()
    report = ProbeReport(steps, summary.location)
    return cross_check(report, runtime, loss="", steps=summary.steps)


def render_text(summary: RunSummary, check: CrossCheck) -> str:
    loc = summary.location
    ranks = f", {summary.world_size} ranks" if summary.world_size > 1 else ""
    lines = [
        f"gradlint watch: {loc.name} ({loc.path}:{loc.line}): {summary.steps:,} optimizer "
        f"steps, sampled every {summary.every:,} ({summary.samples:,} samples){ranks}"
    ]
    for episode, on_ranks in summary.episodes:
        where = ""
        if summary.world_size > 1:
            where = f" (rank{'s' if len(on_ranks) > 1 else ''} {', '.join(map(str, on_ranks))})"
        lines.append(
            f"  {episode.code} {episode.name} [{episode.severity}] {episode.headline}{where}"
        )
        lines.append(f"      {episode.message}")
    if not summary.episodes:
        lines.append("  no runtime findings at any sampled step")
    lines += _cross_check_lines(check, loc.name)
    if summary.logs:
        lines.append("log: " + ", ".join(summary.logs))
    return "\n".join(lines) + "\n"


def render_json(summary: RunSummary, check: CrossCheck) -> dict[str, Any]:
    return {
        "location": {
            "path": summary.location.path,
            "line": summary.location.line,
            "name": summary.location.name,
        },
        "steps": summary.steps,
        "samples": summary.samples,
        "every": summary.every,
        "world_size": summary.world_size,
        "verdicts": [
            {**e.to_dict(), "headline": e.headline, "ranks": list(r)} for e, r in summary.episodes
        ],
        "cross_check": {
            "available": check.available,
            "reason": check.reason,
            "static": [
                {"finding": finding_dict(v.static), "verdict": v.verdict, "evidence": v.evidence}
                for v in check.verdicts
            ],
        },
    }


def _cross_check_lines(check: CrossCheck, name: str) -> list[str]:
    if not check.available:
        return [f"cross-check: {check.reason}"]
    if not check.verdicts:
        return [f"cross-check: no static findings on {name}"]
    scope = f"in {name}" if check.scope == "class" else "in its file"
    lines = [f"cross-check with static findings {scope}:"]
    for v in check.verdicts:
        s = v.static
        lines.append(f"  line {s.line}: {s.code} {s.name}: {v.verdict.upper()}: {v.evidence}")
    return lines
