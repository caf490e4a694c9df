"""What registers a layer: containers of layers, `add_module`, and what builds a layer.

A layer kept in a plain Python list or dict is invisible to `model.parameters()`; these helpers
tell the layers apart from parameter-free modules and say which names a registering call sees.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

import libcst as cst

from gradlint.semantics import tables
from gradlint.semantics.index import TorchIndex
from gradlint.semantics.names import dotted_name
from gradlint.semantics.nodes import findall
from gradlint.semantics.syntax import bare_name, is_name, mentioned_names

MODULE_CONTAINERS = frozenset(
    {
        tables.MODULE_LIST,
        tables.MODULE_DICT,
        tables.SEQUENTIAL,
        "torch.nn.ParameterList",
        "torch.nn.ParameterDict",
    }
)
# Calls that register what they are given: containers and `add_module`-style methods.
REGISTERING_CALLS = frozenset(
    {
        "ModuleList",
        "ModuleDict",
        "Sequential",
        "ParameterList",
        "ParameterDict",
        "add_module",
        "register_module",
        "register_parameter",
        "register_buffer",
        "setattr",
    }
)
GROWTH_METHODS = frozenset({"append", "extend", "insert", "update", "setdefault"})
# Packages whose CapWords callables are nn.Module classes (torch itself: only torch.nn).
LAYER_PACKAGES = (
    "torch.nn.",
    "torch.ao.nn.",
    "torchvision.ops.",
    "timm.layers.",
    "timm.models.layers.",
    "torch_geometric.nn.",
)
NOT_LAYERS = frozenset({"Parameter", "Buffer", "UninitializedParameter", "UninitializedBuffer"})
PARAMETER_FREE = (tables.ACTIVATION_MODULES - {"torch.nn.PReLU"}) | tables.TRANSPARENT_LAYERS
CAPWORDS = re.compile(r"_?[A-Z][A-Za-z0-9]*[a-z][A-Za-z0-9]*$")


def layer_kind(index: TorchIndex, node: cst.BaseExpression) -> str | None:
    """ "layers" for a call that builds an nn.Module holding parameters, "parameters" for
    `nn.Parameter(...)`, None for anything else or anything unsure."""
    if isinstance(node, cst.IfExp):
        return layer_kind(index, node.body) or layer_kind(index, node.orelse)
    if not isinstance(node, cst.Call):
        return None
    name = index.call_name(node)
    if name == tables.PARAMETER:
        return "parameters"
    if name is None:
        text = dotted_name(node.func)
        return "layers" if text in index.module_classes else None  # a local nn.Module class
    last = name.rsplit(".", 1)[-1]
    if last in NOT_LAYERS or name in PARAMETER_FREE or last.endswith("Loss"):
        return None  # parameter-free layers and losses lose nothing when unregistered
    if name in tables.WEIGHT_NORM_WRAPPERS:
        return "layers"
    if not CAPWORDS.match(last) or ".utils." in name:
        return None
    if name.startswith(LAYER_PACKAGES) or name.startswith("."):
        return "layers"  # torch layers, and classes imported from the project itself
    return None


def container_items(node: cst.BaseExpression) -> tuple[str, list[cst.BaseExpression]] | None:
    """("list" | "tuple" | "dict", items) for a literal container or comprehension."""
    if isinstance(node, (cst.List, cst.Tuple)):
        kind = "list" if isinstance(node, cst.List) else "tuple"
        return kind, [e.value for e in node.elements]
    if isinstance(node, cst.Dict):
        return "dict", [e.value for e in node.elements if isinstance(e, cst.DictElement)]
    if isinstance(node, (cst.ListComp, cst.GeneratorExp)):
        return "list", [node.elt]
    if isinstance(node, cst.DictComp):
        return "dict", [node.value]
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Multiply):
        return container_items(node.left) or container_items(node.right)
    if (
        isinstance(node, cst.Call)
        and isinstance(node.func, cst.Name)
        and node.func.value in ("list", "dict", "tuple")
    ):
        if not node.args:
            return node.func.value, []
        inner = container_items(node.args[0].value)
        return (node.func.value, inner[1]) if inner is not None else None
    return None


def registering_mentions(statements: Sequence[cst.CSTNode]) -> set[str]:
    """Names and `self.x` attributes handed to a registering call (`nn.ModuleList(self.x)`,
    `nn.Sequential(*layers)`, `self.add_module(n, block)`), or iterated by a loop that
    registers (`for i, b in enumerate(self.blocks): self.add_module(str(i), b)`)."""
    found: set[str] = set()
    for node in statements:
        for call in findall(node, cst.Call):
            call = cst.ensure_type(call, cst.Call)
            bare = bare_name(call.func)
            if bare is None or not (bare in REGISTERING_CALLS or CAPWORDS.match(bare)):
                continue
            for arg in call.args:
                found |= _mentions(arg.value)
        for loop in findall(node, cst.For):
            loop = cst.ensure_type(loop, cst.For)
            calls = [cst.ensure_type(c, cst.Call) for c in findall(loop.body, cst.Call)]
            if any(bare_name(c.func) in REGISTERING_CALLS for c in calls):
                found |= _mentions(loop.iter)
    return found


def _mentions(node: cst.CSTNode) -> set[str]:
    names = mentioned_names(node)
    attrs = {f"self.{a.attr.value}" for a in _self_attributes(node)}
    return names | attrs


def _self_attributes(node: cst.CSTNode) -> Iterator[cst.Attribute]:
    for found in findall(node, cst.Attribute):
        found = cst.ensure_type(found, cst.Attribute)
        if is_name(found.value, "self"):
            yield found
