"""What to probe and how: plain data shared by the CLI, the config reader and the child."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

LOSSES = ("projection", "cross_entropy", "mse", "bce_logits")
INPUT_DTYPES = ("float", "long", "int", "bool")
MODEL_DTYPES = ("float32", "float64", "float16", "bfloat16")
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
DEVICES = ("cpu", "cuda")


class SpecError(ValueError):
    """A malformed probe option (shape, range, threshold); the message names the option."""


@dataclass(frozen=True)
class Thresholds:
    """Limits that turn measurements into GL2xx findings (see docs/probe.md for sources)."""

    vanishing_ratio: float = 1e-3  # first/last layer gradient (or forward std) ratio below
    exploding_ratio: float = 1e3  # ... or above
    update_ratio: float = 1e3  # |grad| / |weight| above: lr 1e-3 would replace the weight
    step_growth: float = 1e2  # gradient norm growth from step 1 to any later step
    dead_fraction: float = 0.5  # share of ReLU units silent for the whole batch
    saturation_fraction: float = 0.5  # share of sigmoid/tanh outputs in the flat tails
    min_dead_batch: int = 8  # smaller batches cannot tell dead units from unlucky ones
    # live units whose outputs vary this little across the batch (variance / mean square;
    # 0.68 for a zero-mean pre-activation) see one sample repeated, e.g. behind the global
    # pooling of random images
    min_dead_diversity: float = 0.2

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name.replace("_", "-") for f in fields(cls))

    def with_values(self, values: dict[str, Any]) -> Thresholds:
        """A copy with kebab- or snake-case `values` applied; raises SpecError on bad input."""
        updates: dict[str, Any] = {}
        for key, value in values.items():
            name = key.replace("-", "_")
            if name not in {f.name for f in fields(self)}:
                raise SpecError(f"unknown threshold '{key}' (known: {', '.join(self.names())})")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise SpecError(f"threshold '{key}' must be a number, got {value!r}")
            if value < 0:
                raise SpecError(f"threshold '{key}' must not be negative, got {value!r}")
            updates[name] = int(value) if name == "min_dead_batch" else float(value)
        return replace(self, **updates)


@dataclass(frozen=True)
class InputSpec:
    """One generated model input: shape, dtype and (for integer inputs) value range."""

    shape: tuple[int, ...]
    dtype: str = "float"
    low: float = 0.0
    high: float | None = None  # exclusive upper bound for integer inputs

    def to_dict(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "dtype": self.dtype, "low": self.low, "high": self.high}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputSpec:
        return cls(tuple(data["shape"]), data["dtype"], data["low"], data["high"])


@dataclass(frozen=True)
class ProbeSpec:
    """Everything the child process needs to build, run and measure one model."""

    target: str
    init_args: dict[str, Any] = field(default_factory=dict)
    inputs: tuple[InputSpec, ...] = ()
    input_fn: str | None = None  # "file.py:func" or "pkg.mod:func" returning example inputs
    loss: str = "projection"
    output: str | None = None  # which element of a tuple/dict output enters the loss
    loss_fn: str | None = None  # "file.py:func" or "pkg.mod:func": loss from the output
    steps: int = 1
    optimizer: str = "sgd"
    lr: float = 0.01
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    timeout: float = 120.0
    memory_limit_mb: int | None = None  # child address-space cap; None: physical RAM, 0: off
    thresholds: Thresholds = Thresholds()
    cwd: str | None = None  # folder that relative targets are resolved against
    atol: float | None = None  # gradcheck tolerances; None: gradcheck's defaults
    rtol: float | None = None
    gradgrad: bool = False  # gradcheck: also check the backward's own backward

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["inputs"] = [i.to_dict() for i in self.inputs]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProbeSpec:
        values = dict(data)
        values["inputs"] = tuple(InputSpec.from_dict(i) for i in data.get("inputs", ()))
        values["thresholds"] = Thresholds(**data.get("thresholds", {}))
        return cls(**values)


def parse_shape(text: str | list[Any]) -> tuple[int, ...]:
    """'32,784' or [32, 784] -> (32, 784)."""
    parts: list[Any] = text if isinstance(text, list) else re.split(r"[,x]", text.strip())
    try:
        if any(isinstance(p, (bool, float)) for p in parts):
            raise ValueError("not an integer")
        shape = tuple(int(p) for p in parts)
    except (TypeError, ValueError):
        raise SpecError(f"input shape must be integers like 32,784, got {text!r}") from None
    if not shape or any(d <= 0 for d in shape):
        raise SpecError(f"input shape must be positive integers like 32,784, got {text!r}")
    return shape


def parse_range(text: str | list[Any]) -> tuple[float, float]:
    """'0,30000' or [0, 30000] -> (0.0, 30000.0); the upper bound is exclusive."""
    parts: list[Any] = text if isinstance(text, list) else text.split(",")
    try:
        low, high = (float(p) for p in parts)
    except (TypeError, ValueError):
        raise SpecError(f"input range must be two numbers like 0,30000, got {text!r}") from None
    if high <= low:
        raise SpecError(f"input range must have low < high, got {text!r}")
    return low, high


def parse_named_range(text: str | list[Any]) -> tuple[int | None, float, float]:
    """'1=0,30000' -> (1, 0.0, 30000.0): a range for input 1 only; '0,30000' -> (None, ...)."""
    index: int | None = None
    if isinstance(text, str) and "=" in text:
        name, _, text = text.partition("=")
        if not name.strip().isdigit():
            raise SpecError(
                f"input range must look like LOW,HIGH or INPUT=LOW,HIGH (INPUT counts from 0), "
                f"got {name + '=' + text!r}"
            )
        index = int(name)
    return (index, *parse_range(text))


def build_inputs(
    shapes: list[tuple[int, ...]],
    dtypes: list[str],
    ranges: list[tuple[float, float]] | list[tuple[int | None, float, float]],
) -> tuple[InputSpec, ...]:
    """Pair repeated --input-shape/--input-dtype/--input-range.

    One dtype fits all inputs. Ranges: `INPUT=LOW,HIGH` applies to that input only; as many
    plain ranges as shapes pair up in order; a single plain range applies to the one input,
    or, with several inputs, to the integer ones only (token ids beside float features).
    An integer input without a range gets its upper bound from the model's vocabulary."""
    named: dict[int, tuple[float, float]] = {}
    plain: list[tuple[float, float]] = []
    for r in ranges:
        if len(r) == 3:
            index, low, high = r
            if index is None:
                plain.append((low, high))
            elif index >= len(shapes):
                raise SpecError(f"--input-range names input {index}, but there are {len(shapes)}")
            else:
                named[index] = (low, high)
        else:
            plain.append((r[0], r[1]))
    if len(dtypes) > 1 and len(dtypes) != len(shapes):
        raise SpecError(f"--input-dtype given {len(dtypes)} times for {len(shapes)} input shapes")
    if len(plain) > 1 and len(plain) != len(shapes):
        raise SpecError(f"--input-range given {len(plain)} times for {len(shapes)} input shapes")
    specs = []
    for i, shape in enumerate(shapes):
        dtype = dtypes[i] if len(dtypes) > 1 else (dtypes[0] if dtypes else "float")
        if dtype not in INPUT_DTYPES:
            raise SpecError(f"input dtype must be one of {', '.join(INPUT_DTYPES)}, got {dtype!r}")
        rng = named.get(i)
        if rng is None and len(plain) > 1:
            rng = plain[i]
        elif rng is None and plain and (len(shapes) == 1 or dtype in ("long", "int")):
            rng = plain[0]
        if rng is None:
            specs.append(InputSpec(shape, dtype))
        else:
            specs.append(InputSpec(shape, dtype, rng[0], rng[1]))
    return tuple(specs)
