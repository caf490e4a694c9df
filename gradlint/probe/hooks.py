"""GradientProbe: hooks that turn one forward+backward pass into per-layer statistics."""

from __future__ import annotations

import inspect
import math
import os
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import TYPE_CHECKING, Any

from gradlint.probe.stats import Location, ModuleStats, ParamStats, ProbeReport, StepReport

if TYPE_CHECKING:
    import torch
    from torch import nn

# Activation modules whose outputs are checked (class names, so no torch import here).
DEAD_UNIT_MODULES = frozenset({"ReLU", "ReLU6"})
SATURATING_MODULES = {"Sigmoid": "sigmoid", "Tanh": "tanh", "Hardsigmoid": "sigmoid",
                      "Hardtanh": "hardtanh"}
# Flat tails: sigmoid' < 0.0099 outside [0.01, 0.99]; tanh' < 0.02 where |tanh| > 0.99.
SIGMOID_TAIL = 0.01
TANH_TAIL = 0.99


@dataclass
class _Accumulator:
    """Running sums for one module; floats only (a module may be called many times)."""

    name: str
    type: str
    kind: str
    order: int
    calls: int = 0
    var_sum: float = 0.0
    var_calls: int = 0
    grad_sq: float = 0.0
    grad_numel: int = 0
    grad_max: float = 0.0
    grad_calls: int = 0
    nonfinite_forward: bool = False
    nonfinite_backward: bool = False
    backward_order: int | None = None
    dead: list[float] = field(default_factory=list)
    saturated: list[float] = field(default_factory=list)


