"""What a layer is, and what an `nn.Sequential` or a loop-built layer list holds, in order."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import libcst as cst

from gradlint.semantics import tables
from gradlint.semantics.factories import returned_elements
from gradlint.semantics.index import PerFile, TorchIndex
from gradlint.semantics.nodes import find

# kinds of layer, in the order a data path sees them
SATURATING, ACTIVATION, NORM, DENSE, RNN, EMBEDDING, TRANSPARENT, SEQUENTIAL, UNKNOWN = (
    "saturating",
    "activation",
    "norm",
    "dense",
    "rnn",
    "embedding",
    "transparent",
    "sequential",
    "unknown",
)
MAX_REPEAT = 256  # literal repeats above this are not expanded (the verdict is the same)


@dataclass(frozen=True)
class Layer:
    kind: str
    node: cst.CSTNode
    activation: str | None = None  # sigmoid, tanh, ... for saturating layers


def classify(index: TorchIndex, node: cst.CSTNode) -> Layer:
    """The kind of layer an expression like `nn.Linear(4, 4)` constructs."""
    name = index.call_name(node)
    if name is None:
        return Layer(UNKNOWN, node)
    if name in tables.SATURATING_MODULES:
        return Layer(SATURATING, node, tables.SATURATING_MODULES[name])
    if name in tables.ACTIVATION_MODULES:
        return Layer(ACTIVATION, node)
    if name in tables.NORM_MODULES or name in tables.WEIGHT_NORM_WRAPPERS:
        return Layer(NORM, node)
    if name in tables.DENSE_LAYERS:
        return Layer(DENSE, node)
    if name in tables.RNN_LAYERS:
        return Layer(RNN, node)
    if name in tables.EMBEDDING_LAYERS:
        return Layer(EMBEDDING, node)
    if name in tables.TRANSPARENT_LAYERS:
        return Layer(TRANSPARENT, node)
    if name == tables.SEQUENTIAL:
        return Layer(SEQUENTIAL, node)
    return Layer(UNKNOWN, node)


def int_literal(node: cst.CSTNode) -> int | None:
    if isinstance(node, cst.Integer):
        return int(node.evaluated_value)
    return None


def range_count(
    node: cst.CSTNode, constants: Mapping[str, cst.BaseExpression] | None = None
) -> int | None:
    """How many times `range(<literals>)` iterates, or None when it is not literal; names in
    `constants` (the file's top-level `N_LAYERS = 8`) count as their literal."""
    if not (
        isinstance(node, cst.Call)
        and isinstance(node.func, cst.Name)
        and node.func.value == "range"
    ):
        return None
    values = [arg.value for arg in node.args]
    if constants:
        values = [constants.get(v.value, v) if isinstance(v, cst.Name) else v for v in values]
    bounds = [int_literal(value) for value in values]
    if not bounds or None in bounds or len(bounds) > 2:
        return None
    start, stop = (0, bounds[0]) if len(bounds) == 1 else (bounds[0], bounds[1])
    return max(0, stop - start)  # type: ignore[operator]


def sequence(index: TorchIndex, node: cst.CSTNode) -> list[Layer] | None:
    """The layers, flattened in data order, of an `nn.Sequential(...)` call; None if unknowable."""
    if not isinstance(node, cst.Call) or index.call_name(node) != tables.SEQUENTIAL:
        return None
    positional = [arg for arg in node.args if arg.keyword is None]
    if len(positional) == 1 and positional[0].star == "":
        ordered = _ordered_dict_values(index, positional[0].value)
        if ordered is not None:
            return _flatten(index, ordered)
    items: list[cst.CSTNode] = []
    for arg in positional:
        if arg.star == "*":
            expanded = literal_items(arg.value)
            if expanded is None:
                return None  # `*layers` built elsewhere: the loop that builds it is checked
            items.extend(expanded)
        elif arg.star == "":
            items.append(arg.value)
        else:
            return None
    return _flatten(index, items)


def _flatten(index: TorchIndex, items: Sequence[cst.CSTNode]) -> list[Layer] | None:
    layers: list[Layer] = []
    for item in items:
        if isinstance(item, cst.Name):  # `nn.Sequential(encoder, decoder)` of module variables
            value = module_values(index).get(item.value)
            item = value if value is not None and id(value) not in _EXPANDING else item
        elif isinstance(item, cst.Call):  # `conv_block(64, 128)` returning an nn.Sequential
            returned = returned_elements(index, item)
            if returned is not None and len(returned) == 1 and id(returned[0]) not in _EXPANDING:
                if classify(index, returned[0]).kind == SEQUENTIAL:
                    item = returned[0]
        layer = classify(index, item)
        if layer.kind == SEQUENTIAL:
            _EXPANDING.add(id(item))  # `net = nn.Sequential(net)` must not expand forever
            try:
                inner = sequence(index, item)
            finally:
                _EXPANDING.discard(id(item))
            layers.extend(inner if inner is not None else [Layer(UNKNOWN, item)])
        else:
            layers.append(layer)
    return layers


_EXPANDING: set[int] = set()
_MODULE_VALUES: PerFile[dict[str, cst.BaseExpression]] = PerFile("layers._MODULE_VALUES")


def module_values(index: TorchIndex) -> dict[str, cst.BaseExpression]:
    """Names assigned exactly once at the top level of the file, with their value."""
    found = _MODULE_VALUES.get(index)
    if found is None:
        seen: dict[str, list[cst.BaseExpression]] = {}
        for statement in index.module.body:
            if not isinstance(statement, cst.SimpleStatementLine):
                continue
            for small in statement.body:
                if isinstance(small, cst.Assign):
                    for target in small.targets:
                        if isinstance(target.target, cst.Name):
                            seen.setdefault(target.target.value, []).append(small.value)
        found = {name: values[0] for name, values in seen.items() if len(values) == 1}
        _MODULE_VALUES[index] = found
    return found


def _ordered_dict_values(index: TorchIndex, node: cst.CSTNode) -> list[cst.CSTNode] | None:
    if not (isinstance(node, cst.Call) and index.call_name(node) in ("collections.OrderedDict",)):
        if isinstance(node, cst.Dict):
            return [el.value for el in node.elements if isinstance(el, cst.DictElement)]
        return None
    if len(node.args) != 1:
        return None
    pairs = literal_items(node.args[0].value)
    if pairs is None:
        return None
    values: list[cst.CSTNode] = []
    for pair in pairs:
        if not (isinstance(pair, cst.Tuple) and len(pair.elements) == 2):
            return None
        values.append(pair.elements[1].value)
    return values


def literal_items(node: cst.CSTNode) -> list[cst.CSTNode] | None:
    """Items of `[a, b]`, `(a, b)`, `[a, b] * 3`, `[a for _ in range(3)]`; None otherwise."""
    if isinstance(node, (cst.List, cst.Tuple)):
        if any(isinstance(el, cst.StarredElement) for el in node.elements):
            return None
        return [el.value for el in node.elements]
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Multiply):
        for items_side, count_side in ((node.left, node.right), (node.right, node.left)):
            count = int_literal(count_side)
            items = literal_items(items_side)
            if count is not None and items is not None:
                return items * min(count, MAX_REPEAT)
        return None
    if isinstance(node, cst.ListComp) and node.for_in.inner_for_in is None and not node.for_in.ifs:
        count = range_count(node.for_in.iter)
        if count is not None:
            return [node.elt] * min(count, MAX_REPEAT)
    return None


