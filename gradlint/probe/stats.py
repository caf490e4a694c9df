"""Measurements the probe takes: plain floats and strings, so they cross process boundaries."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gradlint.findings import Finding
    from gradlint.probe.spec import Thresholds


@dataclass(frozen=True)
class Location:
    """Where the model is defined: the `class` (or factory `def`) statement."""

    path: str  # as shown to the user (relative to the working folder when below it)
    line: int
    end_line: int | None = None  # last line of the definition; None when unknown
    name: str = "model"
    end_column: int = 1
    file: str | None = None  # absolute path, for reading the source

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Location:
        return cls(**data)


@dataclass(frozen=True)
class ParamStats:
    """One parameter after backward."""

    name: str  # local name on its module, e.g. "weight"
    shape: tuple[int, ...]
    requires_grad: bool = True
    grad_none: bool = False
    grad_norm: float = 0.0
    weight_norm: float = 0.0
    grad_mean_abs: float = 0.0
    grad_max_abs: float = 0.0
    grad_nonzero: int = 0  # entries with a nonzero gradient (embeddings: only used rows)
    nonfinite: bool = False
    units: int = 0  # output units (rows) checked for symmetry; 0 when not checked
    duplicate_units: int = 0  # units identical to another in weight and gradient

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def is_matrix(shape: tuple[int, ...]) -> bool:
    """At least two dimensions larger than 1: a weight matrix or kernel, not a vector."""
    return sum(1 for d in shape if d > 1) >= 2


@dataclass(frozen=True)
class ModuleStats:
    """One module in forward order: a layer (has parameters) or a watched activation."""

    name: str
    type: str
    kind: str  # "layer" or "activation"
    order: int
    calls: int = 0
    out_std: float | None = None  # forward activation std (RMS over calls)
    act_grad_rms: float | None = None  # RMS of dLoss/dOutput per element, over calls
    act_grad_norm: float | None = None  # L2 norm of dLoss/dOutput per call (whole batch)
    act_grad_max: float | None = None
    nonfinite_forward: bool = False
    nonfinite_backward: bool = False
    backward_order: int | None = None  # when dLoss/dOutput first arrived (0 = first)
    dead_fraction: float | None = None  # ReLU family: units zero for the whole batch (worst call)
    # ReLU family, in that call: how much the live units' outputs differ between samples
    # (variance across the batch / mean square); near 0 when the batch is in effect one
    # sample at this layer
    batch_diversity: float | None = None
    saturated_fraction: float | None = None  # sigmoid/tanh: outputs in the flat tails
    params: tuple[ParamStats, ...] = ()

    @property
    def label(self) -> str:
        return self.name or "(model)"

    @property
    def trained_params(self) -> tuple[ParamStats, ...]:
        return tuple(p for p in self.params if p.requires_grad)

    @property
    def grad_rms(self) -> float | None:
        """RMS of the nonzero weight-gradient entries: size-independent across layers, and
        not diluted by rows that no input touched (embeddings) or structurally zero parts."""
        params = [p for p in self.trained_params if not p.grad_none]
        nonzero = sum(p.grad_nonzero for p in params)
        if not params or nonzero == 0:
            return None
        return math.sqrt(sum(p.grad_norm**2 for p in params) / nonzero)

    @property
    def grad_mean_abs(self) -> float | None:
        params = [p for p in self.trained_params if not p.grad_none]
        numel = sum(p.numel for p in params)
        return sum(p.grad_mean_abs * p.numel for p in params) / numel if numel else None

    @property
    def grad_max_abs(self) -> float | None:
        params = [p for p in self.trained_params if not p.grad_none]
        return max(p.grad_max_abs for p in params) if params else None

    @property
    def update_ratio(self) -> float | None:
        """Largest |grad| / |weight| over this module's weight matrices and kernels.

        Vectors are left out, whatever their rank: biases start at 0, and layer-scale
        factors shaped (C,) or (C, 1, 1) and class tokens shaped (1, 1, D) start near 0 on
        purpose, so their ratio is huge without anything being wrong."""
        ratios = [
            p.grad_norm / p.weight_norm
            for p in self.trained_params
            if not p.grad_none and p.weight_norm > 0 and is_matrix(p.shape)
        ]
        return max(ratios) if ratios else None


@dataclass(frozen=True)
class StepReport:
    """One forward+backward pass (step 0 is the model as initialised)."""

    step: int
    modules: tuple[ModuleStats, ...]
    loss: float | None = None

    @property
    def layers(self) -> tuple[ModuleStats, ...]:
        return tuple(m for m in self.modules if m.kind == "layer")

    @property
    def grad_norm(self) -> float:
        """Global gradient norm, as clip_grad_norm_ would compute it."""
        return math.sqrt(
            sum(p.grad_norm**2 for m in self.layers for p in m.trained_params if not p.grad_none)
        )


@dataclass(frozen=True)
class ProbeReport:
    """All steps of one probe run plus where the model is defined."""

    steps: tuple[StepReport, ...]
    location: Location
    batch_size: int | None = None
    output: dict[str, Any] = field(default_factory=dict)  # e.g. probability-output check

    def findings(self, thresholds: Thresholds | None = None) -> list[Finding]:
        from gradlint.probe.analysis import analyze
        from gradlint.probe.spec import Thresholds

        return analyze(self, thresholds or Thresholds())

    def with_steps(self, steps: tuple[StepReport, ...]) -> ProbeReport:
        return replace(self, steps=steps)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProbeReport:
        steps = tuple(
            StepReport(
                step=s["step"],
                loss=s["loss"],
                modules=tuple(
                    ModuleStats(
                        **{
                            **m,
                            "params": tuple(
                                ParamStats(**{**p, "shape": tuple(p["shape"])}) for p in m["params"]
                            ),
                        }
                    )
                    for m in s["modules"]
                ),
            )
            for s in data["steps"]
        )
        return cls(
            steps,
            Location.from_dict(data["location"]),
            data.get("batch_size"),
            dict(data.get("output", {})),
        )
