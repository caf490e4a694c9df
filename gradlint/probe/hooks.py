"""GradientProbe: hooks that turn one forward+backward pass into per-layer statistics."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import TYPE_CHECKING, Any

from gradlint.probe.stats import Location, ModuleStats, ParamStats, ProbeReport, StepReport
from gradlint.probe.target import is_torch_defined, locate_class

if TYPE_CHECKING:
    import torch
    from torch import nn

# Activation modules whose outputs are checked (class names, so no torch import here).
DEAD_UNIT_MODULES = frozenset({"ReLU", "ReLU6"})
SATURATING_MODULES = {
    "Sigmoid": "sigmoid",
    "Tanh": "tanh",
    "Hardsigmoid": "sigmoid",
    "Hardtanh": "hardtanh",
}
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
    diversity: list[float] = field(default_factory=list)
    saturated: list[float] = field(default_factory=list)


class GradientProbe:
    """
    Context manager that measures gradient flow through `model` for the passes in its block.

    Forward hooks record each layer's output std and attach a tensor hook to the output, so
    the gradient w.r.t. every layer's output is measured too (module "full backward" hooks
    are avoided on purpose: they break on in-place modules such as ReLU(inplace=True)).
    Hooks are removed on exit even if the block raises; no tensor is kept.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        step: int = 0,
        check_symmetry: bool = True,
        location: Location | None = None,
    ) -> None:
        self.model = model
        self.step = step
        self.check_symmetry = check_symmetry
        self._location = location  # found lazily: inspect tokenizes the source file
        self.loss: float | None = None
        self.batch_size: int | None = None
        self._handles: list[Any] = []
        self._stats: dict[str, _Accumulator] = {}
        self._modules: dict[str, nn.Module] = {}
        self._backward_seen = 0
        self._params: dict[str, tuple[ParamStats, ...]] = {}
        self._types: dict[str, str] = {}
        self._done = False

    def __enter__(self) -> GradientProbe:
        for name, module in self.model.named_modules():
            # The model itself is always watched, so NaN/Inf made by functional code in its
            # forward (torch.log, division) is still caught.
            kind = _kind_of(module) or ("output" if module is self.model else None)
            if kind is None:
                continue
            self._modules[name] = module
            self._handles.append(module.register_forward_hook(self._forward_hook(name, kind)))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._remove_hooks()
        if exc_type is None:
            self._params = {
                name: _param_stats(module, self.check_symmetry)
                for name, module in self._modules.items()
                if _kind_of(module) == "layer"
            }
            self._types = {name: type(module).__name__ for name, module in self._modules.items()}
            self._done = True
        self._modules = {}  # drop module references too: the report is plain data

    def record_loss(self, loss: torch.Tensor | float) -> None:
        self.loss = float(loss.detach()) if hasattr(loss, "detach") else float(loss)

    def report(self) -> ProbeReport:
        """The measurements as plain data; call after the `with` block."""
        if not self._done:
            raise RuntimeError("GradientProbe.report() is only available after the with block")
        modules = tuple(
            _finish(acc, self._params.get(acc.name, ()))
            for acc in sorted(self._stats.values(), key=lambda a: a.order)
        )
        missing = [name for name in self._params if name not in self._stats]
        extra = tuple(  # layers never called in forward: their parameters get no gradient
            ModuleStats(
                name=name,
                type=self._types[name],
                kind="layer",
                order=len(modules) + i,
                params=self._params[name],
            )
            for i, name in enumerate(missing)
        )
        step = StepReport(self.step, modules + extra, self.loss)
        return ProbeReport((step,), self.location, self.batch_size)

    @property
    def location(self) -> Location:
        """The model's defining class (given, or looked up on first use)."""
        if self._location is None:
            self._location = locate_class(type(self.model))
        return self._location

    # -- hooks ------------------------------------------------------------------------------

    def _remove_hooks(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _forward_hook(self, name: str, kind: str) -> Any:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            tensor = first_tensor(output)
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
            if kind != "activation" and tensor.requires_grad:
                handle = tensor.register_hook(self._grad_hook(acc))  # type: ignore[no-untyped-call]
                self._handles.append(handle)

        return hook

    def _grad_hook(self, acc: _Accumulator) -> Any:
        def hook(grad: torch.Tensor) -> None:

            g = grad.detach()
            # RMS over the nonzero entries: outputs the loss never reads (all but the last
            # time step of an RNN, padding) would otherwise dilute the signal.
            norm, gmax, nonzero = _norm_max_nonzero(g)
            if not math.isfinite(norm) or not math.isfinite(gmax):
                acc.nonfinite_backward = True
            if acc.backward_order is None:
                acc.backward_order = self._backward_seen
                self._backward_seen += 1
            acc.grad_sq += norm * norm
            acc.grad_numel += int(nonzero)
            acc.grad_max = max(acc.grad_max, gmax)
            acc.grad_calls += 1

        return hook


def _kind_of(module: nn.Module) -> str | None:
    name = type(module).__name__
    if any(True for _ in module.parameters(recurse=False)):
        return "layer"
    if name in DEAD_UNIT_MODULES or name in SATURATING_MODULES:
        return "activation" if is_torch_defined(type(module)) else None
    return None


def first_tensor(output: Any) -> torch.Tensor | None:
    import torch

    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, dict):
        output = list(output.values())
    elif hasattr(output, "logits") and isinstance(output.logits, torch.Tensor):
        return output.logits
    if isinstance(output, (tuple, list)):
        for item in output:
            found = first_tensor(item)
            if found is not None:
                return found
    return None


