"""Where autograd is off: code that runs under `torch.no_grad()` and its kin.

A loss computed there builds no graph, so what a rule says about its gradient does not
apply (an evaluation loop's BCELoss on sigmoid outputs reports a number; nothing trains on it).
"""

from __future__ import annotations

import libcst as cst
from libcst.metadata import CodeRange

from gradlint.semantics.gradient_cuts import is_no_grad_context
from gradlint.semantics.index import TorchIndex
from gradlint.semantics.nodes import find


def gradient_free(index: TorchIndex, module: cst.Module) -> list[cst.CSTNode]:
    """`with torch.no_grad():` / `inference_mode()` / `set_grad_enabled(False)` statements,
    and functions decorated with one of them: everything inside runs with autograd off."""
    found: list[cst.CSTNode] = []
    for statement in find(module, cst.With):
        if any(is_no_grad_context(index, item.item) for item in statement.items):
            found.append(statement)
    for function in find(module, cst.FunctionDef):
        if any(switches_grad_off(index, d.decorator) for d in function.decorators):
            found.append(function)
    return found


def switches_grad_off(index: TorchIndex, expr: cst.BaseExpression) -> bool:
    """`torch.no_grad()` as a context or decorator, and the bare `@torch.no_grad`, which
    torch accepts too."""
    if is_no_grad_context(index, expr):
        return True
    if isinstance(expr, cst.Call):
        return False
    return index.qualified(expr) in ("torch.no_grad", "torch.inference_mode")


def inside(position: CodeRange, regions: list[CodeRange]) -> bool:
    """`position` starts within one of `regions`."""
    start = (position.start.line, position.start.column)
    return any(
        (r.start.line, r.start.column) <= start <= (r.end.line, r.end.column) for r in regions
    )