class GradientProbe:
    """
    Context manager that measures gradient flow through `model` for the passes in its block.

    Forward hooks record each layer's output std and attach a tensor hook to the output, so
    the gradient w.r.t. every layer's output is measured too (module "full backward" hooks
    are avoided on purpose: they break on in-place modules such as ReLU(inplace=True)).
    Hooks are removed on exit even if the block raises; no tensor is kept.
    """

    def __init__(self, model: nn.Module, *, step: int = 0, check_symmetry: bool = True,
                 location: Location | None = None) -> None:
        self.model = model
        self.step = step
        self.check_symmetry = check_symmetry
        self.location = location or locate_class(type(model))
        self.loss: float | None = None
        self.batch_size: int | None = None
        self._handles: list[Any] = []
        self._stats: dict[str, _Accumulator] = {}
        self._modules: dict[str, nn.Module] = {}
        self._backward_seen = 0
        self._params: dict[str, tuple[ParamStats, ...]] = {}
        self._done = False

    def __enter__(self) -> GradientProbe:
        for name, module in self.model.named_modules():
            kind = _kind_of(module)
            if kind is None:
                continue
            self._modules[name] = module
            self._handles.append(module.register_forward_hook(self._forward_hook(name, kind)))
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._remove_hooks()
        if exc_type is None:
            self._params = {name: _param_stats(module, self.check_symmetry)
                            for name, module in self._modules.items()
                            if _kind_of(module) == "layer"}
            self._done = True
        self._modules = {}  # drop module references too: the report is plain data

    def record_loss(self, loss: torch.Tensor | float) -> None:
        self.loss = float(loss)

    def report(self) -> ProbeReport:
        """The measurements as plain data; call after the `with` block."""
        if not self._done:
            raise RuntimeError("GradientProbe.report() is only available after the with block")
        modules = tuple(_finish(acc, self._params.get(acc.name, ()))
                        for acc in sorted(self._stats.values(), key=lambda a: a.order))
        missing = [name for name in self._params if name not in self._stats]
        extra = tuple(  # layers never called in forward: their parameters get no gradient
            ModuleStats(name=name, type="?", kind="layer", order=len(modules) + i,
                        params=self._params[name])
            for i, name in enumerate(missing)
        )
        step = StepReport(self.step, modules + extra, self.loss)
        return ProbeReport((step,), self.location, self.batch_size)

    # -- hooks ------------------------------------------------------------------------------

    def _remove_hooks(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _forward_hook(self, name: str, kind: str) -> Any:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            tensor = _first_tensor(output)
            if tensor is None or not tensor.is_floating_point():
                return
            acc = self._stats.get(name)
            if acc is None:
                acc = _Accumulator(name, type(module).__name__, kind, len(self._stats))
                self._stats[name] = acc
            acc.calls += 1
            if self.batch_size is None and tensor.dim() > 0:
                self.batch_size = int(tensor.shape[0])
            _forward_stats(acc, tensor.detach(), type(module).__name__)
            if kind == "layer" and tensor.requires_grad:
                self._handles.append(tensor.register_hook(self._grad_hook(acc)))

        return hook

    def _grad_hook(self, acc: _Accumulator) -> Any:
        def hook(grad: torch.Tensor) -> None:
            import torch

            g = grad.detach()
            norm, gmax = torch.stack([torch.linalg.vector_norm(g.float()),
                                      g.abs().max().float()]).tolist()
            if not math.isfinite(norm):
                if bool(torch.isfinite(g).all()):  # finite entries whose squares overflow
                    norm = float(torch.linalg.vector_norm(g.double()))
                else:
                    acc.nonfinite_backward = True
            if acc.backward_order is None:
                acc.backward_order = self._backward_seen
                self._backward_seen += 1
            acc.grad_sq += norm * norm
            acc.grad_numel += g.numel()
            acc.grad_max = max(acc.grad_max, gmax)
            acc.grad_calls += 1

        return hook


def locate_class(obj: Any) -> Location:
    """The `class`/`def` statement of `obj`, or a placeholder when it has no Python source."""
    try:
        file = inspect.getsourcefile(obj)
        lines, start = inspect.getsourcelines(obj)
    except (OSError, TypeError):
        return Location(path=f"<{getattr(obj, '__name__', 'model')}>", line=1,
                        name=getattr(obj, "__name__", "model"))
    if file is None:
        return Location(path="<unknown>", line=1, name=getattr(obj, "__name__", "model"))
    start = max(start, 1)
    offset = next((i for i, text in enumerate(lines)
                   if text.lstrip().startswith(("class ", "def ", "async def "))), 0)
    first = lines[offset].rstrip("\n") if lines else ""
    absolute = os.path.abspath(file)
    shown = os.path.relpath(absolute) if absolute.startswith(os.getcwd() + os.sep) else absolute
    return Location(path=shown, line=start + offset, end_line=start + len(lines) - 1,
                    name=getattr(obj, "__qualname__", "model"), end_column=len(first) + 1,
                    file=absolute)


def is_torch_defined(obj: Any) -> bool:
    return (getattr(obj, "__module__", "") or "").split(".")[0] == "torch"


def _kind_of(module: nn.Module) -> str | None:
    name = type(module).__name__
    if any(True for _ in module.parameters(recurse=False)):
        return "layer"
    if name in DEAD_UNIT_MODULES or name in SATURATING_MODULES:
        return "activation" if is_torch_defined(type(module)) else None
    return None


def _first_tensor(output: Any) -> torch.Tensor | None:
    import torch

    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, dict):
        output = list(output.values())
    elif hasattr(output, "logits") and isinstance(output.logits, torch.Tensor):
        return output.logits
    if isinstance(output, (tuple, list)):
        for item in output:
            found = _first_tensor(item)
            if found is not None:
                return found
    return None


