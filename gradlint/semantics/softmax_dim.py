"""Softmax-family calls that leave `dim` to PyTorch, and the axis that is clearly meant."""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from gradlint.semantics import tables
from gradlint.semantics.index import ModuleClass, TorchIndex, self_attribute
from gradlint.semantics.losses import input_of

NN, F = tables.NN, tables.F

# `dim=None` by default: PyTorch guesses the axis and warns (legacy `_get_softmax_dim`)
IMPLICIT_DIM_MODULES = frozenset({NN + "Softmax", NN + "LogSoftmax", NN + "Softmin"})
IMPLICIT_DIM_FUNCTIONS = frozenset({F + "softmax", F + "log_softmax", F + "softmin"})
# no default at all: leaving `dim` out raises TypeError
REQUIRED_DIM_FUNCTIONS = frozenset(
    {"torch.softmax", "torch.log_softmax", "torch.special.softmax", "torch.special.log_softmax"}
)
REQUIRED_DIM_METHODS = frozenset({"softmax", "log_softmax"})


@dataclass(frozen=True)
class ImplicitDim:
    """A softmax-family call that leaves `dim` to PyTorch (or forgets the required one)."""

    call: cst.Call  # add `dim=...` to this call's arguments
    name: str  # the callee as written: `nn.Softmax`, `F.log_softmax`, `x.softmax`
    raises: bool  # torch.softmax / Tensor.softmax: no default, the call raises TypeError
    intended: int | None  # the axis clearly meant (-1 after Linear or `@`, 1 after a conv)


def legacy_softmax_dim(ndim: int) -> int:
    """The axis PyTorch picks when `dim` is None (torch.nn.functional._get_softmax_dim)."""
    return 0 if ndim in (0, 1, 3) else 1


def implicit_dim(
    index: TorchIndex,
    call: cst.Call,
    owner: ModuleClass | None = None,
    previous: cst.CSTNode | None = None,
) -> ImplicitDim | None:
    """The call, when it is a softmax without `dim`; `previous` is the layer before it in an
    nn.Sequential, `owner` the module class whose layers `self.fc(x)` refers to."""
    if any(arg.star for arg in call.args):
        return None  # `*args` / `**kwargs` may carry dim
    name = index.call_name(call)
    if name in IMPLICIT_DIM_MODULES:
        dim_at, raises, operand = 0, False, None
    elif name in IMPLICIT_DIM_FUNCTIONS or name in REQUIRED_DIM_FUNCTIONS:
        dim_at, raises, operand = 1, name in REQUIRED_DIM_FUNCTIONS, input_of(call)
    elif (
        name is None
        and isinstance(call.func, cst.Attribute)
        and call.func.attr.value in REQUIRED_DIM_METHODS
        and self_attribute(call.func) is None
    ):
        dim_at, raises, operand = 0, True, call.func.value
    else:
        return None
    if _has_dim(call, dim_at):
        return None
    intended = _axis_after(index, previous) if previous is not None else None
    if operand is not None:
        intended = _axis_of(index, operand, owner)
    spelled = cst.Module([]).code_for_node(call.func)
    return ImplicitDim(call, spelled, raises, intended)


def _has_dim(call: cst.Call, position: int) -> bool:
    positional = [a.value for a in call.args if a.keyword is None]
    keywords = {a.keyword.value: a.value for a in call.args if a.keyword is not None}
    # `axis=` is an alias of `dim` for torch.softmax and Tensor.softmax; functional and module
    # forms reject it with a TypeError of their own, which is not a missing dim either
    dim = keywords.get("dim", keywords.get("axis"))
    if dim is None and len(positional) > position:
        dim = positional[position]
    return dim is not None and not (isinstance(dim, cst.Name) and dim.value == "None")


def _axis_of(
    index: TorchIndex, operand: cst.BaseExpression, owner: ModuleClass | None
) -> int | None:
    """The class/feature axis of a tensor computed by a visible layer, else None."""
    if isinstance(operand, cst.BinaryOperation):
        return -1 if isinstance(operand.operator, cst.MatrixMultiply) else None
    if not isinstance(operand, cst.Call):
        return None
    if index.call_name(operand) in (F + "linear", "torch.matmul", "torch.bmm"):
        return -1
    attr = self_attribute(operand.func)
    if attr is not None and owner is not None and attr in owner.attrs:
        return _axis_after(index, owner.attrs[attr])
    return None


def _axis_after(index: TorchIndex, layer: cst.CSTNode) -> int | None:
    name = index.call_name(layer)
    if name not in tables.DENSE_LAYERS:
        return None
    return 1 if "Conv" in name else -1  # conv outputs put channels at 1, Linear features last