@dataclass(frozen=True)
class LoopBuiltStack:
    """`for _ in range(N): layers.append(...)`: the layers of one pass, and N."""

    loop: cst.For
    target: str
    per_pass: list[Layer]
    repeats: int

    @property
    def layers(self) -> list[Layer]:
        return self.per_pass * min(self.repeats, MAX_REPEAT)


def loop_built_stack(index: TorchIndex, loop: cst.For) -> LoopBuiltStack | None:
    """A literal-range loop whose body only grows one list with layers; None otherwise."""
    count = range_count(loop.iter)
    if count is None or not isinstance(loop.body, cst.IndentedBlock):
        return None
    target: str | None = None
    items: list[cst.CSTNode] = []
    for statement in loop.body.body:
        grown = _list_growth(statement)
        if grown is None:
            if isinstance(statement, cst.If):
                return None  # conditional layers (`if batch_norm:`): cannot tell the stack
            continue
        name, new_items = grown
        if target not in (None, name):
            return None
        target = name
        items.extend(new_items)
    if target is None or not items:
        return None
    per_pass = _flatten(index, items)
    if per_pass is None:
        return None
    return LoopBuiltStack(loop, target, per_pass, count)


def grown_list(index: TorchIndex, function: cst.FunctionDef, name: str) -> list[Layer] | None:
    """One pass of what `function` puts in its local list `name` (`layers = []`, then
    `layers.append(...)` in loops whose length is not literal, `layers.append(head)`), in
    source order; None when the list is not built that way. Loops count once, so a depth
    read from it is a lower bound."""
    items: list[cst.CSTNode] = []
    started = False
    for statement in _statements(function.body):
        if isinstance(statement, cst.SimpleStatementLine) and len(statement.body) == 1:
            small = statement.body[0]
            if (
                isinstance(small, cst.Assign)
                and len(small.targets) == 1
                and isinstance(small.targets[0].target, cst.Name)
                and small.targets[0].target.value == name
            ):
                start = literal_items(small.value)
                if start is None or started:
                    return None  # built some other way, or rebuilt
                started, items = True, list(start)
                continue
        grown = _list_growth(statement)
        if grown is not None and grown[0] == name:
            items.extend(grown[1])
    return _flatten(index, items) if started and items else None


