"""The watch's JSON-lines records (docs/watch.md) and their reading as probe measurements.

Records are plain JSON objects; this module needs no torch, so `gradlint watch-report`
reads a log anywhere. Non-finite floats are written as the strings "nan", "inf", "-inf".
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gradlint.probe.stats import Location, ModuleStats, ParamStats, StepReport

SCHEMA = 1  # bumped only when a field changes meaning or disappears; new fields do not bump it


class LogError(Exception):
    """A watch log cannot be read; the message names the file (and line)."""


def encode(value: Any) -> Any:
    """JSON-ready copy of `value` with non-finite floats as strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    return value


def dumps(record: dict[str, Any]) -> str:
    try:  # a record without NaN/Inf needs no copy
        return json.dumps(record, allow_nan=False, separators=(",", ":"))
    except ValueError:
        return json.dumps(encode(record), allow_nan=False, separators=(",", ":"))


def number(value: Any) -> float | None:
    """A float field as written by `encode` (None stays None)."""
    if value is None:
        return None
    if isinstance(value, str):
        return float(value)  # "nan", "inf", "-inf"
    return float(value)


@dataclass(frozen=True)
class Run:
    """One run in a log: its header record and its step records, in order."""

    header: dict[str, Any]
    steps: tuple[dict[str, Any], ...]
    anomalies: tuple[dict[str, Any], ...] = ()
    end: dict[str, Any] | None = None
    path: str = ""

    @property
    def location(self) -> Location:
        data = self.header.get("location") or {"path": "<model>", "line": 1}
        return Location.from_dict(dict(data))

    @property
    def rank(self) -> int:
        return int(self.header.get("rank", 0))


def read_runs(path: Path) -> list[Run]:
    """Every run in a log file (a file opened again by a later run gets a new header)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LogError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    return list(_runs(path, text.splitlines()))


def _runs(path: Path, lines: list[str]) -> Iterator[Run]:
    header: dict[str, Any] | None = None
    steps: list[dict[str, Any]] = []
    anomalies: list[dict[str, Any]] = []
    end: dict[str, Any] | None = None
    for number_, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            if number_ == len(lines):
                break  # a run killed mid-write leaves half a line; keep what came before
            raise LogError(f"{path}:{number_}: not a JSON record ({exc.msg})") from None
        kind = record.get("record") if isinstance(record, dict) else None
        if kind == "run":
            if record.get("schema") != SCHEMA:
                raise LogError(
                    f"{path}:{number_}: log schema {record.get('schema')!r} is not {SCHEMA}; "
                    "read it with the gradlint version that wrote it"
                )
            if header is not None:
                yield Run(header, tuple(steps), tuple(anomalies), end, str(path))
            header, steps, anomalies, end = record, [], [], None
        elif header is None:
            raise LogError(f"{path}:{number_}: record before the run header; not a watch log")
        elif kind == "step":
            steps.append(record)
        elif kind == "anomaly":
            anomalies.append(record)
        elif kind == "end":
            end = record
        else:
            raise LogError(f"{path}:{number_}: unknown record kind {kind!r}")
    if header is None:
        raise LogError(f"{path}: no watch records (empty file?)")
    yield Run(header, tuple(steps), tuple(anomalies), end, str(path))


def step_report(record: dict[str, Any]) -> StepReport:
    """A step record as the probe's StepReport, so the probe's analysis reads it unchanged."""
    modules: list[ModuleStats] = []
    for layer in record.get("layers", ()):
        params = tuple(
            ParamStats(
                name=p["name"],
                shape=tuple(p["shape"]),
                requires_grad=p.get("requires_grad", True),
                grad_none=p.get("grad_none", False),
                grad_norm=number(p.get("grad_norm")) or 0.0,
                weight_norm=number(p.get("weight_norm")) or 0.0,
                # only "is it exactly zero" is asked of the maximum: the norm answers that
                grad_max_abs=number(p.get("grad_norm")) or 0.0,
                grad_nonzero=int(p.get("grad_nonzero", 0)),
                nonfinite=p.get("nonfinite", False),
            )
            for p in layer.get("params", ())
        )
        modules.append(
            ModuleStats(
                name=layer["name"],
                type=layer["type"],
                kind="layer",
                order=layer["order"],
                calls=layer.get("calls", 0),
                out_std=number(layer.get("out_std")),
                act_grad_rms=number(layer.get("act_grad_rms")),
                act_grad_max=number(layer.get("act_grad_max")),
                nonfinite_forward=layer.get("nonfinite_forward", False),
                nonfinite_backward=layer.get("nonfinite_backward", False),
                backward_order=layer.get("backward_order"),
                params=params,
            )
        )
    for act in record.get("activations", ()):
        modules.append(
            ModuleStats(
                name=act["name"],
                type=act["type"],
                kind="activation",
                order=act["order"],
                calls=act.get("calls", 0),
                nonfinite_forward=act.get("nonfinite_forward", False),
                dead_fraction=number(act.get("dead_fraction")),
                saturated_fraction=number(act.get("saturated_fraction")),
            )
        )
    for other in record.get("nonfinite_modules", ()):
        # Modules without parameters (attention blocks, containers) whose output was NaN/Inf:
        # only there to place the first NaN; kind "module" keeps them out of layer ratios.
        modules.append(
            ModuleStats(
                name=other["name"],
                type=other["type"],
                kind="module",
                order=other["order"],
                nonfinite_forward=True,
            )
        )
    modules.sort(key=lambda m: m.order)
    loss = number(record.get("loss"))
    return StepReport(step=int(record["step"]), modules=tuple(modules), loss=loss)
