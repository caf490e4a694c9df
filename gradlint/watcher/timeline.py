"""Verdicts over time: the probe's GL2xx analysis on every sampled step, and when each began.

Each step record is read as a one-step probe report and analysed with the probe's own code
and thresholds. A finding that appears opens an episode at that step; the first sampled step
without it closes the episode. Growth of the global gradient norm since the first sampled step
uses the probe's `step-growth` threshold (GL202). Needs no torch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

from gradlint.findings import Finding, Severity
from gradlint.probe.analysis import CODES, analyze_with_evidence
from gradlint.probe.spec import Thresholds
from gradlint.probe.stats import Location, ProbeReport, StepReport
from gradlint.watcher.record import number, step_report

HEADLINES = {
    "GL201": "vanishing gradient from step {start}",
    "GL202": "exploding gradient from step {start}",
    "GL203": "dead units since step {start}",
    "GL204": "saturated activations since step {start}",
    "GL205": "NaN/Inf first at step {start}{where}",
    "GL206": "parameters cut off from the loss since step {start}",
    "GL207": "symmetric units since step {start}",
}


@dataclass(frozen=True)
class Episode:
    """One stretch of sampled steps over which a GL2xx finding held."""

    code: str
    name: str
    severity: str
    start: int  # first sampled step (or anomaly-mode step) showing it
    last: int  # last sampled step showing it
    message: str  # the finding's text at `start`
    evidence: str
    ended: int | None = None  # first sampled step without it; None: still there at the end
    where: str = ""  # GL205: module (and operation, in anomaly mode) where NaN/Inf appeared
    rank: int = 0

    @property
    def headline(self) -> str:
        where = f" in `{self.where}`" if self.where else ""
        text = HEADLINES.get(self.code, "{code} from step {start}")
        head = text.format(start=f"{self.start:,}", where=where, code=self.code)
        if self.ended is not None:
            return f"{head} until step {self.ended:,}"
        return head

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Episode:
        return cls(**data)


class Timeline:
    """Feed it step records in order; it keeps the episodes of every GL2xx finding."""

    def __init__(
        self, location: Location, thresholds: Thresholds | None = None, rank: int = 0
    ) -> None:
        self.location = location
        self.thresholds = thresholds or Thresholds()
        self.rank = rank
        self.episodes: list[Episode] = []
        self._open: dict[str, int] = {}  # code -> index in self.episodes
        self._baseline: tuple[int, float] | None = None  # first finite, positive grad norm
        self._first: dict[str, tuple[Finding, str]] = {}
        self.last_step: StepReport | None = None
        self.samples = 0

    def add(self, record: dict[str, Any]) -> list[Episode]:
        """Analyse one step record; return the episodes that begin at it."""
        step = step_report(record)
        self.last_step = step
        self.samples += 1
        report = ProbeReport((step,), self.location, record.get("batch_size"))
        found = {
            f.code: (f, evidence) for f, evidence in analyze_with_evidence(report, self.thresholds)
        }
        growth = self._growth(step.step, number(record.get("grad_norm")))
        if growth is not None:
            found["GL202"] = _merge(found.get("GL202"), growth, self.location)
        begun = []
        for code, (finding, evidence) in sorted(found.items()):
            self._first.setdefault(code, (finding, evidence))
            index = self._open.get(code)
            if index is not None:
                self.episodes[index] = replace(self.episodes[index], last=step.step)
                continue
            episode = Episode(
                code,
                finding.name,
                finding.severity.value,
                step.step,
                step.step,
                finding.message,
                evidence,
                where=_nonfinite_place(step) if code == "GL205" else "",
                rank=self.rank,
            )
            self._open[code] = len(self.episodes)
            self.episodes.append(episode)
            begun.append(episode)
        for code in [c for c in self._open if c not in found]:
            index = self._open.pop(code)
            self.episodes[index] = replace(self.episodes[index], ended=step.step)
        return begun

    def add_anomaly(self, record: dict[str, Any]) -> Episode | None:
        """Anomaly mode saw the first NaN/Inf made by one operation (maybe between samples)."""
        if "GL205" in self._open or any(e.code == "GL205" for e in self.episodes):
            return None
        info = CODES["GL205"]
        where = ".".join(p for p in (record.get("module"), record.get("op")) if p)
        message = (
            f"`{record.get('op')}` in `{record.get('module') or '(model)'}` made NaN/Inf in the "
            f"{record.get('phase', 'forward')} pass at step {int(record['step']):,}"
        )
        episode = Episode(
            "GL205",
            info.name,
            info.severity.value,
            int(record["step"]),
            int(record["step"]),
            message,
            message,
            where=where,
            rank=self.rank,
        )
        self._open["GL205"] = len(self.episodes)
        self.episodes.append(episode)
        finding = _finding(self.location, "GL205", message, Severity.ERROR)
        self._first.setdefault("GL205", (finding, message))
        return episode

    def runtime_findings(self) -> list[tuple[Finding, str]]:
        """The first finding of each code seen, with its evidence (for the cross-check)."""
        return [self._first[code] for code in sorted(self._first)]

    def _growth(self, step: int, norm: float | None) -> tuple[str, str] | None:
        if norm is None or not math.isfinite(norm):
            return None
        if self._baseline is None:
            if norm > 0:
                self._baseline = (step, norm)
            return None
        start, base = self._baseline
        factor = norm / base
        if factor <= self.thresholds.step_growth:
            return None
        evidence = f"global gradient norm grew {factor:.2g}x"
        return (
            f"{evidence} since step {start:,} ({base:.2g} -> {norm:.2g}, threshold "
            f"{self.thresholds.step_growth:g})",
            evidence,
        )


def merge_ranks(summaries: list[list[Episode]]) -> list[tuple[Episode, list[int]]]:
    """One line per code over all ranks: the earliest episode, and every rank that saw it."""
    by_code: dict[str, tuple[Episode, list[int]]] = {}
    for episodes in summaries:
        for episode in episodes:
            held = by_code.get(episode.code)
            if held is None:
                by_code[episode.code] = (episode, [episode.rank])
                continue
            first, ranks = held
            if episode.rank not in ranks:
                ranks.append(episode.rank)
            if (episode.start, episode.rank) < (first.start, first.rank):
                by_code[episode.code] = (episode, ranks)
    return [(e, sorted(r)) for e, r in sorted(by_code.values(), key=lambda er: er[0].start)]


def _merge(
    held: tuple[Finding, str] | None, growth: tuple[str, str], location: Location
) -> tuple[Finding, str]:
    if held is None:
        return _finding(location, "GL202", growth[0], CODES["GL202"].severity), growth[1]
    finding, evidence = held
    return replace(finding, message=f"{finding.message}; {growth[0]}"), evidence


def _finding(location: Location, code: str, message: str, severity: Severity) -> Finding:
    info = CODES[code]
    return Finding(
        path=location.path,
        line=location.line,
        column=1,
        end_line=location.line,
        end_column=max(location.end_column, 2),
        code=code,
        name=info.name,
        severity=severity,
        message=message,
        hint=info.hint,
    )


def episode_finding(location: Location, episode: Episode) -> Finding:
    """The finding an episode began with, pointing at the model's definition."""
    return _finding(location, episode.code, episode.message, Severity(episode.severity))


def _nonfinite_place(step: StepReport) -> str:
    """The module where NaN/Inf shows first: forward order, then backward order, then grads."""
    forward = [m for m in step.modules if m.nonfinite_forward]
    if forward:
        return forward[0].label
    backward = sorted(
        (m for m in step.modules if m.nonfinite_backward),
        key=lambda m: m.backward_order if m.backward_order is not None else 0,
    )
    if backward:
        return backward[0].label
    for m in step.layers:
        for p in m.params:
            if p.nonfinite:
                return f"{m.name}.{p.name}".lstrip(".")
    return ""
