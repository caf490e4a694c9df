"""What a hand-written `torch.autograd.Function.backward` does, and whether a numerical
gradient check has anything to compare it with."""

from __future__ import annotations

import libcst as cst

from gradlint.semantics import graph
from gradlint.semantics.index import TorchIndex
from gradlint.semantics.nodes import findall

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
    if graph.is_pass_through_backward(backward):
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