def _statements(block: cst.BaseSuite) -> list[cst.CSTNode]:
    """Every statement under `block`, in source order, through loops and ifs."""
    out: list[cst.CSTNode] = []
    body = block.body if isinstance(block, cst.IndentedBlock) else []
    for statement in body:
        out.append(statement)
        if isinstance(statement, (cst.For, cst.While, cst.If)):
            out.extend(_statements(statement.body))
            orelse = statement.orelse
            while orelse is not None:  # `elif` chains nest one If per branch
                out.extend(_statements(orelse.body))
                orelse = orelse.orelse if isinstance(orelse, cst.If) else None
    return out


def _list_growth(statement: cst.CSTNode) -> tuple[str, list[cst.CSTNode]] | None:
    """(`layers`, items) for `layers.append(x)`, `layers.extend([..])`, `layers += [..]`."""
    if not (isinstance(statement, cst.SimpleStatementLine) and len(statement.body) == 1):
        return None
    small = statement.body[0]
    if isinstance(small, cst.AugAssign) and isinstance(small.operator, cst.AddAssign):
        items = literal_items(small.value)
        if isinstance(small.target, cst.Name) and items is not None:
            return small.target.value, items
        return None
    if not (isinstance(small, cst.Expr) and isinstance(small.value, cst.Call)):
        return None
    call = small.value
    if not (isinstance(call.func, cst.Attribute) and isinstance(call.func.value, cst.Name)):
        return None
    method, owner = call.func.attr.value, call.func.value.value
    if method == "append" and len(call.args) == 1:
        return owner, [call.args[0].value]
    if method == "extend" and len(call.args) == 1:
        items = literal_items(call.args[0].value)
        return (owner, items) if items is not None else None
    return None


def module_list_size(index: TorchIndex, node: cst.CSTNode) -> tuple[int, list[Layer]] | None:
    """`nn.ModuleList([<layer> for _ in range(N)])` -> (N, layers of one item)."""
    if not (isinstance(node, cst.Call) and index.call_name(node) == tables.MODULE_LIST):
        return None
    if len(node.args) != 1:
        return None
    items = literal_items(node.args[0].value)
    if not items:
        return None
    first = classify(index, items[0])
    inner = sequence(index, items[0]) if first.kind == SEQUENTIAL else [first]
    if inner is None or any(item is not items[0] for item in items):
        return None  # a list of different layers is not a repeated stack
    return len(items), inner


_OUTER: PerFile[dict[cst.CSTNode, list[Layer] | None]] = PerFile("layers._OUTER")


def outer_sequence(index: TorchIndex, node: cst.CSTNode) -> list[Layer] | None:
    """The flattened layers of an `nn.Sequential(...)` literal that is not itself an item of
    another one (a nested Sequential is judged as part of the outer); None otherwise.

    Call it in pre-order (as the engine's walk does): the outer literal is seen first and
    marks the ones nested in it. The result is shared by every rule that asks.
    """
    if not isinstance(node, cst.Call) or index.call_name(node) != tables.SEQUENTIAL:
        return None
    known = _OUTER.setdefault(index, {})
    if node in known:
        return known[node]
    for inner in find(node, cst.Call):
        if index.call_name(inner) == tables.SEQUENTIAL:
            known[inner] = None  # judged with this one
    known[node] = sequence(index, node)
    return known[node]
