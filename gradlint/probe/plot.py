"""The gradient-flow chart: mean and max |grad| per layer on a log scale (needs matplotlib)."""

from __future__ import annotations

from pathlib import Path

from gradlint.probe.analysis import layer_flags
from gradlint.probe.spec import Thresholds
from gradlint.probe.stats import ProbeReport

COLORS = {"vanishing": "tab:blue", "exploding": "tab:red"}
TINY = 1e-30  # log scale cannot show 0; exactly-zero gradients are drawn at this floor


class PlotError(Exception):
    """matplotlib is missing or the chart cannot be written."""


def plot_gradient_flow(report: ProbeReport, thresholds: Thresholds, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only; never open a window
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotError("--plot needs matplotlib: pip install matplotlib") from None
    step = report.steps[0]
    layers = [m for m in step.layers if m.grad_mean_abs is not None]
    if not layers:
        raise PlotError("no layer received a gradient; nothing to plot")
    flags = layer_flags(step, thresholds)
    names = [f"{m.label} ({m.type})" for m in layers]
    means = [max(m.grad_mean_abs or 0.0, TINY) for m in layers]
    maxes = [max(m.grad_max_abs or 0.0, TINY) for m in layers]
    xs = range(len(layers))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.35 * len(layers) + 2), 4.5))
    ax.bar(xs, maxes, color="lightgray", label="max |grad|")
    ax.bar(xs, means, width=0.5, color="tab:green", label="mean |grad|")
    for x, m in zip(xs, layers):
        flag = flags.get(m.label)
        if flag:
            ax.bar([x], [means[x]], width=0.5, color=COLORS[flag])
    for flag, color in COLORS.items():
        if flag in flags.values():
            ax.bar([], [], color=color, label=f"{flag} (vs last layer)")
    ax.set_yscale("log")
    ax.set_xticks(list(xs))
    ax.set_xticklabels(names, rotation=70, ha="right", fontsize=7)
    ax.set_xlabel("layer (forward order: input left, output right)")
    ax.set_ylabel("|gradient| (log scale)")
    ax.set_title(f"Gradient flow: {report.location.name}")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=100)
    except OSError as exc:
        raise PlotError(f"cannot write {path}: {exc}") from None
    finally:
        plt.close(fig)
