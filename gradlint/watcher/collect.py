"""Measurements of one sampled training step, taken by hooks and a torch function mode.

Everything is reduced on the device as it happens and kept as small tensors in one
`Pending` list; a single host transfer per step turns them into floats (no sync inside
the forward or backward pass). No reference to a model tensor outlives the step.
Statistics of large outputs are read from evenly spaced entries (SAMPLE, UNITS); NaN/Inf is
always looked for in every entry.
"""

from __future__ import annotations

import functools
import inspect
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from gradlint.probe.hooks import (
    DEAD_UNIT_MODULES,
    SATURATING_MODULES,
    SIGMOID_TAIL,
    TANH_TAIL,
    first_tensor,
)
from gradlint.probe.target import is_torch_defined

# Functional activations watched in forward, whatever module calls them: name -> tail kind
# ("dead" counts units that are zero for the whole batch; the others count flat-tail outputs).
ACTIVATION_FUNCTIONS: dict[Any, tuple[str, str]] = {
    torch.relu: ("relu", "dead"),
    torch.relu_: ("relu", "dead"),
    F.relu: ("relu", "dead"),
    F.relu_: ("relu", "dead"),
    F.relu6: ("relu6", "dead"),
    torch.Tensor.relu: ("relu", "dead"),
    torch.Tensor.relu_: ("relu", "dead"),
    torch.sigmoid: ("sigmoid", "sigmoid"),
    torch.Tensor.sigmoid: ("sigmoid", "sigmoid"),
    torch.Tensor.sigmoid_: ("sigmoid", "sigmoid"),
    F.sigmoid: ("sigmoid", "sigmoid"),
    F.hardsigmoid: ("hardsigmoid", "sigmoid"),
    torch.tanh: ("tanh", "tanh"),
    torch.Tensor.tanh: ("tanh", "tanh"),
    torch.Tensor.tanh_: ("tanh", "tanh"),
    F.tanh: ("tanh", "tanh"),
    F.hardtanh: ("hardtanh", "hardtanh"),
    F.hardtanh_: ("hardtanh", "hardtanh"),
}
MODULE_TAILS = {name: "dead" for name in DEAD_UNIT_MODULES} | dict(SATURATING_MODULES)
# A functional activation named in a model class's source: `F.relu(`, `torch.tanh`, `x.sigmoid()`,
# `relu(x)`; not `self.relu(x)`, which calls a submodule (an activation module is hooked).
FUNCTIONAL_ACTIVATION = re.compile(
    r"(?<!self)\.(?:relu6?_?|sigmoid_?|hardsigmoid|tanh_?|hardtanh_?)\b"
    r"|(?<![\w.])(?:relu6?_?|sigmoid|hardsigmoid|tanh|hardtanh_?)\s*\("
)
# Output standard deviation and saturated fractions are read from at most SAMPLE evenly
# spaced entries, dead units from at most UNITS evenly spaced units (all rows of the batch):
# a full pass over every output of a convolutional net costs as much as its forward.
SAMPLE = 4096
UNITS = 1024


class Pending:
    """Small device tensors waiting for the one host transfer at the end of the step."""

    def __init__(self) -> None:
        self.tensors: list[torch.Tensor] = []
        self.size = 0

    def add(self, tensor: torch.Tensor) -> slice:
        flat = tensor.detach().reshape(-1).float()
        start = self.size
        self.tensors.append(flat)
        self.size += flat.numel()
        return slice(start, self.size)

    def values(self) -> list[float]:
        if not self.tensors:
            return []
        devices = {t.device for t in self.tensors}
        if len(devices) == 1:
            out: list[float] = torch.cat(self.tensors).tolist()
            return out
        return torch.cat([t.cpu() for t in self.tensors]).tolist()


@dataclass
class LayerAcc:
    """One module with parameters, over the forward calls of one step."""

    name: str
    type: str
    order: int
    calls: int = 0
    stds: list[slice] = field(default_factory=list)
    grads: list[tuple[slice, int]] = field(default_factory=list)  # (L2 norm, entries) per call
    backward_order: int | None = None


