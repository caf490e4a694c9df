"""Init calls and their scales: what a `normal_`/`uniform_`/`constant_` call draws, the gain of a
Xavier/Kaiming call, a layer's literal fan-in, and the literal arithmetic they are written in
(`1 / math.sqrt(256)`, `2 ** -0.5`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import libcst as cst

from gradlint.semantics import init, tables
from gradlint.semantics.index import ModuleClass, TorchIndex
from gradlint.semantics.nodes import walk_visitor

# -- literal numbers ------------------------------------------------------------------------

_MATH = {"math.sqrt": math.sqrt, "numpy.sqrt": math.sqrt, "math.exp": math.exp}
_CONSTANTS = {"math.pi": math.pi, "math.e": math.e}


def number(index: TorchIndex, node: cst.BaseExpression) -> float | None:
    """The value of a literal expression (`-1`, `1 / math.sqrt(256)`, `2 ** -0.5`), else None."""
    if isinstance(node, (cst.Integer, cst.Float)):
        return float(node.evaluated_value)
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, (cst.Minus, cst.Plus)):
        inner = number(index, node.expression)
        if inner is None:
            return None
        return -inner if isinstance(node.operator, cst.Minus) else inner
    if isinstance(node, cst.BinaryOperation):
        left, right = number(index, node.left), number(index, node.right)
        if left is None or right is None:
            return None
        try:
            if isinstance(node.operator, cst.Add):
                return left + right
            if isinstance(node.operator, cst.Subtract):
                return left - right
            if isinstance(node.operator, cst.Multiply):
                return left * right
            if isinstance(node.operator, cst.Divide):
                return left / right
            if isinstance(node.operator, cst.Power):
                return float(left**right)
        except (ZeroDivisionError, OverflowError, ValueError):
            return None
        return None
    name = index.qualified(node) if isinstance(node, (cst.Name, cst.Attribute)) else None
    if name in _CONSTANTS:
        return _CONSTANTS[name]
    if isinstance(node, cst.Call) and len(node.args) == 1:
        function = _MATH.get(index.call_name(node) or "")
        value = number(index, node.args[0].value)
        if function is not None and value is not None and value >= 0:
            return function(value)
    return None


def argument(call: cst.Call, position: int, keyword: str) -> cst.BaseExpression | None:
    """The argument passed at `position` (0-based) or as `keyword=`; None when absent."""
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == keyword:
            return arg.value
    positional = [arg for arg in call.args if arg.keyword is None]
    if any(arg.star for arg in positional[: position + 1]):
        return None
    return positional[position].value if position < len(positional) else None


def has_star(call: cst.Call) -> bool:
    return any(arg.star for arg in call.args)


# -- what an init call draws --------------------------------------------------------------


@dataclass(frozen=True)
class Draw:
    """The distribution a random/constant init draws every element from."""

    kind: str  # normal, uniform, constant
    low: float  # uniform bounds; for a normal, mean and std are kept in `mean` / `std`
    high: float
    mean: float = 0.0
    std: float = 0.0

    @property
    def rms(self) -> float:
        """sqrt(E[w^2]): fan_in * rms^2 is the factor by which a layer scales variance."""
        if self.kind == "uniform":
            return math.sqrt((self.low**2 + self.low * self.high + self.high**2) / 3)
        return math.sqrt(self.mean**2 + self.std**2)

    @property
    def text(self) -> str:
        if self.kind == "uniform":
            return f"U({self.low:g}, {self.high:g})"
        if self.kind == "normal":
            return f"N({self.mean:g}, {self.std:g})"
        return f"the constant {self.mean:g}"


# (position, keyword, default) of each parameter; positions count from the tensor argument
# for `nn.init` functions and from the first argument for tensor methods.
_NORMAL = (("mean", 1, 0.0), ("std", 2, 1.0))
_UNIFORM = (("a", 1, 0.0), ("b", 2, 1.0))
_METHOD_NORMAL = (("mean", 0, 0.0), ("std", 1, 1.0))
_METHOD_UNIFORM = (("from", 0, 0.0), ("to", 1, 1.0))


def draw(index: TorchIndex, call: init.InitCall) -> Draw | None:
    """What `nn.init.normal_/uniform_/trunc_normal_/constant_` or `.normal_()/.uniform_()/
    .fill_()` draws; None for other inits and for arguments that are not literal."""
    is_method = index.call_name(call.call) is None
    function = call.function
    if function in ("normal_", "trunc_normal_", "normal"):
        spec = _METHOD_NORMAL if is_method else _NORMAL
        values = _literal_args(index, call.call, spec)
        return None if values is None else Draw("normal", 0.0, 0.0, values[0], abs(values[1]))
    if function in ("uniform_", "uniform"):
        spec = _METHOD_UNIFORM if is_method else _UNIFORM
        values = _literal_args(index, call.call, spec)
        return None if values is None else Draw("uniform", min(values), max(values))
    if function in ("constant_", "fill_", "constant"):
        values = _literal_args(index, call.call, (("val", 0 if is_method else 1, math.nan),))
        if values is None or math.isnan(values[0]):
            return None
        return Draw("constant", values[0], values[0], values[0])
    return None


def _literal_args(
    index: TorchIndex, call: cst.Call, spec: Sequence[tuple[str, int, float]]
) -> list[float] | None:
    if has_star(call):
        return None
    values: list[float] = []
    for keyword, position, default in spec:
        node = argument(call, position, keyword)
        value = default if node is None else number(index, node)
        if value is None:
            return None
        values.append(value)
    return values


def gain(index: TorchIndex, call: init.InitCall) -> tuple[str, float, str] | None:
    """(`xavier` | `kaiming`, gain, nonlinearity it is meant for) of a Xavier/Kaiming call.

    The gain multiplies the weights' std; `gain ** 2` is how much variance a layer with
    fan_in == fan_out keeps (ReLU halves it, so ReLU layers need gain sqrt(2)).
    None when the call is something else or the gain cannot be read.
    """
    if index.call_name(call.call) is None or has_star(call.call):
        return None  # timm/HF re-exports and tensor methods: not torch's signature
    if call.function.startswith("xavier_"):
        node = argument(call.call, 1, "gain")
        if node is None:
            return "xavier", 1.0, "linear"
        meant = _calculate_gain(index, node)
        if meant is not None:
            return "xavier", meant[1], meant[0]
        value = number(index, node)
        return None if value is None else ("xavier", value, "gain")
    if call.function.startswith("kaiming_"):
        a_node = argument(call.call, 1, "a")
        nonlinearity = argument(call.call, 3, "nonlinearity")
        name = "leaky_relu" if nonlinearity is None else _string(nonlinearity)
        a = 0.0 if a_node is None else number(index, a_node)
        if name is None or a is None:
            return None
        return "kaiming", _gain_for(name, a), name
    return None


def _gain_for(nonlinearity: str, a: float) -> float:
    """`nn.init.calculate_gain(nonlinearity, a)`: sqrt(2) for relu, 5/3 for tanh, 1 for linear."""
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        return math.sqrt(2.0 / (1 + a * a))
    return {"tanh": 5.0 / 3, "selu": 0.75}.get(nonlinearity, 1.0)


def _calculate_gain(index: TorchIndex, node: cst.BaseExpression) -> tuple[str, float] | None:
    if not (isinstance(node, cst.Call) and index.call_name(node) == tables.INIT + "calculate_gain"):
        return None
    name = _string(node.args[0].value) if node.args else None
    if name is None:
        return None
    param = argument(node, 1, "param")
    a = 0.01 if param is None else number(index, param)
    return name, _gain_for(name, a if a is not None else 0.01)


def _string(node: cst.BaseExpression) -> str | None:
    if isinstance(node, cst.SimpleString):
        value = node.evaluated_value
        return value if isinstance(value, str) else None
    return None


_RANDOM_FACTORIES = {"torch.randn": "N(0, 1)", "torch.rand": "U(0, 1)"}


def unscaled_random_tensor(index: TorchIndex, node: cst.BaseExpression) -> str | None:
    """`N(0, 1)` for `torch.randn(a, b)` (2-D or more, no scale factor); None otherwise."""
    factor = 1.0
    if isinstance(node, cst.BinaryOperation) and isinstance(
        node.operator, (cst.Multiply, cst.Divide)
    ):
        value = number(index, node.right)
        if value is None or value == 0:
            return None  # `/ math.sqrt(fan_in)`, `* scale`: scaled by something we cannot read
        factor = value if isinstance(node.operator, cst.Multiply) else 1 / value
        node = node.left
    if not isinstance(node, cst.Call):
        return None
    distribution = _RANDOM_FACTORIES.get(index.call_name(node) or "")
    if distribution is None or abs(factor) < 0.5 or has_star(node):
        return None
    positional = [arg.value for arg in node.args if arg.keyword is None]
    if positional and isinstance(positional[0], (cst.Tuple, cst.List)):
        rank = len(positional[0].elements)
    else:
        rank = len(positional)
    if rank < 2:
        return None  # a vector: scales, offsets, tokens
    return distribution if factor == 1.0 else f"{factor:g}·{distribution}"


def fan_in(index: TorchIndex, constructor: cst.BaseExpression | None) -> int | None:
    """in_features (Linear) or in_channels·k·k (Conv) when written as literals."""
    if not isinstance(constructor, cst.Call):
        return None
    name = index.call_name(constructor) or ""
    first = argument(constructor, 0, "in_features" if name.endswith("Linear") else "in_channels")
    size = number(index, first) if first is not None else None
    if size is None:
        return None
    if "Conv" in name:
        kernel = argument(constructor, 2, "kernel_size")
        k = number(index, kernel) if kernel is not None else None
        if k is None:
            return None
        dims = 3 if name.endswith("3d") else 1 if name.endswith("1d") else 2
        return int(size * k**dims)
    return int(size) if name.endswith("Linear") else None


def has_manual_scale(index: TorchIndex, info: ModuleClass) -> bool:
    """An attribute like `self.scale = dim ** -0.5` or `1 / math.sqrt(d)`: products get rescaled."""
    finder = _ScaleFinder(index)
    for value in info.attrs.values():
        walk_visitor(value, finder)
    return finder.found


class _ScaleFinder(cst.CSTVisitor):
    def __init__(self, index: TorchIndex) -> None:
        self.index = index
        self.found = False

    def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
        if isinstance(node.operator, cst.Power) and number(self.index, node.right) in (-0.5, 0.5):
            self.found = True

    def visit_Call(self, node: cst.Call) -> None:
        if (self.index.call_name(node) or "").endswith(".sqrt"):
            self.found = True


# -- tensors whose every element is the same -----------------------------------------------

_CONSTANT_FACTORIES = {
    "torch.zeros": 0.0,
    "torch.zeros_like": 0.0,
    "torch.ones": 1.0,
    "torch.ones_like": 1.0,
    "torch.full": math.nan,
    "torch.full_like": math.nan,
}
_TENSOR_LITERALS = frozenset(
    {"torch.tensor", "torch.Tensor", "torch.FloatTensor", "torch.as_tensor"}
)
# tensor methods that keep the values: `torch.zeros(3, 4).cuda()`, `.float()`, `.to(device)`
KEEPS_VALUES = frozenset(
    {"to", "cuda", "cpu", "float", "double", "half", "requires_grad_", "detach", "clone", "long"}
)


@dataclass(frozen=True)
class ConstantTensor:
    """A tensor built with one value everywhere: `torch.zeros(a, b)`, `torch.full(s, 0.5)`."""

    value: float | None  # None when the value is not a literal (`torch.full(s, c)`)
    rank: int | None  # number of dimensions, when written out

    @property
    def text(self) -> str:
        if self.value == 0:
            return "zeros"
        if self.value == 1:
            return "ones"
        return "a constant" if self.value is None else f"the constant {self.value:g}"


def constant_tensor(index: TorchIndex, node: cst.BaseExpression) -> ConstantTensor | None:
    """What `node` builds when every element is the same value; None otherwise or unknown."""
    node = keep_values(node)
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Multiply):
        for tensor, factor in ((node.left, node.right), (node.right, node.left)):
            inner = constant_tensor(index, tensor)
            scale = number(index, factor)
            if inner is not None and scale is not None:
                scaled = None if inner.value is None else inner.value * scale
                return ConstantTensor(scaled, inner.rank)
        return None
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, (cst.Add, cst.Subtract)):
        for tensor, offset in ((node.left, node.right), (node.right, node.left)):
            inner = constant_tensor(index, tensor)
            shift = number(index, offset)
            if inner is None or shift is None:
                continue
            if inner.value is None:  # `torch.zeros_like(w) + 1`: still one value everywhere
                return ConstantTensor(None, inner.rank)
            if isinstance(node.operator, cst.Add):
                return ConstantTensor(inner.value + shift, inner.rank)
            moved = inner.value - shift if tensor is node.left else shift - inner.value
            return ConstantTensor(moved, inner.rank)
        return None
    if not isinstance(node, cst.Call) or has_star(node):
        return None
    name = index.call_name(node)
    if name == tables.PARAMETER and node.args:
        return constant_tensor(index, node.args[0].value)
    if name in _CONSTANT_FACTORIES:
        value: float | None = _CONSTANT_FACTORIES[name]
        size_args = [a.value for a in node.args if a.keyword is None]
        if name.startswith("torch.full"):
            fill = argument(node, 1, "fill_value")
            value = number(index, fill) if fill is not None else None
            size_args = size_args[:1]
        if name.endswith("_like"):
            return ConstantTensor(value, None)
        if len(size_args) == 1 and isinstance(size_args[0], (cst.Tuple, cst.List)):
            return ConstantTensor(value, len(size_args[0].elements))
        return ConstantTensor(value, len(size_args) if size_args else None)
    if name in _TENSOR_LITERALS and len(node.args) == 1 and node.args[0].keyword is None:
        values, rank = _literal_values(index, node.args[0].value)
        if values is not None and len(values) >= 2 and len(set(values)) == 1:
            return ConstantTensor(values[0], rank)
    return None


def keep_values(node: cst.BaseExpression) -> cst.BaseExpression:
    """`torch.zeros(3, 4)` for `torch.zeros(3, 4).cuda().float()`."""
    while (
        isinstance(node, cst.Call)
        and isinstance(node.func, cst.Attribute)
        and node.func.attr.value in KEEPS_VALUES
    ):
        node = node.func.value
    return node


def _literal_values(index: TorchIndex, node: cst.BaseExpression) -> tuple[list[float] | None, int]:
    """The numbers of a nested list literal and its depth; None when one is not a number."""
    if not isinstance(node, (cst.List, cst.Tuple)):
        value = number(index, node)
        return (None, 0) if value is None else ([value], 0)
    values: list[float] = []
    depth = 0
    for element in node.elements:
        inner, inner_depth = _literal_values(index, element.value)
        if inner is None:
            return None, 0
        values.extend(inner)
        depth = max(depth, inner_depth)
    return values, depth + 1