def _forward_stats(acc: _Accumulator, out: torch.Tensor, type_name: str) -> None:
    import torch

    if acc.kind != "activation":
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
        units = out.reshape(out.shape[0], -1).float()  # ReLU outputs are >= 0: max 0 = all 0
        live = units.amax(dim=0) > 0
        acc.dead.append(1.0 - float(live.float().mean()))
        acc.diversity.append(_diversity(units[:, live]))
    kind = SATURATING_MODULES.get(type_name)
    if kind == "sigmoid":
        tails = (out < SIGMOID_TAIL) | (out > 1 - SIGMOID_TAIL)
        acc.saturated.append(float(tails.float().mean()))
    elif kind == "tanh":
        acc.saturated.append(float((out.abs() > TANH_TAIL).float().mean()))
    elif kind == "hardtanh":
        acc.saturated.append(float((out.abs() >= 1).float().mean()))


def _diversity(units: torch.Tensor) -> float:
    """Variance across the batch over mean square, summed over units; 1.0 when no unit lives.

    Behind global pooling, a batch of random images is nearly one sample repeated (the
    average of many independent pixels barely varies), so "zero for the whole batch" then
    says nothing about the unit; this number tells that case apart."""
    if units.numel() == 0 or units.shape[0] < 2:
        return 1.0
    power = float(units.pow(2).mean(dim=0).sum())
    return float(units.var(dim=0).sum()) / power if power > 0 else 1.0


def _finish(acc: _Accumulator, params: tuple[ParamStats, ...]) -> ModuleStats:
    return ModuleStats(
        name=acc.name,
        type=acc.type,
        kind=acc.kind,
        order=acc.order,
        calls=acc.calls,
        out_std=math.sqrt(acc.var_sum / acc.var_calls) if acc.var_calls else None,
        act_grad_rms=math.sqrt(acc.grad_sq / acc.grad_numel) if acc.grad_numel else None,
        act_grad_norm=math.sqrt(acc.grad_sq / acc.grad_calls) if acc.grad_numel else None,
        act_grad_max=acc.grad_max if acc.grad_calls else None,
        nonfinite_forward=acc.nonfinite_forward,
        nonfinite_backward=acc.nonfinite_backward,
        backward_order=acc.backward_order,
        # A shared ReLU (torchvision's blocks call one twice) is as dead as its worst call.
        dead_fraction=max(acc.dead) if acc.dead else None,
        batch_diversity=acc.diversity[acc.dead.index(max(acc.dead))] if acc.dead else None,
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
            result.append(
                replace(
                    base,
                    grad_none=True,
                    weight_norm=float(torch.linalg.vector_norm(p.detach().float())),
                )
            )
            continue
        g, w = p.grad.detach(), p.detach()
        grad_norm, grad_max, nonzero = _norm_max_nonzero(g)
        weight_norm = _norm_max_nonzero(w, count=False)[0]
        mean_abs = float(g.float().abs().sum()) / max(g.numel(), 1)
        nonfinite = not (math.isfinite(grad_norm) and math.isfinite(grad_max))
        units, duplicates = (0, 0)
        if check_symmetry and not nonfinite and p.dim() >= 2:
            units, duplicates = _duplicate_units(module, w, g)
        result.append(
            replace(
                base,
                grad_norm=grad_norm,
                weight_norm=weight_norm,
                grad_mean_abs=mean_abs,
                grad_max_abs=grad_max,
                grad_nonzero=nonzero,
                nonfinite=nonfinite,
                units=units,
                duplicate_units=duplicates,
            )
        )
    return tuple(result)


def _norm_max_nonzero(t: torch.Tensor, count: bool = True) -> tuple[float, float, int]:
    """L2 norm, max |x| and nonzero count in one sync; max is inf/nan iff an entry is."""
    import torch

    x = t.float()  # no copy for float32; half precision reduces in float32
    low, high = torch.aminmax(x)  # much faster than vector_norm(x, inf) on CPU
    parts = [torch.linalg.vector_norm(x), low, high]
    if count:
        parts.append(torch.count_nonzero(x).float())
    values = torch.stack(parts).tolist()
    norm, top = values[0], max(-values[1], values[2])
    if math.isnan(values[1]) or math.isnan(values[2]):
        top = math.nan
    if math.isinf(norm) and math.isfinite(top):  # finite entries whose squares overflow
        norm = float(torch.linalg.vector_norm(t.double()))
    return norm, top, int(values[3]) if count else 0


def _duplicate_units(module: nn.Module, w: torch.Tensor, g: torch.Tensor) -> tuple[int, int]:
    """How many output units equal another unit in both weight row and gradient row."""
    import torch

    if type(module).__name__ in ("Embedding", "EmbeddingBag"):  # units are columns there
        w, g = w.t(), g.t()
    rows_w, rows_g = w.reshape(w.shape[0], -1).float(), g.reshape(g.shape[0], -1).float()
    units = rows_w.shape[0]
    if units < 2:
        return 0, 0
    # Sort units by a random projection so equal rows become neighbours, then compare
    # neighbours exactly: linear cost, no false matches.
    gen = torch.Generator(device=w.device).manual_seed(1234)
    key = rows_w @ torch.randn(
        rows_w.shape[1], generator=gen, device=w.device
    ) + rows_g @ torch.randn(rows_g.shape[1], generator=gen, device=w.device)
    order = torch.argsort(key)
    sw, sg = rows_w[order], rows_g[order]
    same = (sw[1:] == sw[:-1]).all(dim=1) & (sg[1:] == sg[:-1]).all(dim=1)
    return units, int(same.sum())