@dataclass
class ActAcc:
    """One activation (a torch activation module, or a functional call inside a module)."""

    name: str
    type: str
    tail: str
    order: int
    calls: int = 0
    values: list[slice] = field(default_factory=list)  # dead or saturated fraction per call


@dataclass
class OtherAcc:
    """A module without parameters: only checked for NaN/Inf in its output."""

    name: str
    type: str
    order: int
    finite: list[slice] = field(default_factory=list)


class Sample:
    """What one sampled step measured; filled by hooks, read once by `values()`."""

    def __init__(self) -> None:
        self.pending = Pending()
        self.layers: dict[str, LayerAcc] = {}
        self.acts: dict[str, ActAcc] = {}
        self.others: dict[str, OtherAcc] = {}
        self.order = 0
        self.backward_seen = 0
        self.batch_size: int | None = None
        self.grad_slice: slice | None = None  # L2 norm of each present gradient
        self.grad_nonzero: dict[int, slice] = {}  # parameter index -> nonzero count
        self.grad_present: list[bool] = []
        self.weight_slice: slice | None = None
        self.update_slice: slice | None = None
        self.loss: slice | None = None
        self.calls_in: dict[str, int] = {}  # functional calls per module in this forward

    def next_order(self) -> int:
        self.order += 1
        return self.order - 1


class FunctionWatch(TorchFunctionMode):
    """Sees every torch function the model's forward calls (only while a watched step runs).

    Functional activations (F.relu, torch.sigmoid, x.tanh()...) get the dead-unit and
    saturation statistics of the probe's activation modules; in anomaly mode, every
    floating-point result is checked and the first NaN/Inf is reported with its operation.
    """

    def __init__(self, owner: ModuleWatch) -> None:
        super().__init__()
        self.owner = owner

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        out = func(*args, **(kwargs or {}))
        owner = self.owner
        known = ACTIVATION_FUNCTIONS.get(func)
        if known is not None and owner.sample is not None and isinstance(out, torch.Tensor):
            owner.activation(known, out)
        if owner.anomaly is not None and isinstance(out, torch.Tensor):
            owner.check_op(func, out)
        return out


