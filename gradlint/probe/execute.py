"""Run the probe on a built model: synthetic batch, loss, optimizer steps (child side)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gradlint.probe.hooks import GradientProbe
from gradlint.probe.spec import ProbeSpec
from gradlint.probe.stats import Location, ProbeReport

if TYPE_CHECKING:
    import torch
    from torch import nn

DTYPES = {"float32": "float32", "float64": "float64", "float16": "float16", "bfloat16": "bfloat16"}


def run_probe(
    spec: ProbeSpec,
    model: nn.Module,
    location: Location,
    example_inputs: Any = None,
    user_loss: Callable[[Any], Any] | None = None,
) -> ProbeReport:
    """Measure `spec.steps` forward+backward passes, with an optimizer step between them.

    With a single step, an exactly-zero gradient at initialisation (a zero-initialised head
    blocks everything below it) earns one more step, so the analysis can see whether the
    gradient starts to flow after one update. `user_loss` (from --loss-fn) receives the
    output (the --output element when given) and returns a scalar tensor."""
    import torch

    torch.manual_seed(spec.seed)
    device = torch.device(spec.device)
    dtype = getattr(torch, DTYPES[spec.dtype])
    model.to(device=device, dtype=dtype).train()
    args, kwargs = make_inputs(spec, example_inputs, device, dtype, model)
    optimizer = make_optimizer(spec, model) if spec.steps > 1 else None
    loss_fn: Callable[[list[torch.Tensor]], torch.Tensor] | None = None
    steps, output_check = [], {}
    total = spec.steps
    step = 0
    while step < total:
        model.zero_grad(set_to_none=True)
        with GradientProbe(model, step=step, check_symmetry=step == 0, location=location) as probe:
            raw = model(*args, **kwargs)
            if user_loss is not None:
                loss = _user_loss(user_loss, raw, spec.output)
            else:
                outs = loss_outputs(raw, spec.output)
                if loss_fn is None:
                    loss_fn = make_loss(spec, outs)
                    output_check = check_output(spec, outs[0])
                loss = loss_fn(outs)
            probe.record_loss(loss)
            loss.backward()  # type: ignore[no-untyped-call]
        report = probe.report()
        steps.append(report.steps[0])
        if step == 0 and total == 1 and _zero_gradients(report):
            total, optimizer = 2, make_optimizer(spec, model)
        step += 1
        if optimizer is None or step >= total or not math.isfinite(report.steps[0].loss or 0.0):
            break
        optimizer.step()
    first = next((a for a in (*args, *kwargs.values()) if hasattr(a, "shape") and a.dim()), None)
    batch = int(first.shape[0]) if first is not None else report.batch_size
    return ProbeReport(tuple(steps), location, batch, output_check)


def _user_loss(fn: Callable[[Any], Any], output: Any, selector: str | None) -> torch.Tensor:
    import torch

    loss = fn(select_output(output, selector) if selector is not None else output)
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1 or not loss.requires_grad:
        raise TypeError(
            f"--loss-fn must return a scalar tensor that depends on the output, got "
            f"{type(loss).__name__}{tuple(loss.shape) if isinstance(loss, torch.Tensor) else ''}"
        )
    return loss.reshape(())


def _zero_gradients(report: ProbeReport) -> bool:
    return any(
        not p.grad_none and p.grad_max_abs == 0
        for m in report.steps[0].layers
        for p in m.trained_params
    )


def loss_outputs(output: Any, selector: str | None = None) -> list[torch.Tensor]:
    """The output tensors that enter the loss.

    `selector` names one element: a key or attribute (`logits`, `pooler_output`) or a
    position (`1`). Without it: `logits` when the output has them (transformers' model
    outputs), else every floating-point tensor in the output, however nested, so that no
    head the model returns (a pooler, a distillation head) looks disconnected."""
    import torch

    if selector is not None:
        output = select_output(output, selector)
    elif not isinstance(output, torch.Tensor) and isinstance(
        getattr(output, "logits", None), torch.Tensor
    ):
        output = output.logits
    found = [t for t in _tensors(output) if t.is_floating_point()]
    if not found:
        raise TypeError("the model's output holds no floating-point tensor")
    trained = [t for t in found if t.requires_grad or t.dim() == 0]
    return trained or found


def select_output(output: Any, selector: str) -> Any:
    """output[selector] for a dict or model output, output[int(selector)] for a sequence."""
    if isinstance(output, dict) or hasattr(output, "keys"):
        keys = list(output.keys())
        if selector in keys:
            return output[selector]
        if selector.lstrip("-").isdigit() and -len(keys) <= int(selector) < len(keys):
            return output[keys[int(selector)]]
        raise ValueError(f"--output {selector!r}: the output has keys {', '.join(map(str, keys))}")
    if isinstance(output, (tuple, list)):
        if selector.lstrip("-").isdigit() and -len(output) <= int(selector) < len(output):
            return output[int(selector)]
        raise ValueError(f"--output {selector!r}: the output is a sequence of {len(output)}")
    if hasattr(output, selector):
        return getattr(output, selector)
    raise ValueError(f"--output {selector!r}: the output is a single {type(output).__name__}")


def _tensors(output: Any) -> list[torch.Tensor]:
    import torch

    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, (tuple, list)):
        return [t for item in output for t in _tensors(item)]
    return []


def make_inputs(
    spec: ProbeSpec,
    example: Any,
    device: torch.device,
    dtype: torch.dtype,
    model: nn.Module | None = None,
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
            high = int(item.high) if item.high is not None else vocabulary_size(model)
            x = torch.randint(int(item.low), high, item.shape, generator=gen)
            inputs.append(
                x.to(device=device, dtype=torch.long if item.dtype == "long" else torch.int32)
            )
    return tuple(inputs), {}


def vocabulary_size(model: nn.Module | None) -> int:
    """Token ids run up to the model's vocabulary: `config.vocab_size` (transformers) or the
    first nn.Embedding's size."""
    from torch import nn

    size = getattr(getattr(model, "config", None), "vocab_size", None)
    if isinstance(size, int) and size > 0:
        return size
    for module in model.modules() if model is not None else ():
        if isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
            return int(module.num_embeddings)
    raise ValueError(
        "integer inputs need --input-range LOW,HIGH: the model has no nn.Embedding or "
        "config.vocab_size to take the vocabulary size from"
    )


