"""Gradient flow over time: a layers x steps heatmap of a watch log (needs matplotlib)."""

from __future__ import annotations

import math
from pathlib import Path

from gradlint.watcher.record import Run, number
from gradlint.watcher.timeline import Episode

PANELS = (
    ("grad_rms", "log10 gradient RMS per layer"),
    ("update_ratio", "log10 |update| / |weight| per layer"),
)


LINE_COLORS = ("tab:red", "tab:orange", "tab:pink", "tab:brown", "tab:purple", "black")
MARKS = (("red", "NaN/Inf"), ("black", "exactly 0"), ("lightgray", "no gradient / not run"))


LINE_COLORS = ("tab:red", "tab:orange", "tab:pink", "tab:brown", "tab:purple", "black")
MARKS = (("red", "NaN/Inf"), ("black", "exactly 0"), ("lightgray", "no gradient / not run"))


class PlotError(Exception):
    """matplotlib is missing, the log has nothing to draw, or the file cannot be written."""


def plot_heatmap(run: Run, episodes: list[Episode], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only; never open a window
        import matplotlib.pyplot as plt
        import numpy as np
        from matplotlib.patches import Rectangle
    except ImportError:
        raise PlotError("--plot needs matplotlib: pip install matplotlib") from None
    if not run.steps:
        raise PlotError(f"{run.path}: no sampled steps to plot")
    names = _layer_names(run)
    if not names:
        raise PlotError(f"{run.path}: no layer with parameters to plot")
    steps = [int(r["step"]) for r in run.steps]
    height = max(4.0, 0.22 * len(names) + 1.5)
    fig, axes = plt.subplots(2, 1, figsize=(max(7.0, 0.12 * len(steps) + 4) + 3, 2 * height))
    # no value (lightgray): no gradient, or the layer did not run
    cmap = plt.get_cmap("viridis").with_extremes(bad="lightgray")
    for ax, (key, title) in zip(axes, PANELS):
        grid, marks = _grid(run, names, key)
        masked = np.ma.masked_invalid(np.array(grid, dtype=float))
        image = ax.imshow(masked, aspect="auto", interpolation="nearest", cmap=cmap)
        for row, col, color in marks:  # NaN/Inf and exact zeros, never mistaken for gaps
            ax.add_patch(Rectangle((col - 0.5, row - 0.5), 1, 1, color=color, linewidth=0))
        fig.colorbar(image, ax=ax, fraction=0.03, pad=0.01)
        ax.set_title(title, fontsize=9)
        ax.set_yticks(range(len(names)))
        ax.set_yticklabels(names, fontsize=7)
        ticks = _ticks(len(steps))
        ax.set_xticks(ticks)
        ax.set_xticklabels([f"{steps[i]:,}" for i in ticks], fontsize=7, rotation=45)
        ax.set_ylabel("layer (input at top)")
        for i, episode in enumerate(episodes):
            col = _column(steps, episode.start)
            ax.axvline(
                col - 0.5 + 0.04 * i,
                color=LINE_COLORS[i % len(LINE_COLORS)],
                linewidth=1.5,
                label=f"{episode.code} {episode.name} from step {episode.start:,}",
            )
        for color, label in MARKS:
            ax.add_patch(Rectangle((0, 0), 0, 0, color=color, label=label))
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.12, 1.0), borderaxespad=0)
    axes[-1].set_xlabel("optimizer step (sampled)")
    fig.suptitle(f"Gradient flow over training: {run.location.name}", fontsize=10)
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=100)
    except OSError as exc:
        raise PlotError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)


def _layer_names(run: Run) -> list[str]:
    order: dict[str, int] = {}
    for record in run.steps:
        for layer in record.get("layers", ()):
            order.setdefault(layer["name"] or "(model)", int(layer["order"]))
    return sorted(order, key=lambda n: order[n])


def _grid(
    run: Run, names: list[str], key: str
) -> tuple[list[list[float]], list[tuple[int, int, str]]]:
    rows = {n: i for i, n in enumerate(names)}
    grid = [[math.nan] * len(run.steps) for _ in names]
    marks: list[tuple[int, int, str]] = []
    for col, record in enumerate(run.steps):
        for layer in record.get("layers", ()):
            row = rows[layer["name"] or "(model)"]
            value = number(layer.get(key))
            if value is None:
                continue
            if value == 0 or not math.isfinite(value):
                marks.append((row, col, "black" if value == 0 else "red"))
                continue
            grid[row][col] = math.log10(abs(value))
    return grid, marks


def _column(steps: list[int], step: int) -> int:
    return next((i for i, s in enumerate(steps) if s >= step), len(steps) - 1)


def _ticks(count: int) -> list[int]:
    stride = max(1, count // 12)
    return list(range(0, count, stride))