class ModuleWatch:
    """Forward hooks on every module (and a function mode) for one step at a time.

    The function mode is entered for a sampled forward only while functional activations
    may be in it: always in anomaly mode, when the source of one of the model's own module
    classes names one, and otherwise only until the first sampled forward has shown none.
    Torch activation modules (nn.ReLU...) are measured by their forward hook.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.sample: Sample | None = None
        # anomaly mode: called with (phase, module, op) at the first NaN/Inf of a step
        self.anomaly: Callable[[str, str, str], None] | None = None
        self._handles: list[Any] = []
        self._stack: list[str] = []
        self.types: dict[str, str] = {}
        self._layers: set[str] = set()
        self._mode: FunctionWatch | None = None
        for name, module in model.named_modules():
            self.types[name] = type(module).__name__
            if any(True for _ in module.parameters(recurse=False)):
                self._layers.add(name)
        self._activation_modules = {
            name
            for name, module in model.named_modules()
            if type(module).__name__ in MODULE_TAILS and is_torch_defined(type(module))
        }
        # True: a forward calls functional activations; None: not known until one is seen
        self.functional: bool | None = True if names_functional_activation(model) else None

    @property
    def attached(self) -> bool:
        return bool(self._handles)

    def attach(self) -> None:
        if self._handles:
            return
        for name, module in self.model.named_modules():
            self._handles.append(module.register_forward_pre_hook(self._enter(name)))
            self._handles.append(
                module.register_forward_hook(self._leave(name), always_call=module is self.model)
            )

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._exit_mode()

    # -- hooks --------------------------------------------------------------------------

    def _enter(self, name: str) -> Callable[..., None]:
        root = name == ""

        def hook(module: nn.Module, inputs: Any) -> None:
            if root:
                self._stack = []
                if self.sample is not None:
                    self.sample.calls_in = {}
                if self._mode is None and (
                    self.functional is not False or self.anomaly is not None
                ):
                    self._mode = FunctionWatch(self)
                    self._mode.__enter__()  # type: ignore[no-untyped-call]
            self._stack.append(name)

        return hook

    def _leave(self, name: str) -> Callable[..., None]:
        root = name == ""
        layer = name in self._layers
        activation = None
        if name in self._activation_modules:
            activation = (self.types[name], _module_tail(self.types[name]))

        def measure(output: Any) -> None:
            tensor = first_tensor(output) if output is not None else None
            if tensor is None or not tensor.is_floating_point():
                return
            sample = self.sample
            if sample is not None:
                if root and sample.batch_size is None and tensor.dim() > 0:
                    sample.batch_size = int(tensor.shape[0])
                if layer:
                    self._layer_output(sample, name, tensor)
                else:
                    if activation is not None:
                        self._record_activation(sample, name, activation, tensor)
                    self._other_output(sample, name, tensor)
                if root and self.functional is None:
                    self.functional = False  # a whole sampled forward without one
            if self.anomaly is not None and layer and tensor.requires_grad:
                tensor.register_hook(self._anomaly_grad(name))  # type: ignore[no-untyped-call]

        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            if self._stack and self._stack[-1] == name:
                self._stack.pop()
            if root:
                self._exit_mode()
            if self._mode is None:
                measure(output)
                return
            # The watch's own reductions are no operation of the forward: keep them out of
            # the function mode (which would add a Python call to each).
            with torch._C.DisableTorchFunction():
                measure(output)

        return hook

    def _exit_mode(self) -> None:
        if self._mode is not None:
            mode, self._mode = self._mode, None
            mode.__exit__(None, None, None)  # type: ignore[no-untyped-call]

    def _layer_output(self, sample: Sample, name: str, tensor: torch.Tensor) -> None:
        acc = sample.layers.get(name)
        if acc is None:
            acc = sample.layers[name] = LayerAcc(name, self.types[name], sample.next_order())
        acc.calls += 1
        out = tensor.detach()
        if out.numel() > 1:
            acc.stds.append(sample.pending.add(_std(out)))
        if tensor.requires_grad:

            def grad_hook(grad: torch.Tensor) -> None:
                if acc.backward_order is None:
                    acc.backward_order = sample.backward_seen
                    sample.backward_seen += 1
                g = grad.detach()
                # RMS over all entries (the probe counts nonzero ones; counting costs a pass)
                norm = torch.linalg.vector_norm(g, dtype=torch.float32)
                acc.grads.append((sample.pending.add(norm), g.numel()))

            tensor.register_hook(grad_hook)  # type: ignore[no-untyped-call]

    def _other_output(self, sample: Sample, name: str, tensor: torch.Tensor) -> None:
        acc = sample.others.get(name)
        if acc is None:
            acc = sample.others[name] = OtherAcc(name, self.types[name], sample.next_order())
        if tensor.numel() > 0:
            acc.finite.append(sample.pending.add(_nonfinite_mark(tensor.detach().reshape(-1))))

    def activation(self, known: tuple[str, str], out: torch.Tensor) -> None:
        """A functional activation's result, seen by the function mode."""
        sample = self.sample
        if sample is None or not out.is_floating_point():
            return
        here = self._stack[-1] if self._stack else ""
        if here in self._activation_modules:
            return  # the module's own forward hook measures it
        self.functional = True
        function, tail = known
        key = f"{here}.{function}" if here else function
        count = sample.calls_in.get(key, 0) + 1
        sample.calls_in[key] = count
        name = key if count == 1 else f"{key}#{count}"
        self._record_activation(sample, name, (f"functional {function}", tail), out)

    def _record_activation(
        self, sample: Sample, name: str, known: tuple[str, str], out: torch.Tensor
    ) -> None:
        kind, tail = known
        acc = sample.acts.get(name)
        if acc is None:
            acc = sample.acts[name] = ActAcc(name, kind, tail, sample.next_order())
        acc.calls += 1
        value = _tail_fraction(out.detach(), tail)
        if value is not None:
            acc.values.append(sample.pending.add(value))

    def check_op(self, func: Callable[..., Any], out: torch.Tensor) -> None:
        report = self.anomaly
        if report is None or not out.is_floating_point() or bool(torch.isfinite(out).all()):
            return
        op = getattr(func, "__name__", None) or str(func)
        report("forward", self._stack[-1] if self._stack else "", op)

    def _anomaly_grad(self, name: str) -> Callable[[torch.Tensor], None]:
        def hook(grad: torch.Tensor) -> None:
            report = self.anomaly
            if report is not None and not bool(torch.isfinite(grad).all()):
                report("backward", name, "")

        return hook


