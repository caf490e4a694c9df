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
# helpers that set a layer's weights and return it: init_, layer_init, weight_init, ortho_init
INIT_HELPER = re.compile(r"(^|_)init(_|$)|^init", re.IGNORECASE)


def layer_kind(index: TorchIndex, node: cst.BaseExpression) -> str | None:
    """ "layers" for a call that builds an nn.Module holding parameters, "parameters" for
    `nn.Parameter(...)`, None for anything else or anything unsure."""
    if isinstance(node, cst.IfExp):
        return layer_kind(index, node.body) or layer_kind(index, node.orelse)
    if not isinstance(node, cst.Call):
        return None
    wrapped = returned_argument(index, node)
    if wrapped is not None:
        return layer_kind(index, wrapped)  # `init_(nn.Linear(...))` hands back the layer
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


def returned_argument(
    index: TorchIndex, call: cst.Call, depth: int = 0
) -> cst.BaseExpression | None:
    """The first argument of a call that initialises a layer and hands it back.

    RL and GAN code wraps each layer in a helper (`init_(nn.Linear(64, 1))`,
    `layer_init(nn.Conv2d(...), std=0.01)`) that sets its weights and returns it. A helper
    defined in this file counts when it returns its first parameter, directly or through
    another such helper; one imported from elsewhere counts when its name says it initialises.
    """
    if not call.args or call.args[0].keyword is not None or call.args[0].star or depth > 3:
        return None
    name = bare_name(call.func)
    if name is None or (index.call_name(call) or "").startswith("torch."):
        return None  # torch.nn.init.* take a tensor, never a layer
    helper = index.functions.get(name) if isinstance(call.func, cst.Name) else None
    if helper is not None:
        return call.args[0].value if _returns_first_parameter(index, helper, depth) else None
    return call.args[0].value if INIT_HELPER.search(name) else None


def _returns_first_parameter(index: TorchIndex, helper: cst.FunctionDef, depth: int) -> bool:
    params = helper.params.params
    returns = [cst.ensure_type(r, cst.Return) for r in findall(helper.body, cst.Return)]
    if not params or not returns:
        return False
    first = params[0].name.value
    for ret in returns:
        value = ret.value
        if isinstance(value, cst.Call):  # `return init(m, ...)`: the helper's own helper
            value = returned_argument(index, value, depth + 1)
        if value is None or not is_name(value, first):
            return False
    return True


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


COLLECTIONS = {
    "List": "list",
    "list": "list",
    "Sequence": "list",
    "MutableSequence": "list",
    "Iterable": "list",
    "Tuple": "tuple",
    "tuple": "tuple",
    "Dict": "dict",
    "dict": "dict",
    "Mapping": "dict",
}


def module_collection_params(index: TorchIndex, function: cst.FunctionDef) -> dict[str, str]:
    """Parameters that hold several nn.Modules, by the container kind they arrive in:
    `layers: List[nn.Module]` -> "list", `*blocks: nn.Module` -> "tuple"."""
    found: dict[str, str] = {}
    star = function.params.star_arg
    if isinstance(star, cst.Param) and star.annotation is not None:
        if _is_module_type(index, star.annotation.annotation):
            found[star.name.value] = "tuple"
    for param in (*function.params.params, *function.params.kwonly_params):
        if param.annotation is not None:
            kind = _module_collection(index, param.annotation.annotation)
            if kind is not None:
                found[param.name.value] = kind
    return found


def params_given_layer_lists(
    index: TorchIndex, class_name: str, init: cst.FunctionDef
) -> dict[str, str]:
    """Parameters of `class_name.__init__` that a construction in this file fills with a
    plain list of layers (`Model([nn.Linear(4, 4), nn.Linear(4, 2)])`, or a name bound to
    one), by the kind of that container."""
    params = [p.name.value for p in init.params.params][1:]  # without self
    lists: dict[str, str] = {}  # `blocks = [nn.Sequential(...), ...]` anywhere in the file
    for assign in findall(index.module, cst.Assign):
        assign = cst.ensure_type(assign, cst.Assign)
        kind = _layer_list(index, assign.value)
        for target in assign.targets:
            if kind is not None and isinstance(target.target, cst.Name):
                lists[target.target.value] = kind
    found: dict[str, str] = {}
    for call in findall(index.module, cst.Call):
        call = cst.ensure_type(call, cst.Call)
        if dotted_name(call.func) != class_name:
            continue
        for position, arg in enumerate(call.args):
            if arg.star:
                break  # positions after `*args` are unknowable
            name = arg.keyword.value if arg.keyword is not None else None
            if name is None and position < len(params):
                name = params[position]
            value = arg.value
            kind = lists.get(value.value) if isinstance(value, cst.Name) else None
            kind = kind or _layer_list(index, value)
            if name is not None and kind is not None:
                found[name] = kind
    return found


def _layer_list(index: TorchIndex, node: cst.BaseExpression) -> str | None:
    found = container_items(node)
    if found is None or not any(layer_kind(index, item) == "layers" for item in found[1]):
        return None
    return found[0]


def _module_collection(index: TorchIndex, annotation: cst.BaseExpression) -> str | None:
    if not isinstance(annotation, cst.Subscript):
        return None
    head = bare_name(annotation.value)
    inner = [s.slice.value for s in annotation.slice if isinstance(s.slice, cst.Index)]
    if head in ("Optional", "Union"):
        kinds = {_module_collection(index, item) for item in inner} - {None}
        return kinds.pop() if len(kinds) == 1 else None
    kind = COLLECTIONS.get(head or "")
    if kind is None or not inner:
        return None
    held = inner[-1]  # List[M], Tuple[M, ...] -> M is not last: take any; Dict[str, M] -> M
    if kind == "tuple":
        return kind if any(_is_module_type(index, item) for item in inner) else None
    return kind if _is_module_type(index, held) else None


def _is_module_type(index: TorchIndex, node: cst.BaseExpression) -> bool:
    name = index.qualified(node)
    if name is None:
        return dotted_name(node) in index.module_classes
    last = name.rsplit(".", 1)[-1]
    return (
        name.startswith(LAYER_PACKAGES)
        and bool(CAPWORDS.match(last))
        and (name in tables.MODULE_BASES or (name not in PARAMETER_FREE and last not in NOT_LAYERS))
    )
