"""Which model an expression builds, and whether that model holds a recurrent layer."""

from __future__ import annotations

import libcst as cst

from gradlint.semantics import tables
from gradlint.semantics.index import PerFile, TorchIndex
from gradlint.semantics.nodes import findall

_CACHE: PerFile[dict[str, str | None]] = PerFile("recurrent._CACHE")


def unwrap(value: cst.BaseExpression) -> cst.BaseExpression:
    """`Net(...).to(device).train()` -> `Net(...)`: these methods return the same module."""
    while (
        isinstance(value, cst.Call)
        and isinstance(value.func, cst.Attribute)
        and value.func.attr.value in tables.MODEL_PASS_THROUGH_METHODS
        and isinstance(value.func.value, cst.Call)
    ):
        value = value.func.value
    return value


def is_model_call(index: TorchIndex, value: cst.BaseExpression) -> bool:
    """`Net(...)` for a local nn.Module class, or a torch layer with weights."""
    value = unwrap(value)
    name = index.call_name(value)
    if name in tables.WEIGHT_LAYERS or name == tables.SEQUENTIAL:
        return True
    return local_class(index, value) is not None


def rnn_in_expr(index: TorchIndex, value: cst.BaseExpression) -> str | None:
    """`LSTM` for `nn.LSTM(...)`, for `Seq2Seq(...).to(dev)` holding one, for a Sequential."""
    value = unwrap(value)
    name = index.call_name(value)
    if name in tables.RNN_LAYERS:
        return _short(name)
    if name == tables.SEQUENTIAL:
        return _rnn_inside(index, value, frozenset())
    local = local_class(index, value)
    return rnn_in_class(index, local) if local is not None else None


def rnn_in_class(index: TorchIndex, name: str, seen: frozenset[str] = frozenset()) -> str | None:
    """The first RNN layer a local nn.Module class builds (in __init__, a Sequential, a local
    submodule or a local base class); None when it builds none that this file shows."""
    cache = _CACHE.setdefault(index, {})
    if name in cache:
        return cache[name]
    info = index.module_classes.get(name)
    if info is None or name in seen:
        return None  # not a local nn.Module, or a recursive definition
    found = _rnn_inside(index, info.node, seen | {name})
    for base in info.node.bases:
        if found is None and isinstance(base.value, cst.Name):
            found = rnn_in_class(index, base.value.value, seen | {name})
    cache[name] = found
    return found


def _rnn_inside(index: TorchIndex, node: cst.CSTNode, seen: frozenset[str]) -> str | None:
    for call in findall(node, cst.Call):
        name = index.call_name(call)
        if name in tables.RNN_LAYERS:
            return _short(name)
        local = local_class(index, call)
        if local is not None:
            inner = rnn_in_class(index, local, seen)
            if inner:
                return inner
    return None


def local_class(index: TorchIndex, value: cst.CSTNode) -> str | None:
    """`Net` for a call `Net(...)` of an nn.Module class defined in this file (never torch's:
    an imported `LSTM` resolves through imports, a local `class LSTM` is looked up here)."""
    if isinstance(value, cst.Call) and isinstance(value.func, cst.Name):
        if value.func.value in index.module_classes and index.qualified(value.func) is None:
            return value.func.value
    return None


def _short(name: str | None) -> str:
    return (name or "").rsplit(".", 1)[-1]
