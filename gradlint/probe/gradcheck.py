"""`gradlint gradcheck`: compare an analytic backward with central differences (child side)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gradlint.probe.spec import InputSpec, ProbeSpec

if TYPE_CHECKING:
    import torch

EPS = 1e-6  # central-difference step in float64
# In float64 central differences err by about EPS^2 * f''' (truncation) plus 1e-16 * |f| /
# EPS (round-off): ~1e-10 for a well-scaled function. torch's own defaults (1e-5, 1e-3) let
# a backward that is off by 0.05 % pass; these do not.
ATOL = 1e-7
RTOL = 1e-5


class CouldNotRun(Exception):
    """The check cannot judge the backward: the inputs are outside the function's domain,
    it takes arguments that are not tensors, or its forward fails on them."""


def run_gradcheck(spec: ProbeSpec, obj: Any, name: str) -> dict[str, Any]:
    """Check every float input's Jacobian; plain-data result with per-input errors and a
    verdict: "passed", "failed" or "could not run" (with the reason)."""
    import torch

    torch.manual_seed(spec.seed)
    atol, rtol = spec.atol if spec.atol is not None else ATOL, spec.rtol or RTOL
    result: dict[str, Any] = {"name": name, "kind": "", "inputs": [], "atol": atol, "rtol": rtol}
    try:
        fn, kind = _callable(obj, spec, name)
        result["kind"] = kind
        inputs = make_inputs(spec.inputs, spec.seed)
        _check_arity(fn, obj, len(inputs), name)
        wrt = [i for i, x in enumerate(inputs) if x.is_floating_point()]
        if not wrt:
            raise CouldNotRun("no floating-point input to differentiate: give a float input")
        _check_domain(fn, inputs, spec.inputs)
    except CouldNotRun as exc:
        result.update(status="could not run", passed=False, error=str(exc))
        return result
    try:
        analytic = _analytic(fn, inputs, wrt)
        numeric = _numeric(fn, inputs, wrt)
    except Exception as exc:  # labelled boundary: the user's backward may fail
        result.update(status="failed", passed=False, error=f"{type(exc).__name__}: {exc}")
        return result
    for i, a, n in zip(wrt, analytic, numeric):
        diff = float((a - n).abs().max()) if a.numel() else 0.0
        scale = float(n.abs().max()) if n.numel() else 0.0
        result["inputs"].append(
            {
                "index": i,
                "shape": list(inputs[i].shape),
                "max_abs_error": diff,
                "relative_error": diff / scale if scale > 0 else (0.0 if diff == 0 else None),
                "ok": bool(((a - n).abs() <= atol + rtol * n.abs()).all()),
            }
        )
    official = _official(torch.autograd.gradcheck, fn, inputs, atol, rtol, result, "error")
    passed = official and all(item["ok"] for item in result["inputs"])
    if spec.gradgrad:
        second = _official(
            torch.autograd.gradgradcheck, fn, inputs, atol, rtol, result, "gradgrad_error"
        )
        result["gradgrad"] = second
        passed = passed and second
    result.update(status="passed" if passed else "failed", passed=passed)
    return result


def make_inputs(specs: tuple[InputSpec, ...], seed: int) -> tuple[torch.Tensor, ...]:
    """float64 inputs, N(0, 1) or uniform in their --input-range (a function's domain);
    integer inputs (indices) are held fixed."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    inputs = []
    for item in specs:
        if item.dtype == "float":
            if item.high is None:
                x = torch.randn(item.shape, generator=gen, dtype=torch.float64)
            else:
                x = torch.rand(item.shape, generator=gen, dtype=torch.float64)
                x = x * (item.high - item.low) + item.low
            inputs.append(x.requires_grad_(True))
        elif item.dtype == "bool":
            inputs.append(torch.randint(0, 2, item.shape, generator=gen).bool())
        else:
            if item.high is None:
                raise CouldNotRun(f"integer input {len(inputs)} needs --input-range LOW,HIGH")
            inputs.append(torch.randint(int(item.low), int(item.high), item.shape, generator=gen))
    return tuple(inputs)


def _official(
    check: Callable[..., Any],
    fn: Callable[..., Any],
    inputs: tuple[torch.Tensor, ...],
    atol: float,
    rtol: float,
    result: dict[str, Any],
    key: str,
) -> bool:
    """torch.autograd.gradcheck / gradgradcheck; their own extra checks may raise."""
    try:
        return bool(check(fn, inputs, eps=EPS, atol=atol, rtol=rtol, raise_exception=False))
    except Exception as exc:  # labelled boundary: e.g. a once_differentiable backward
        result[key] = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        return False


def _callable(obj: Any, spec: ProbeSpec, name: str) -> tuple[Callable[..., Any], str]:
    import torch
    from torch import nn

    if isinstance(obj, type) and issubclass(obj, torch.autograd.Function):
        return obj.apply, "autograd.Function"
    if isinstance(obj, type) and not issubclass(obj, nn.Module):
        raise CouldNotRun(f"{name} is neither a torch.autograd.Function nor an nn.Module")
    if not callable(obj):
        raise CouldNotRun(f"{name} is not callable")
    try:
        module = obj(**spec.init_args)
    except TypeError as exc:
        raise CouldNotRun(f"cannot build {name}: {exc}") from None
    if not isinstance(module, nn.Module):
        raise CouldNotRun(f"{name}(...) returned {type(module).__name__}, not an nn.Module")
    return module.double(), "nn.Module"


def _check_arity(fn: Callable[..., Any], obj: Any, given: int, name: str) -> None:
    """Arguments the forward needs beyond the generated tensors cannot be made up."""
    import torch

    target = getattr(obj, "forward", fn) if isinstance(obj, type) else fn
    try:
        params = list(inspect.signature(target).parameters.values())
    except (TypeError, ValueError):
        return  # no signature to read (a builtin): let the call decide
    if isinstance(obj, type) and issubclass(obj, torch.autograd.Function):
        params = params[1:]  # ctx
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p.name for p in positional if p.default is p.empty]
    if len(required) > given:
        missing = ", ".join(required[given:])
        raise CouldNotRun(
            f"{name} takes ({', '.join(p.name for p in positional)}); {given} tensor input(s) "
            f"given and gradcheck cannot generate {missing}: wrap it in a function of tensors "
            "only, or give one --input-shape per tensor argument"
        )
    if len(positional) < given:
        raise CouldNotRun(f"{name} takes {len(positional)} argument(s), {given} inputs given")


