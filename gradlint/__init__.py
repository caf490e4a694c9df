"""gradlint: find gradient-flow bugs in PyTorch code."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gradlint.findings import FileResult, Finding, Severity

if TYPE_CHECKING:
    import os

    from gradlint.probe.spec import Thresholds
    from gradlint.rule import Invalid, Rule, Valid
    from gradlint.watcher.core import Watch

__version__ = "0.1.0"

__all__ = [
    "FileResult",
    "Finding",
    "Invalid",
    "Rule",
    "Severity",
    "Valid",
    "__version__",
    "watch",
]


def watch(
    model: Any,
    optimizer: Any,
    *,
    every: int = 100,
    log: str | os.PathLike[str] | None = "gradlint-watch.jsonl",
    tensorboard: str | os.PathLike[str] | None = None,
    anomaly: bool = False,
    scaler: Any = None,
    thresholds: Thresholds | None = None,
    report: bool = True,
) -> Watch:
    """Watch gradient flow in your own training loop; one line before the loop.

    `watch = gradlint.watch(model, optimizer, every=100)` (or `with gradlint.watch(...):`)
    records per-layer gradient norms, update/weight ratios, dead and saturated units and
    the first NaN/Inf every `every` optimizer steps to a JSON-lines `log`, and prints GL2xx
    verdicts naming the step each began. See docs/watch.md. Needs torch.
    """
    from gradlint.watcher.core import Watch

    return Watch(
        model,
        optimizer,
        every=every,
        log=log,
        tensorboard=tensorboard,
        anomaly=anomaly,
        scaler=scaler,
        thresholds=thresholds,
        report=report,
    )


def __getattr__(name: str) -> Any:
    # The rule API pulls in libcst; a run answered from the cache never needs it.
    if name in ("Invalid", "Rule", "Valid"):
        from gradlint import rule

        return getattr(rule, name)
    raise AttributeError(f"module 'gradlint' has no attribute {name!r}")
