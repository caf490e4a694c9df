"""Submodules a class freezes on purpose (`requires_grad_(False)`, `.eval()`, freeze helpers)."""

from __future__ import annotations

import libcst as cst

from gradlint.semantics.index import ModuleClass
from gradlint.semantics.names import dotted_name
from gradlint.semantics.nodes import findall
from gradlint.semantics.syntax import bare_name, is_name

FREEZE_METHODS = frozenset({"requires_grad_", "eval", "train"})


def frozen_attributes(info: ModuleClass) -> set[str] | None:
    """Submodules frozen in the class (`self.backbone.requires_grad_(False)`, `.eval()`,
    `p.requires_grad = False` over `self.x.parameters()`); None when `self` itself is."""
    frozen: set[str] = set()
    for call in findall(info.node, cst.Call):
        call = cst.ensure_type(call, cst.Call)
        func = call.func
        if not isinstance(func, (cst.Attribute, cst.Name)):
            continue
        bare = bare_name(func) or ""
        if isinstance(func, cst.Attribute) and bare in FREEZE_METHODS:
            off = bool(call.args) and is_name(call.args[0].value, "False")
            if bare != "eval" and not off:
                continue
            owner = _self_root_name(func.value)
            if owner == "self":
                return None
            if owner is not None:
                frozen.add(owner)
        elif "freeze" in bare.lower():
            for arg in call.args:
                owner = _self_root_name(arg.value)
                if owner is not None and owner != "self":
                    frozen.add(owner)
    for loop in findall(info.node, cst.For):
        loop = cst.ensure_type(loop, cst.For)
        if not any(_turns_off_requires_grad(a) for a in findall(loop.body, cst.Assign)):
            continue
        for call in findall(loop.iter, cst.Call):
            func = cst.ensure_type(call, cst.Call).func
            if isinstance(func, cst.Attribute) and "parameters" in func.attr.value:
                owner = _self_root_name(func.value)
                if owner == "self":
                    return None
                if owner is not None:
                    frozen.add(owner)
    return frozen


def _turns_off_requires_grad(node: cst.CSTNode) -> bool:
    """`p.requires_grad = False` (a single target; `a = b = False` is left alone)."""
    if not isinstance(node, cst.Assign) or len(node.targets) != 1:
        return False
    target = node.targets[0].target
    return (
        isinstance(target, cst.Attribute)
        and target.attr.value == "requires_grad"
        and is_name(node.value, "False")
    )


def _self_root_name(node: cst.BaseExpression) -> str | None:
    """`x` for `self.x.y.z`, `self` for `self`, else None."""
    text = dotted_name(node)
    if text is None or not (text == "self" or text.startswith("self.")):
        return None
    parts = text.split(".")
    return parts[1] if len(parts) > 1 else "self"
