"""Hand-written backward passes: `torch.autograd.Function` subclasses and their checks."""

from __future__ import annotations

from pathlib import PurePath

import libcst as cst

from gradlint.semantics.index import PerFile, TorchIndex
from gradlint.semantics.names import dotted_name
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
