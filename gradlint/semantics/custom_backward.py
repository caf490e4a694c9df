"""Hand-written backward passes: `torch.autograd.Function` subclasses and their checks."""

from __future__ import annotations

from pathlib import PurePath

import libcst as cst

from gradlint.semantics.index import PerFile, TorchIndex
from gradlint.semantics.names import dotted_name
from gradlint.semantics.nodes import findall
from gradlint.semantics.syntax import (
    compact_text,
    is_bare_method_call,
    is_name,
    is_string_line,
    lone_statement,
)

AUTOGRAD_FUNCTION_BASES = frozenset(
    {
        "torch.autograd.Function",
        "torch.autograd.function.Function",
        "torch.autograd.function.InplaceFunction",
    }
)
GRADCHECK_NAMES = frozenset({"gradcheck", "gradgradcheck"})


def autograd_functions(index: TorchIndex) -> dict[str, cst.ClassDef]:
    """`torch.autograd.Function` subclasses defined in the file (local chains included)."""
    found = _FUNCTIONS.get(index)
    if found is not None:
        return found
    found = {}
    changed = True
    while changed:
        changed = False
        for name, node in index.classes.items():
            if name in found:
                continue
            for base in node.bases:
                qualified = index.qualified(base.value)
                if qualified in AUTOGRAD_FUNCTION_BASES or (
                    qualified is None and dotted_name(base.value) in found
                ):
                    found[name] = node
                    changed = True
                    break
    _FUNCTIONS[index] = found
    return found


_FUNCTIONS: PerFile[dict[str, cst.ClassDef]] = PerFile("custom_backward._FUNCTIONS")


def is_gradcheck_call(index: TorchIndex, node: cst.Call) -> bool:
    """`torch.autograd.gradcheck(...)`, `gradgradcheck(...)`, `torch.testing...gradcheck`."""
    name = index.call_name(node) or dotted_name(node.func) or ""
    return name.rsplit(".", 1)[-1] in GRADCHECK_NAMES


def is_pass_through_backward(function: cst.FunctionDef) -> bool:
    """`return grad_output` / `grad_output.clone()` (with Nones), or `raise NotImplementedError`:
    nothing hand-derived to check."""
    params = [p.name.value for p in function.params.params][1:]  # after ctx
    strings = (cst.SimpleString, cst.ConcatenatedString)
    body = [s for s in getattr(function.body, "body", ()) if not is_string_line(s, strings)]
    while len(body) > 1 and _is_name_assignment(body[0]):
        assign = cst.ensure_type(lone_statement(body[0]), cst.Assign)
        if not _is_gradient_copy(assign.value, params):
            return False
        params.append(cst.ensure_type(assign.targets[0].target, cst.Name).value)
        body = body[1:]  # `grad_input = grad_output.clone()`
    if len(body) != 1 or not isinstance(body[0], cst.SimpleStatementLine):
        return False
    statement = body[0].body[0]
    if isinstance(statement, cst.Raise):
        return statement.exc is not None and "NotImplementedError" in compact_text(statement.exc)
    if not isinstance(statement, cst.Return) or statement.value is None:
        return False
    value = statement.value
    parts = [e.value for e in value.elements] if isinstance(value, cst.Tuple) else [value]
    return all(is_name(part, "None") or _is_gradient_copy(part, params) for part in parts)


def _is_name_assignment(statement: cst.CSTNode) -> bool:
    """A line `name = ...` with exactly one target."""
    lone = lone_statement(statement)
    return (
        isinstance(lone, cst.Assign)
        and len(lone.targets) == 1
        and isinstance(lone.targets[0].target, cst.Name)
    )


def _is_gradient_copy(node: cst.BaseExpression, params: list[str]) -> bool:
    """`grad_output` or `grad_output.clone()` for an incoming gradient."""
    if is_bare_method_call(node, "clone"):
        node = cst.ensure_type(cst.ensure_type(node, cst.Call).func, cst.Attribute).value
    return isinstance(node, cst.Name) and node.value in params


def is_test_path(path: str) -> bool:
    """Files under tests/ or named test_*.py / *_test.py / conftest.py."""
    pure = PurePath(path)
    name = pure.name
    return (
        name.startswith("test_")
        or name.endswith("_test.py")
        or name == "conftest.py"
        or any(part in ("tests", "test", "testing") for part in pure.parts[:-1])
    )


