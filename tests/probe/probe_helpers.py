"""Helpers for the probe tests: fixture model paths and an in-process probe run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

MODELS = Path(__file__).parent / "models"


def probe_in_process(target: str, *shapes: Any, **options: Any) -> Any:
    """Build `target` from tests/probe/models and probe it here (no child process).

    `shapes` are float input shapes or ready InputSpec objects."""
    import torch

    from gradlint.probe.execute import run_probe
    from gradlint.probe.spec import InputSpec, ProbeSpec
    from gradlint.probe.target import build_model, import_object

    init_args = options.pop("init_args", {})
    inputs = tuple(s if isinstance(s, InputSpec) else InputSpec(s) for s in shapes)
    spec = ProbeSpec(target=target, init_args=init_args, inputs=inputs, cwd=str(MODELS),
                     **options)
    torch.manual_seed(spec.seed)
    obj = import_object(target, str(MODELS))
    model, location = build_model(obj, init_args, target)
    return run_probe(spec, model, location)


def codes(findings: list[Any]) -> set[str]:
    return {f.code for f in findings}