def names_functional_activation(model: nn.Module) -> bool:
    """Whether the source of one of the model's own (not torch's) module classes names a
    functional activation; True when a source cannot be read."""
    seen: set[type] = set()
    for module in model.modules():
        for cls in type(module).__mro__:
            if cls in seen or cls is object or is_torch_defined(cls):
                continue
            seen.add(cls)
            try:
                source = inspect.getsource(cls)
            except (OSError, TypeError):
                return True
            if FUNCTIONAL_ACTIVATION.search(source):
                return True
    return False


def _module_tail(type_name: str) -> str:
    return MODULE_TAILS.get(type_name, "dead")


def _tail_fraction(out: torch.Tensor, tail: str) -> torch.Tensor | None:
    """The probe's activation statistics, left on the device (on evenly spaced entries)."""
    if tail == "dead":
        if out.dim() < 2:
            return None
        # ReLU-family outputs are >= 0: a unit is silent for the batch when its sum is 0
        units = out.reshape(out.shape[0], -1)
        count = units.shape[1]
        if count > UNITS:
            units = units[:, :: _spacing(count, UNITS, out.shape[-1])]
        return (units.sum(dim=0) == 0).float().mean()
    flat = _spaced(out)
    if tail == "sigmoid":
        return ((flat < SIGMOID_TAIL) | (flat > 1 - SIGMOID_TAIL)).float().mean()
    if tail == "tanh":
        return (flat.abs() > TANH_TAIL).float().mean()
    if tail == "hardtanh":
        return (flat.abs() >= 1).float().mean()
    return None


def _std(out: torch.Tensor) -> torch.Tensor:
    """Standard deviation of `out` (of SAMPLE evenly spaced entries when larger), NaN when
    any entry is NaN/Inf."""
    flat = out.reshape(-1)
    if flat.numel() <= SAMPLE:
        return flat.float().std()
    return _spaced(out).float().std() + _nonfinite_mark(flat)


def _nonfinite_mark(flat: torch.Tensor) -> torch.Tensor:
    """0 when every entry is finite, else NaN. The maximum and minimum are exact (a sum
    could overflow) and propagate NaN; two passes cost a tenth of isfinite(...).all()."""
    return flat.amax() * 0.0 + flat.amin() * 0.0


def _spaced(out: torch.Tensor) -> torch.Tensor:
    """At most SAMPLE entries of `out`, evenly spaced over its flattened entries."""
    flat = out.reshape(-1)
    count = flat.numel()
    if count <= SAMPLE:
        return flat
    row = count // out.shape[0] if out.dim() > 1 and out.shape[0] else count
    return flat[:: _spacing(count, SAMPLE, row)]


@functools.lru_cache(maxsize=1024)
def _spacing(count: int, limit: int, period: int) -> int:
    """The smallest prime step giving at most `limit` of `count` entries that does not divide
    `period` (a row's length): the sampled entries then fall in every column, not in a few."""
    step = max(2, -(-count // limit))
    while not (_is_prime(step) and period % step != 0):
        step += 1
    return step


def _is_prime(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, math.isqrt(n) + 1))


def rms_of(values: list[float], pairs: list[tuple[slice, int]]) -> tuple[float | None, bool]:
    """RMS over calls from (norm, entries) pairs, and whether any norm was NaN/Inf."""
    sq, count, bad = 0.0, 0, False
    for s, entries in pairs:
        norm = values[s][0]
        if not math.isfinite(norm):
            bad = True
        sq += norm * norm
        count += int(entries)
    if count == 0:
        return None, bad
    return math.sqrt(sq / count), bad