def _check_domain(
    fn: Callable[..., Any], inputs: tuple[torch.Tensor, ...], specs: tuple[InputSpec, ...]
) -> None:
    import torch

    try:
        with torch.no_grad():
            outs = _outputs(fn(*inputs))
    except Exception as exc:  # labelled boundary: the user's forward on generated inputs
        raise CouldNotRun(f"the forward fails on the generated inputs: {type(exc).__name__}: "
                          f"{' '.join(str(exc).split())[:200]}") from None
    if any(not bool(torch.isfinite(o).all()) for o in outs):
        where = ", ".join(
            "N(0, 1)" if s.high is None else f"[{s.low:g}, {s.high:g})" for s in specs
        )
        raise CouldNotRun(
            f"the output has NaN/Inf on inputs drawn from {where}: outside the function's "
            "domain (log, sqrt, division); give --input-range LOW,HIGH inside it"
        )


def _outputs(value: Any) -> list[torch.Tensor]:
    import torch

    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [v for v in value if isinstance(v, torch.Tensor) and v.is_floating_point()]
    raise CouldNotRun(f"output must be a tensor or a tuple of tensors, got {type(value).__name__}")


def _analytic(
    fn: Callable[..., Any], inputs: tuple[torch.Tensor, ...], wrt: list[int]
) -> list[torch.Tensor]:
    """Jacobian rows by backward passes through the user's backward, one per output element."""
    import torch

    outs = _outputs(fn(*inputs))
    flat = torch.cat([o.reshape(-1) for o in outs])
    targets = [inputs[i] for i in wrt]
    jac = [torch.zeros(flat.numel(), x.numel(), dtype=torch.float64) for x in targets]
    for row in range(flat.numel()):
        grads = torch.autograd.grad(flat[row], targets, retain_graph=True, allow_unused=True)
        for j, g in enumerate(grads):
            if g is not None:
                jac[j][row] = g.reshape(-1)
    return jac


def _numeric(
    fn: Callable[..., Any], inputs: tuple[torch.Tensor, ...], wrt: list[int]
) -> list[torch.Tensor]:
    import torch

    with torch.no_grad():
        values = [x.detach().clone() for x in inputs]

        def evaluate() -> torch.Tensor:
            return torch.cat([o.reshape(-1) for o in _outputs(fn(*values))])

        size = evaluate().numel()
        jac = []
        for i in wrt:
            x = values[i]
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
