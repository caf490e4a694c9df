"""The gradient-flow chart: mean and max |grad| per layer on a log scale (needs matplotlib)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from gradlint.probe.analysis import layer_flags, reference_step
from gradlint.probe.spec import Thresholds
from gradlint.probe.stats import ModuleStats, ProbeReport

MEAN, MAX = "tab:green", "lightgray"
COLORS = {"vanishing": "tab:blue", "exploding": "tab:red"}
ZERO, NONE = "black", "tab:purple"
MAX_LABELS = 50  # beyond this many layers, label every k-th one so the names stay legible
MAX_WIDTH = 20.0  # inches: wider charts do not fit a screen or a page


class PlotError(Exception):
    """matplotlib is missing or the chart cannot be written."""


def plot_gradient_flow(report: ProbeReport, thresholds: Thresholds, path: Path) -> None:
    """Bars per layer in forward order. Layers whose gradient is exactly zero are drawn as a
    black marker on the floor, layers with no gradient at all (cut from the graph) as a
    purple one, so a gap is never mistaken for a tiny value."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only; never open a window
        import matplotlib.pyplot as plt
        from matplotlib.patches import Patch
    except ImportError:
        raise PlotError("--plot needs matplotlib: pip install matplotlib") from None
    step = reference_step(report)
    layers = [m for m in step.layers if m.trained_params]  # frozen layers are not drawn
    if not layers:
        raise PlotError("the model has no layer with trainable parameters; nothing to plot")
    flags = layer_flags(step, thresholds)
    positive = [v for m in layers for v in (m.grad_mean_abs, m.grad_max_abs) if v and v > 0]
    if positive:
        floor = 10 ** (math.floor(math.log10(min(positive))) - 1)
        top = 10 ** (math.ceil(math.log10(max(positive))) + 0.2)
    else:
        floor, top = 1e-8, 1.0
    n = len(layers)
    fig, ax = plt.subplots(figsize=(min(MAX_WIDTH, max(6.0, 0.3 * n + 2)), 5.0 if n <= 40 else 6.5))
    for x, m in enumerate(layers):
        kind = _kind(m)
        if kind == "none":
            ax.plot([x], [floor], marker="x", color=NONE, markersize=8, linestyle="none")
            continue
        if kind == "zero":
            ax.plot([x], [floor], marker="o", color=ZERO, markersize=6, linestyle="none")
            continue
        ax.bar([x], [m.grad_max_abs or floor], bottom=0, color=MAX, width=0.8)
        ax.bar([x], [m.grad_mean_abs or floor], color=COLORS.get(flags.get(m.label, ""), MEAN),
               width=0.5)
    ax.set_yscale("log")
    ax.set_ylim(floor / 2, top)
    step_x = max(1, math.ceil(n / MAX_LABELS))
    ticks = list(range(0, n, step_x))
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{layers[i].label} ({layers[i].type})" for i in ticks], rotation=70,
                       ha="right", fontsize=7)
    ax.set_xlim(-0.6, n - 0.4)
    every = "" if step_x == 1 else f"; one name per {step_x} layers"
    ax.set_xlabel(f"{n} layers in forward order: input left, output right{every}")
    ax.set_ylabel("|gradient| (log scale)")
    when = "" if step.step == 0 else f" (step {step.step}: a zero-initialised layer blocks step 0)"
    ax.set_title(f"Gradient flow: {report.location.name}{when}")
    handles: list[Any] = [
        Patch(color=MAX, label="max |grad|"),
        Patch(color=MEAN, label="mean |grad|"),
    ]
    for flag, color in COLORS.items():
        if flag in flags.values():
            handles.append(Patch(color=color, label=f"mean |grad|, {flag} (vs last layer)"))
    kinds = {_kind(m) for m in layers}
    if "zero" in kinds:
        handles.append(ax.plot([], [], marker="o", color=ZERO, linestyle="none",
                               label="exactly zero gradient")[0])
    if "none" in kinds:
        handles.append(ax.plot([], [], marker="x", color=NONE, linestyle="none",
                               label="no gradient (not in the graph)")[0])
    ax.legend(handles=handles, fontsize=8, loc="best")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=100)
    except OSError as exc:
        raise PlotError(f"cannot write {path}: {exc}") from None
    finally:
        plt.close(fig)


def _kind(m: ModuleStats) -> str:
    """'none': no parameter got a gradient; 'zero': all exactly zero; else 'some'."""
    if all(p.grad_none for p in m.trained_params):
        return "none"
    if not m.grad_max_abs:
        return "zero"
    return "some"
