"""Run the probe on a built model: synthetic batch, loss, optimizer steps (child side)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gradlint.probe.hooks import GradientProbe, first_tensor
from gradlint.probe.spec import ProbeSpec
from gradlint.probe.stats import Location, ProbeReport

if TYPE_CHECKING:
    import torch
    from torch import nn

DTYPES = {"float32": "float32", "float64": "float64", "float16": "float16", "bfloat16": "bfloat16"}


def run_probe(
    spec: ProbeSpec, model: nn.Module, location: Location, example_inputs: Any = None
) -> ProbeReport:
    """Measure `spec.steps` forward+backward passes, with an optimizer step between them."""
    import torch

    torch.manual_seed(spec.seed)
    device = torch.device(spec.device)
    dtype = getattr(torch, DTYPES[spec.dtype])
    model.to(device=device, dtype=dtype).train()
    args, kwargs = make_inputs(spec, example_inputs, device, dtype)
    optimizer = make_optimizer(spec, model) if spec.steps > 1 else None
    loss_fn: Callable[[torch.Tensor], torch.Tensor] | None = None
    steps, output_check = [], {}
    for step in range(spec.steps):
        model.zero_grad(set_to_none=True)
        with GradientProbe(model, step=step, check_symmetry=step == 0, location=location) as probe:
            out = first_tensor(model(*args, **kwargs))
            if out is None or not out.is_floating_point():
                raise TypeError("the model's output holds no floating-point tensor")
            if loss_fn is None:
                loss_fn = make_loss(spec, out)
                output_check = check_output(spec, out)
            loss = loss_fn(out)
            probe.record_loss(loss)
            loss.backward()  # type: ignore[no-untyped-call]
        report = probe.report()
        steps.append(report.steps[0])
        if optimizer is None or not math.isfinite(report.steps[0].loss or 0.0):
            break
        optimizer.step()
    first = next((a for a in (*args, *kwargs.values()) if hasattr(a, "shape") and a.dim()), None)
    batch = int(first.shape[0]) if first is not None else report.batch_size
    return ProbeReport(tuple(steps), location, batch, output_check)


def make_inputs(
    spec: ProbeSpec, example: Any, device: torch.device, dtype: torch.dtype
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    import torch

    if example is not None:
        if isinstance(example, dict):
            return (), {k: _to(v, device, dtype) for k, v in example.items()}
        if isinstance(example, (tuple, list)):
            return tuple(_to(v, device, dtype) for v in example), {}
        return (_to(example, device, dtype),), {}
    gen = torch.Generator(device="cpu").manual_seed(spec.seed)
    inputs = []
    for item in spec.inputs:
        if item.dtype == "float":
            x = torch.randn(item.shape, generator=gen, dtype=torch.float32)
            if item.high is not None:  # a range given for float inputs: uniform in it
                x = torch.rand(item.shape, generator=gen) * (item.high - item.low) + item.low
            inputs.append(x.to(device=device, dtype=dtype))
        elif item.dtype == "bool":
            inputs.append(torch.randint(0, 2, item.shape, generator=gen).bool().to(device))
        else:
            high = int(item.high if item.high is not None else 2)
            x = torch.randint(int(item.low), high, item.shape, generator=gen)
            inputs.append(
                x.to(device=device, dtype=torch.long if item.dtype == "long" else torch.int32)
            )
    return tuple(inputs), {}


def make_loss(spec: ProbeSpec, out: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """The loss and its fixed synthetic targets, shaped after the first output."""
    import torch
    import torch.nn.functional as F

    gen = torch.Generator(device="cpu").manual_seed(spec.seed + 1)
    batch = out.shape[0] if out.dim() > 0 else 1
    if spec.loss == "projection" or out.dim() == 0:
        if out.dim() == 0:  # the model returns its own loss
            return lambda o: o
        # Shared across the batch so per-sample gradients add up coherently; divided by the
        # batch like every built-in loss's mean reduction.
        r = torch.randn(tuple(out.shape[1:]), generator=gen).to(out.device, out.dtype)
        return lambda o: (o * r).sum() / batch
    if spec.loss == "cross_entropy":
        logits_shape, classes = _class_layout(out)
        labels = torch.randint(0, classes, (math.prod(logits_shape[:-1]),), generator=gen)
        labels = labels.to(out.device)
        return lambda o: F.cross_entropy(_as_rows(o), labels)
    target = torch.randn(tuple(out.shape), generator=gen)
    if spec.loss == "bce_logits":
        target = (target > 0).float()
        return lambda o: F.binary_cross_entropy_with_logits(o, target.to(o.device, o.dtype))
    return lambda o: F.mse_loss(o, target.to(o.device, o.dtype))


def check_output(spec: ProbeSpec, out: torch.Tensor) -> dict[str, Any]:
    """Are the outputs already probabilities? And how much does that weaken CE's gradient?"""
    import torch
    import torch.nn.functional as F

    if out.dim() < 2:
        return {}
    rows = _as_rows(out.detach()).double()
    sums = rows.sum(dim=1)
    probabilities = bool((rows >= -1e-6).all()) and bool(((sums - 1).abs() < 1e-3).all())
    unit_interval = bool(((rows >= 0) & (rows <= 1)).all())
    result: dict[str, Any] = {
        "probabilities": probabilities,
        "unit_interval": unit_interval,
        "loss": spec.loss,
    }
    if probabilities and spec.loss == "cross_entropy":
        # Gradient reaching the pre-softmax logits z (log p up to a constant) when cross
        # entropy is applied to the probabilities, versus to the logits directly.
        gen = torch.Generator(device="cpu").manual_seed(spec.seed + 1)
        labels = torch.randint(0, rows.shape[1], (rows.shape[0],), generator=gen).to(rows.device)
        z = rows.clamp_min(1e-30).log().requires_grad_(True)
        (wrong,) = torch.autograd.grad(F.cross_entropy(z.softmax(dim=1), labels), z)
        z2 = z.detach().requires_grad_(True)
        (right,) = torch.autograd.grad(F.cross_entropy(z2, labels), z2)
        right_norm = float(right.norm())
        result["gradient_ratio"] = float(wrong.norm()) / right_norm if right_norm else None
    return result


def make_optimizer(spec: ProbeSpec, model: nn.Module) -> torch.optim.Optimizer:
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    factory = {
        "sgd": torch.optim.SGD,
        "adam": torch.optim.Adam,
        "adamw": torch.optim.AdamW,
        "rmsprop": torch.optim.RMSprop,
    }[spec.optimizer]
    optimizer: torch.optim.Optimizer = factory(params, lr=spec.lr)
    return optimizer


def _class_layout(out: torch.Tensor) -> tuple[tuple[int, ...], int]:
    """(N, C) -> classes on dim 1; (N, T, V) and deeper -> classes on the last dim."""
    shape = tuple(out.shape)
    if len(shape) == 2:
        return shape, shape[1]
    return shape, shape[-1]


def _as_rows(out: torch.Tensor) -> torch.Tensor:
    return out if out.dim() == 2 else out.reshape(-1, out.shape[-1])


def _to(value: Any, device: torch.device, dtype: torch.dtype) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        return (
            value.to(device=device, dtype=dtype) if value.is_floating_point() else value.to(device)
        )
    return value