# collectives whose backward is another collective: a single-process gradcheck cannot run them
_COLLECTIVES = frozenset(
    {
        "all_reduce",
        "all_gather",
        "all_gather_into_tensor",
        "reduce_scatter",
        "reduce_scatter_tensor",
        "all_to_all",
        "all_to_all_single",
        "broadcast",
    }
)
# `grad.neg()`, `grad.clone()`, `grad.mul(ctx.scale)`: methods that only scale or copy
_SCALING_METHODS = frozenset({"neg", "clone", "mul", "div", "contiguous", "view_as", "mul_"})


def nothing_to_check(index: TorchIndex, backward: cst.FunctionDef) -> bool:
    """The backward passes the gradient through (straight-through), scales or reverses it
    (`grad_output.neg() * ctx.alpha`, `-g`, `g * scale`), runs a collective
    (`dist.all_reduce(grad)`), or raises instead of returning: no hand-derived Jacobian that
    central differences could disagree with."""
    if is_pass_through_backward(backward):
        return True
    returns = [r for r in findall(backward.body, cst.Return) if isinstance(r, cst.Return)]
    if not returns and findall(backward.body, cst.Raise):
        return True  # every way out raises: `raise RuntimeError("not differentiable")`
    if any(_is_collective(index, call) for call in findall(backward.body, cst.Call)):
        return True
    return bool(returns) and all(_scales_gradient(backward, r) for r in returns)


def _is_collective(index: TorchIndex, call: cst.CSTNode) -> bool:
    name = index.call_name(call) or ""
    return name.startswith("torch.distributed.") and name.rsplit(".", 1)[-1] in _COLLECTIVES


def _scales_gradient(backward: cst.FunctionDef, statement: cst.Return) -> bool:
    """Every returned gradient is None or the incoming gradient times constants / ctx fields."""
    params = backward.params
    grads = {p.name.value for p in params.params[1:]}  # after ctx
    if isinstance(params.star_arg, cst.Param):
        grads.add(params.star_arg.name.value)
    scaled: set[str] = set()
    other: set[str] = set()
    for assign in findall(backward.body, cst.Assign):  # `output = grad_output.neg() * ctx.alpha`
        assert isinstance(assign, cst.Assign)
        target = assign.targets[0].target if len(assign.targets) == 1 else None
        if isinstance(target, cst.Name):
            if _is_scaled(assign.value, grads) and _mentions(assign.value, grads):
                scaled.add(target.value)
            else:
                other.add(target.value)  # `dx = None`, then `dx = _idwt(dx0, filters)`
    grads |= scaled - other
    value = statement.value
    if value is None:
        return False
    parts = [e.value for e in value.elements] if isinstance(value, cst.Tuple) else [value]
    real = [p for p in parts if not (isinstance(p, cst.Name) and p.value == "None")]
    return bool(real) and all(_is_scaled(p, grads) and _mentions(p, grads) for p in real)


def _is_scaled(node: cst.BaseExpression, grads: set[str]) -> bool:
    if isinstance(node, cst.Name):
        return node.value in grads or node.value == "None"
    if isinstance(node, (cst.Integer, cst.Float)):
        return True
    if isinstance(node, cst.Attribute):  # `ctx.alpha`, `ctx.scale`
        return isinstance(node.value, cst.Name) and node.value.value in ("ctx", "self")
    if isinstance(node, cst.UnaryOperation):
        return isinstance(node.operator, cst.Minus) and _is_scaled(node.expression, grads)
    if isinstance(node, cst.BinaryOperation):
        return isinstance(node.operator, (cst.Multiply, cst.Divide)) and (
            _is_scaled(node.left, grads) and _is_scaled(node.right, grads)
        )
    if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute):
        return (
            node.func.attr.value in _SCALING_METHODS
            and _is_scaled(node.func.value, grads)
            and all(_is_scaled(a.value, grads) for a in node.args)
        )
    return False


def _mentions(node: cst.CSTNode, grads: set[str]) -> bool:
    return any(isinstance(n, cst.Name) and n.value in grads for n in findall(node, cst.Name))