def _forward_stats(acc: _Accumulator, out: torch.Tensor, type_name: str) -> None:
    import torch

    if acc.kind == "layer":
        if out.numel() > 1:
            std = float(out.float().std())
            if not math.isfinite(std):
                acc.nonfinite_forward |= not bool(torch.isfinite(out).all())
                std = float(out.double().std()) if not acc.nonfinite_forward else std
            if math.isfinite(std):
                acc.var_sum += std * std
                acc.var_calls += 1
        return
    if type_name in DEAD_UNIT_MODULES and out.dim() >= 2:
        units = out.reshape(out.shape[0], -1)
        acc.dead.append(float((units == 0).all(dim=0).float().mean()))
    kind = SATURATING_MODULES.get(type_name)
    if kind == "sigmoid":
        acc.saturated.append(float(((out < SIGMOID_TAIL) | (out > 1 - SIGMOID_TAIL)).float().mean()))
    elif kind == "tanh":
        acc.saturated.append(float((out.abs() > TANH_TAIL).float().mean()))
    elif kind == "hardtanh":
        acc.saturated.append(float((out.abs() >= 1).float().mean()))


def _finish(acc: _Accumulator, params: tuple[ParamStats, ...]) -> ModuleStats:
    return ModuleStats(
        name=acc.name, type=acc.type, kind=acc.kind, order=acc.order, calls=acc.calls,
        out_std=math.sqrt(acc.var_sum / acc.var_calls) if acc.var_calls else None,
        act_grad_rms=math.sqrt(acc.grad_sq / acc.grad_numel) if acc.grad_numel else None,
        act_grad_max=acc.grad_max if acc.grad_calls else None,
        nonfinite_forward=acc.nonfinite_forward, nonfinite_backward=acc.nonfinite_backward,
        backward_order=acc.backward_order,
        dead_fraction=sum(acc.dead) / len(acc.dead) if acc.dead else None,
        saturated_fraction=sum(acc.saturated) / len(acc.saturated) if acc.saturated else None,
        params=params,
    )


def _param_stats(module: nn.Module, check_symmetry: bool) -> tuple[ParamStats, ...]:
    import torch

    result = []
    for name, p in module.named_parameters(recurse=False):
        base = ParamStats(name=name, shape=tuple(p.shape), requires_grad=p.requires_grad)
        if not p.requires_grad:
            result.append(base)
            continue
        if p.grad is None:
            result.append(replace(base, grad_none=True,
                                  weight_norm=float(torch.linalg.vector_norm(p.detach().float()))))
            continue
        g, w = p.grad.detach(), p.detach()
        values = torch.stack([torch.linalg.vector_norm(g.double()), torch.linalg.vector_norm(
            w.double()), g.abs().double().mean(), g.abs().double().max()]).tolist()
        nonfinite = not all(math.isfinite(v) for v in values)
        units, duplicates = (0, 0)
        if check_symmetry and not nonfinite and p.dim() >= 2:
            units, duplicates = _duplicate_units(module, w, g)
        result.append(replace(base, grad_norm=values[0], weight_norm=values[1],
                              grad_mean_abs=values[2], grad_max_abs=values[3],
                              nonfinite=nonfinite, units=units, duplicate_units=duplicates))
    return tuple(result)


def _duplicate_units(module: nn.Module, w: torch.Tensor, g: torch.Tensor) -> tuple[int, int]:
    """How many output units equal another unit in both weight row and gradient row."""
    import torch

    if type(module).__name__ in ("Embedding", "EmbeddingBag"):  # units are columns there
        w, g = w.t(), g.t()
    rows_w, rows_g = w.reshape(w.shape[0], -1).double(), g.reshape(g.shape[0], -1).double()
    if rows_w.shape[0] < 2:
        return 0, 0
    gen = torch.Generator(device=w.device).manual_seed(1234)
    r1 = torch.randn(rows_w.shape[1], 2, generator=gen, dtype=torch.float64, device=w.device)
    r2 = torch.randn(rows_g.shape[1], 2, generator=gen, dtype=torch.float64, device=w.device)
    # Two random projections per row; equal rows give equal keys, distinct rows (almost
    # surely) differ far above the rounding applied here.
    keys = torch.cat([rows_w @ r1, rows_g @ r2], dim=1)
    scale = keys.abs().amax(dim=0).clamp_min(1e-30)
    rounded = torch.round(keys / scale * 1e9)
    distinct = torch.unique(rounded, dim=0).shape[0]
    return rows_w.shape[0], rows_w.shape[0] - distinct
