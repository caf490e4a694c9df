"""Weight initialisation: which calls set a tensor, which tensor is a layer's weight."""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from gradlint.semantics import tables
from gradlint.semantics.index import TorchIndex
from gradlint.semantics.names import dotted_name


@dataclass(frozen=True)
class InitCall:
    """An in-place initialisation of `target` (`nn.init.zeros_(w)`, `w.fill_(0)`, ...)."""

    call: cst.Call
    target: cst.BaseExpression
    function: str  # zeros_, ones_, constant_, fill_, zero_, normal_, kaiming_uniform_, ...
    is_constant: bool


def init_call(index: TorchIndex, node: cst.CSTNode) -> InitCall | None:
    if not isinstance(node, cst.Call):
        return None
    name = index.call_name(node)
    if name is not None and name.startswith(tables.INIT):
        if not node.args:
            return None
        function = name[len(tables.INIT) :]
        return InitCall(node, node.args[0].value, function, name in tables.CONSTANT_INIT_FUNCTIONS)
    func = node.func
    if name is None and isinstance(func, cst.Attribute):
        method = func.attr.value
        if method in tables.CONSTANT_INIT_METHODS or method in tables.RANDOM_INIT_METHODS:
            return InitCall(node, func.value, method, method in tables.CONSTANT_INIT_METHODS)
    return None


def strip_data(node: cst.BaseExpression) -> cst.BaseExpression:
    """`w.data` and `w.detach()` name the same storage as `w`."""
    while True:
        if isinstance(node, cst.Attribute) and node.attr.value == "data":
            node = node.value
        elif (
            isinstance(node, cst.Call)
            and isinstance(node.func, cst.Attribute)
            and node.func.attr.value == "detach"
        ):
            node = node.func.value
        else:
            return node


def weight_of(node: cst.BaseExpression) -> tuple[cst.BaseExpression, str] | None:
    """(`layer`, `weight`) for `layer.weight` / `layer.weight_hh_l0` (`.data` allowed)."""
    node = strip_data(node)
    if isinstance(node, cst.Attribute):
        attr = node.attr.value
        if attr == "weight" or attr.startswith("weight_"):
            return node.value, attr
    return None


def isinstance_guard(index: TorchIndex, test: cst.BaseExpression) -> dict[str, frozenset[str]]:
    """variable -> qualified types for `isinstance(m, T)` / `(T1, T2)` tests, `and` included.

    A type that cannot be resolved is kept as `?` so callers can stay quiet about it.
    """
    found: dict[str, frozenset[str]] = {}
    if isinstance(test, cst.BooleanOperation) and isinstance(test.operator, cst.And):
        found.update(isinstance_guard(index, test.left))
        found.update(isinstance_guard(index, test.right))
        return found
    if not (
        isinstance(test, cst.Call)
        and isinstance(test.func, cst.Name)
        and test.func.value == "isinstance"
        and len(test.args) == 2
    ):
        return found
    subject = dotted_name(test.args[0].value)
    types_node = test.args[1].value
    elements = (
        [el.value for el in types_node.elements]
        if isinstance(types_node, (cst.Tuple, cst.List))
        else [types_node]
    )
    if subject is not None:
        found[subject] = frozenset(index.qualified(el) or "?" for el in elements)
    return found


def is_pure_isinstance(test: cst.BaseExpression) -> bool:
    """True for `isinstance(m, T)` and `and`-chains of such tests, nothing else."""
    if isinstance(test, cst.BooleanOperation) and isinstance(test.operator, cst.And):
        return is_pure_isinstance(test.left) and is_pure_isinstance(test.right)
    return (
        isinstance(test, cst.Call)
        and isinstance(test.func, cst.Name)
        and test.func.value == "isinstance"
    )
