"""Submodules a class freezes on purpose: `requires_grad_(False)`, `.eval()`, freeze helpers,
EMA copies updated from another submodule's parameters, and pretrained feature extractors."""

from __future__ import annotations

import libcst as cst

from gradlint.semantics.index import ModuleClass
from gradlint.semantics.names import dotted_name
from gradlint.semantics.nodes import findall
from gradlint.semantics.syntax import bare_name, is_name

FREEZE_METHODS = frozenset({"requires_grad_", "eval", "train"})
# in-place updates that make a parameter an average or copy of another (EMA / mean teacher)
COPY_METHODS = frozenset({"copy_", "mul_", "add_", "lerp_", "set_"})
# words that, in a class's text, may mean one of its submodules is frozen (a cheap text gate)
FREEZE_WORDS = ("requires_grad", "eval", "freeze", "Freeze", "copy_", "lerp_", "mul_", "pretrained")


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
        averaged = _averaged_owner(loop)
        if averaged is not None:
            frozen.add(averaged)  # `for t, s in zip(self.teacher..., self.student...)`
            continue
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
    return frozen | _pretrained_attributes(info) | _fixed_embeddings(info)


def _fixed_embeddings(info: ModuleClass) -> set[str]:
    """Embeddings whose one weight is fixed: `self.emb.weight = nn.Parameter(w,
    requires_grad=False)`, `self.emb.weight.requires_grad = False`, or
    `nn.Embedding.from_pretrained(w)` (frozen unless `freeze=False`): a sinusoidal table."""
    embeddings: set[str] = set()
    fixed: set[str] = set()
    for node in findall(info.node, cst.Assign):
        assign = cst.ensure_type(node, cst.Assign)
        if len(assign.targets) != 1:
            continue
        target = dotted_name(assign.targets[0].target) or ""
        parts = target.split(".")
        value = assign.value
        callee = dotted_name(value.func) if isinstance(value, cst.Call) else None
        if len(parts) == 2 and parts[0] == "self" and callee is not None:
            if callee.endswith("Embedding"):
                embeddings.add(parts[1])
            elif callee.endswith("Embedding.from_pretrained") and not _keyword_false(
                value, "freeze"
            ):
                embeddings.add(parts[1])
                fixed.add(parts[1])
        elif parts[:1] == ["self"] and parts[2:3] == ["weight"] and len(parts) in (3, 4):
            if len(parts) == 4 and parts[3] == "requires_grad" and is_name(value, "False"):
                fixed.add(parts[1])
            elif len(parts) == 3 and callee is not None and callee.endswith("Parameter"):
                if _keyword_false(value, "requires_grad"):
                    fixed.add(parts[1])
    return fixed & embeddings


def _keyword_false(call: cst.BaseExpression, keyword: str) -> bool:
    return isinstance(call, cst.Call) and any(
        arg.keyword is not None and arg.keyword.value == keyword and is_name(arg.value, "False")
        for arg in call.args
    )


def _averaged_owner(loop: cst.For) -> str | None:
    """`A` for `for a, b in zip(self.A.parameters(), self.B.parameters()): a.data.copy_(b...)`
    (or `mul_`/`add_`/`lerp_`): A's weights are an average or copy of B's, not trained."""
    target, iterator = loop.target, loop.iter
    if not (
        isinstance(target, cst.Tuple)
        and target.elements
        and isinstance(iterator, cst.Call)
        and is_name(iterator.func, "zip")
        and iterator.args
    ):
        return None
    first = target.elements[0].value
    source = iterator.args[0].value
    if not (isinstance(first, cst.Name) and isinstance(source, cst.Call)):
        return None
    owner = _self_root_name(source.func.value) if isinstance(source.func, cst.Attribute) else None
    if owner in (None, "self"):
        return None
    for call in findall(loop.body, cst.Call):
        func = cst.ensure_type(call, cst.Call).func
        if isinstance(func, cst.Attribute) and func.attr.value in COPY_METHODS:
            receiver = dotted_name(func.value) or ""
            if receiver.split(".")[0] == first.value:
                return owner
    return None


def _pretrained_attributes(info: ModuleClass) -> set[str]:
    """Submodules built from a pretrained model in `__init__` (`resnet = models.resnet50(
    pretrained=True)`, `self.backbone = nn.Sequential(*list(resnet.children())[:-1])`): run
    under no_grad, they are feature extractors kept fixed on purpose."""
    init = info.methods.get("__init__")
    if init is None:
        return set()
    names: set[str] = set()
    for node in findall(init, cst.Assign):
        assign = cst.ensure_type(node, cst.Assign)
        if _is_pretrained_call(assign.value) or _holds(assign.value, names):
            names |= {dotted_name(t.target) or "" for t in assign.targets}
    return {
        attr
        for attr, value in info.attrs.items()
        if _is_pretrained_call(value) or _holds(value, names)
    }


def _holds(value: cst.BaseExpression, names: set[str]) -> bool:
    """`list(resnet.children())[:-1]`, `nn.Sequential(*modules)`, `resnet.features`: parts of a
    pretrained model; a new layer sized from it (`nn.Linear(resnet.fc.in_features, 10)`) is not."""
    if not names:
        return False
    if isinstance(value, cst.Call):
        callee = (dotted_name(value.func) or "").rsplit(".", 1)[-1]
        if callee[:1].isupper() and callee not in ("Sequential", "ModuleList"):
            return False  # a layer of its own
    mentioned = {cst.ensure_type(n, cst.Name).value for n in findall(value, cst.Name)}
    return bool(mentioned & names)


def _is_pretrained_call(value: cst.BaseExpression) -> bool:
    """A call with `pretrained=True` / `weights=<not None>`, or `X.from_pretrained(...)`."""
    if not isinstance(value, cst.Call):
        return False
    if isinstance(value.func, cst.Attribute) and value.func.attr.value == "from_pretrained":
        return True
    for arg in value.args:
        keyword = arg.keyword.value if arg.keyword is not None else ""
        if keyword == "pretrained" and is_name(arg.value, "True"):
            return True
        if keyword == "weights" and not is_name(arg.value, "None"):
            return True
    return False


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