def make_loss(
    spec: ProbeSpec, outs: torch.Tensor | list[torch.Tensor]
) -> Callable[[list[torch.Tensor]], torch.Tensor]:
    """The loss and its fixed synthetic targets, shaped after the outputs.

    The default ("projection") pulls every output one unit along a fixed random direction
    per position: a quadratic whose gradient at initialisation is that direction divided
    by the number of positions. Like cross-entropy averaged over tokens or pixels, the
    gradient each position sends back has norm about 1 / positions, so the numbers depend
    neither on the batch, nor the sequence length, nor the image size; and, being bounded
    below, it converges under `--steps` instead of driving the outputs to infinity. The
    other losses apply to the first selected output."""
    import torch
    import torch.nn.functional as F

    first = outs[0] if isinstance(outs, list) else outs
    gen = torch.Generator(device="cpu").manual_seed(spec.seed + 1)
    if first.dim() == 0:  # the model returns its own loss
        return lambda o: o[0] if isinstance(o, list) else o
    if spec.loss == "projection":
        targets = []
        for out in outs if isinstance(outs, list) else [outs]:
            features = out.shape[_class_dim(out)] if out.dim() > 1 else 1
            positions = max(out.numel() // max(features, 1), 1)
            # One direction per position shared across the batch, unit norm on average.
            shape = tuple(out.shape[1:])
            r = torch.randn(shape, generator=gen).to(out.device, out.dtype) / features**0.5
            targets.append((out.detach(), r, positions))

        def projection(o: list[torch.Tensor]) -> torch.Tensor:
            # 0.5 |x - x0 + r|^2 / n, expanded: x - x0 is exactly 0 at the first pass, so
            # the gradient is exactly r / n even when x is huge (no cancellation).
            terms = []
            for x, (x0, r, n) in zip(o, targets):
                d = x - x0
                const = 0.5 * (r * r).sum() * (x.numel() // max(r.numel(), 1))
                terms.append((0.5 * (d * d).sum() + (d * r).sum() + const) / n)
            return torch.stack(terms).sum()

        return projection
    if spec.loss == "cross_entropy":
        classes = first.shape[_class_dim(first)]
        labels = torch.randint(0, classes, (first.numel() // classes,), generator=gen)
        labels = labels.to(first.device)
        return lambda o: F.cross_entropy(_as_rows(o[0]), labels)
    target = torch.randn(tuple(first.shape), generator=gen)
    if spec.loss == "bce_logits":
        target = (target > 0).float()
        return lambda o: F.binary_cross_entropy_with_logits(
            o[0], target.to(o[0].device, o[0].dtype)
        )
    return lambda o: F.mse_loss(o[0], target.to(o[0].device, o[0].dtype))


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


def _class_dim(out: torch.Tensor) -> int:
    """Where classes (features) sit: dim 1 of (N, C) and of images (N, C, H, W, ...), the
    last dim of sequences (N, T, V)."""
    return -1 if out.dim() == 3 else 1


def _as_rows(out: torch.Tensor) -> torch.Tensor:
    """One row per position, classes along dim 1."""
    if out.dim() == 2:
        return out
    return out.movedim(_class_dim(out), -1).reshape(-1, out.shape[_class_dim(out)])


def _to(value: Any, device: torch.device, dtype: torch.dtype) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        return (
            value.to(device=device, dtype=dtype) if value.is_floating_point() else value.to(device)
        )
    return value
