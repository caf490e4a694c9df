"""Render a probe run as a terminal table or JSON (pure functions: data in, text out)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from typing import Any

from gradlint.findings import Finding
from gradlint.probe.analysis import fmt, layer_flags, layer_ratios, reference_step
from gradlint.probe.crosscheck import CrossCheck
from gradlint.probe.spec import ProbeSpec
from gradlint.probe.stats import ModuleStats, ProbeReport

COLUMNS = ("#", "layer", "type", "out std", "dL/dout rms", "grad rms", "grad/weight", "notes")


def render_text(
    spec: ProbeSpec, report: ProbeReport, findings: list[Finding], check: CrossCheck
) -> str:
    step0 = reference_step(report)
    loc = report.location
    lines = [
        f"gradlint probe {spec.target}  ({loc.name} at {loc.path}:{loc.line}; batch "
        f"{report.batch_size}, loss {spec.loss_fn or spec.loss}, {spec.device} {spec.dtype}, seed "
        f"{spec.seed})",
        "",
    ]
    flags = layer_flags(step0, spec.thresholds)
    rows = [COLUMNS] + [_row(i, m, flags) for i, m in enumerate(step0.modules)]
    widths = [max(len(r[c]) for r in rows) for c in range(len(COLUMNS))]
    for row in rows:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    ratios = layer_ratios(step0)
    if step0.step:
        lines += [
            "",
            f"measured at step {step0.step}: at initialisation a zero-initialised layer passes "
            "no gradient to the layers below it",
        ]
    lines += [
        "",
        f"first/last layer: weight-gradient ratio {fmt(ratios.weight_grad)}, "
        f"back-propagated signal ratio {fmt(ratios.act_grad)}, forward std ratio "
        f"(last/first) {fmt(ratios.forward)}",
    ]
    if len(report.steps) > 1:
        lines += ["", "step  loss        grad norm"]
        lines += [f"{s.step:<4}  {fmt(s.loss):<10}  {fmt(s.grad_norm)}" for s in report.steps]
    if report.output.get("probabilities"):
        lines += [
            "",
            "note: the outputs are probabilities (non-negative, rows sum to 1)"
            + _gradient_note(report.output),
        ]
    lines.append("")
    lines += [_finding_line(f) for f in findings] or ["no runtime findings"]
    lines += ["", *_cross_check_lines(check, loc.name)]
    return "\n".join(lines) + "\n"


def render_json(
    spec: ProbeSpec, report: ProbeReport, findings: list[Finding], check: CrossCheck
) -> dict[str, Any]:
    """A JSON-ready dict; non-finite floats become the strings "inf", "-inf" and "nan"."""
    data = {
        "target": spec.target,
        "spec": spec.to_dict(),
        "location": asdict(report.location),
        "batch_size": report.batch_size,
        "steps": [{"step": s.step, "loss": s.loss, "grad_norm": s.grad_norm} for s in report.steps],
        "layers": [asdict(m) for m in report.steps[0].modules],
        "ratios": asdict(layer_ratios(reference_step(report))),
        "output": report.output,
        "findings": [finding_dict(f) for f in findings],
        "cross_check": {
            "available": check.available,
            "reason": check.reason,
            "scope": check.scope,
            "static": [
                {
                    "finding": finding_dict(v.static),
                    "verdict": v.verdict,
                    "evidence": v.evidence,
                    "in_model": v.in_model,
                }
                for v in check.verdicts
            ],
            "unpredicted": [finding_dict(f) for f in check.unpredicted],
        },
    }
    finite: dict[str, Any] = _finite(data)
    return finite


def dumps(data: Any) -> str:
    return json.dumps(data, indent=2, allow_nan=False)


def finding_dict(f: Finding) -> dict[str, Any]:
    data = asdict(f)
    data["severity"] = f.severity.value
    return data


def _row(i: int, m: ModuleStats, flags: dict[str, str]) -> tuple[str, ...]:
    notes = []
    if m.label in flags:
        notes.append(flags[m.label].upper())
    if m.dead_fraction is not None:
        notes.append(f"dead {m.dead_fraction:.0%}")
    if m.saturated_fraction is not None:
        notes.append(f"saturated {m.saturated_fraction:.0%}")
    if m.nonfinite_forward or m.nonfinite_backward or any(p.nonfinite for p in m.params):
        notes.append("NaN/Inf")
    if any(p.grad_none for p in m.trained_params):
        notes.append("no grad: " + ",".join(p.name for p in m.trained_params if p.grad_none))
    if any(p.duplicate_units for p in m.params):
        notes.append("symmetric units")
    if m.calls > 1:
        notes.append(f"{m.calls} calls")
    if m.kind == "activation":
        return (str(i), m.label, m.type, "", "", "", "", "  ".join(notes))
    return (
        str(i),
        m.label,
        m.type,
        fmt(m.out_std),
        fmt(m.act_grad_rms),
        fmt(m.grad_rms),
        fmt(m.update_ratio),
        "  ".join(notes),
    )


def _finding_line(f: Finding) -> str:
    text = f"{f.path}:{f.line}:{f.column}: {f.code} {f.name} [{f.severity.value}] {f.message}"
    return text + (f"\n    hint: {f.hint}" if f.hint else "")


def _gradient_note(output: dict[str, Any]) -> str:
    ratio = output.get("gradient_ratio")
    if not isinstance(ratio, float):
        return ""
    return (
        f"; cross entropy on them passes {ratio:.2g}x of the gradient the logits would "
        "get without the softmax"
    )


def _cross_check_lines(check: CrossCheck, name: str) -> list[str]:
    if not check.available:
        lines = [f"cross-check: {check.reason}"]
    elif not check.verdicts:
        lines = [f"cross-check: no static findings on {name}"]
    else:
        scope = f"in {name}" if check.scope == "class" else "in its file (extent unknown)"
        lines = [f"cross-check with static findings {scope}:"]
        for v in check.verdicts:
            s = v.static
            where = f"line {s.line}" + (
                "" if v.in_model or check.scope == "file" else f" (training code outside {name})"
            )
            lines.append(f"  {where}: {s.code} {s.name}: {v.verdict.upper()}: {v.evidence}")
    if check.unpredicted:
        lines.append(
            "runtime findings no static rule predicted: "
            + ", ".join(f"{f.code} {f.name}" for f in check.unpredicted)
        )
    return lines


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
