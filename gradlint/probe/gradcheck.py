"""`gradlint gradcheck`: compare an analytic backward with central differences (child side)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gradlint.probe.spec import ProbeSpec

if TYPE_CHECKING:
    import torch

EPS = 1e-6  # central-difference step in float64
ATOL = 1e-5  # torch.autograd.gradcheck's defaults
RTOL = 1e-3


def run_gradcheck(spec: ProbeSpec, obj: Any, name: str) -> dict[str, Any]:
    """Check every input's Jacobian; plain-data result with per-input errors and a verdict."""
    import torch

    torch.manual_seed(spec.seed)
    fn, kind = _callable(obj, spec, name)
    gen = torch.Generator().manual_seed(spec.seed)
    inputs = tuple(
        torch.randn(i.shape, generator=gen, dtype=torch.float64).requires_grad_(True)
        for i in spec.inputs
    )
    result: dict[str, Any] = {"name": name, "kind": kind, "inputs": []}
    try:
        analytic = _analytic(fn, inputs)
        numeric = _numeric(fn, inputs)
    except Exception as exc:  # labelled boundary: the user's forward/backward may fail
        result.update(passed=False, error=f"{type(exc).__name__}: {exc}")
        return result
    for i, (a, n) in enumerate(zip(analytic, numeric)):
        diff = float((a - n).abs().max()) if a.numel() else 0.0
        scale = float(n.abs().max()) if n.numel() else 0.0
        result["inputs"].append(
            {
                "index": i,
                "shape": list(inputs[i].shape),
                "max_abs_error": diff,
                "relative_error": diff / scale if scale > 0 else (0.0 if diff == 0 else None),
                "ok": bool(((a - n).abs() <= ATOL + RTOL * n.abs()).all()),
            }
        )
    try:
        official = bool(
            torch.autograd.gradcheck(
                fn, inputs, eps=EPS, atol=ATOL, rtol=RTOL, raise_exception=False
            )
        )
    except Exception as exc:  # labelled boundary: gradcheck's own extra checks may raise
        official, result["error"] = False, f"{type(exc).__name__}: {exc}"
    result["passed"] = official and all(item["ok"] for item in result["inputs"])
    return result


def _callable(obj: Any, spec: ProbeSpec, name: str) -> tuple[Callable[..., Any], str]:
    import torch
    from torch import nn

    if isinstance(obj, type) and issubclass(obj, torch.autograd.Function):
        return obj.apply, "autograd.Function"
    if isinstance(obj, type) and not issubclass(obj, nn.Module):
        raise TypeError(f"{name} is neither a torch.autograd.Function nor an nn.Module")
    module = obj(**spec.init_args)
    if not isinstance(module, nn.Module):
        raise TypeError(f"{name}(...) returned {type(module).__name__}, not an nn.Module")
    module = module.double()
    return module, "nn.Module"


def _outputs(value: Any) -> list[torch.Tensor]:
    import torch

    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [v for v in value if isinstance(v, torch.Tensor) and v.is_floating_point()]
    raise TypeError(f"output must be a tensor or a tuple of tensors, got {type(value).__name__}")


def _analytic(fn: Callable[..., Any], inputs: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
    """Jacobian rows by backward passes through the user's backward, one per output element."""
    import torch

    outs = _outputs(fn(*inputs))
    flat = torch.cat([o.reshape(-1) for o in outs])
    jac = [torch.zeros(flat.numel(), x.numel(), dtype=torch.float64) for x in inputs]
    for row in range(flat.numel()):
        grads = torch.autograd.grad(flat[row], inputs, retain_graph=True, allow_unused=True)
        for j, g in enumerate(grads):
            if g is not None:
                jac[j][row] = g.reshape(-1)
    return jac


def _numeric(fn: Callable[..., Any], inputs: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
    import torch

    with torch.no_grad():
        values = [x.detach().clone() for x in inputs]

        def evaluate() -> torch.Tensor:
            return torch.cat([o.reshape(-1) for o in _outputs(fn(*values))])

        size = evaluate().numel()
        jac = []
        for x in values:
            cols = torch.zeros(size, x.numel(), dtype=torch.float64)
            flat = x.view(-1)
            for k in range(flat.numel()):
                keep = float(flat[k])
                flat[k] = keep + EPS
                up = evaluate()
                flat[k] = keep - EPS
                down = evaluate()
                flat[k] = keep
                cols[:, k] = (up - down) / (2 * EPS)
            jac.append(cols)
    return jac
