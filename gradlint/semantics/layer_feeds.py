"""Which activation each weight layer feeds, read from `nn.Sequential` literals and from each
class's `forward()`: what the init-scale rules compare an init's gain against."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import libcst as cst

from gradlint.semantics import layers, tables
from gradlint.semantics.index import ModuleClass, PerFile, TorchIndex, self_attribute
from gradlint.semantics.init_draws import number
from gradlint.semantics.init_sites import InitSite
from gradlint.semantics.names import child_blocks

# -- activations, by the short name gradlint reports -----------------------------------------

ZERO_SLOPE = frozenset({"relu", "relu6"})  # no gradient at all for negative inputs
RELU_LIKE = ZERO_SLOPE | {"leaky_relu", "prelu", "rrelu", "elu", "celu", "gelu", "silu", "mish"}
SATURATING = frozenset({"sigmoid", "tanh", "hardtanh", "softsign", "hardsigmoid"})
NORM = "norm"  # a normalization layer follows: it rescales whatever the init did
OUTPUT = "output"  # nothing follows the layer: a head
LINEAR = "linear"  # another weight layer follows directly
UNKNOWN = "?"
_MODULE_ACTIVATIONS = {
    "ReLU": "relu", "ReLU6": "relu6", "LeakyReLU": "leaky_relu", "PReLU": "prelu",
    "RReLU": "rrelu", "ELU": "elu", "CELU": "celu", "SELU": "selu", "GELU": "gelu",
    "SiLU": "silu", "Mish": "mish", "Sigmoid": "sigmoid", "Tanh": "tanh",
    "Hardtanh": "hardtanh", "Softsign": "softsign", "Hardsigmoid": "hardsigmoid",
    "Softplus": "softplus", "Hardswish": "hardswish",
}  # fmt: skip
ACTIVATION_BY_NAME: dict[str, str] = {tables.NN + k: v for k, v in _MODULE_ACTIVATIONS.items()}
for _short in set(_MODULE_ACTIVATIONS.values()):
    ACTIVATION_BY_NAME[tables.F + _short] = _short
    ACTIVATION_BY_NAME[tables.F + _short + "_"] = _short
for _short in ("relu", "relu_", "sigmoid", "tanh", "selu", "celu", "prelu", "rrelu"):
    ACTIVATION_BY_NAME["torch." + _short] = _short.rstrip("_")
ACTIVATION_BY_METHOD = {
    "relu": "relu", "relu_": "relu", "sigmoid": "sigmoid", "sigmoid_": "sigmoid",
    "tanh": "tanh", "tanh_": "tanh",
}  # fmt: skip


def activation_of(index: TorchIndex, node: cst.CSTNode) -> str | None:
    """`relu` for `nn.ReLU()`, `F.relu(...)`, `torch.relu(...)`; None for anything else."""
    name = index.call_name(node)
    return ACTIVATION_BY_NAME.get(name) if name is not None else None


# -- which activation each layer feeds ----------------------------------------------------

_PASS_THROUGH_METHODS = frozenset(
    {"view", "reshape", "flatten", "contiguous", "permute", "transpose", "squeeze", "unsqueeze"}
)
_DROPOUT_FUNCTIONS = frozenset(
    {tables.F + "dropout", tables.F + "dropout1d", tables.F + "dropout2d"}
)


@dataclass
class Profile:
    """What follows each weight layer of an `nn.Module` class or an `nn.Sequential`."""

    feeds: dict[str, str] = field(default_factory=dict)  # layer attr -> relu / sigmoid / norm / ...
    # (layer type, what follows it), one per weight layer, repeats included
    layers: list[tuple[str, str]] = field(default_factory=list)
    has_norm: bool = False
    has_residual: bool = False
    has_unknown: bool = False  # custom blocks or helpers whose insides we cannot see

    @property
    def is_plain_stack(self) -> bool:
        return not (self.has_norm or self.has_residual or self.has_unknown)

    def count(self, family: frozenset[str], types: frozenset[str] | None = None) -> int:
        """How many weight layers (of `types`, if given) feed an activation in `family`."""
        return sum(1 for kind, f in self.layers if f in family and (types is None or kind in types))

    def only(self, family: frozenset[str]) -> bool:
        """Every activation after a weight layer is in `family` (and there is one)."""
        acts = [f for _, f in self.layers if f not in (OUTPUT, LINEAR)]
        return bool(acts) and all(f in family for f in acts)


def sequential_profile(index: TorchIndex, node: cst.CSTNode) -> Profile | None:
    stack = layers.sequence(index, node)
    if stack is None:
        return None
    profile = Profile()
    _add_stack(index, stack, profile)
    return profile


def _add_stack(
    index: TorchIndex, stack: Sequence[layers.Layer], profile: Profile, repeats: int = 1
) -> None:
    for position, layer in enumerate(stack):
        if layer.kind == layers.NORM:
            profile.has_norm = True
        elif layer.kind in (layers.UNKNOWN, layers.SEQUENTIAL):
            profile.has_unknown = True
        elif layer.kind in (layers.DENSE, layers.RNN):
            follower = _next_in_stack(index, stack, position)
            profile.layers.extend([(index.call_name(layer.node) or UNKNOWN, follower)] * repeats)


def _next_in_stack(index: TorchIndex, stack: Sequence[layers.Layer], position: int) -> str:
    for layer in stack[position + 1 :]:
        if layer.kind in (layers.ACTIVATION, layers.SATURATING):
            return activation_of(index, layer.node) or UNKNOWN
        if layer.kind == layers.NORM:
            return NORM
        if layer.kind in (layers.DENSE, layers.RNN):
            return LINEAR
        if layer.kind != layers.TRANSPARENT:
            return UNKNOWN
    return OUTPUT


_PROFILES: PerFile[dict[str, Profile]] = PerFile("layer_feeds._PROFILES")


def sweep_profile(index: TorchIndex, site: InitSite) -> Profile | None:
    """The model an `isinstance`-guarded sweep runs over, when this file builds it."""
    if site.sweep == "self":
        return class_profile(index, site.cls) if site.cls is not None else None
    built = site.model
    while (
        isinstance(built, cst.Call)
        and isinstance(built.func, cst.Attribute)
        and built.func.attr.value in tables.MODEL_PASS_THROUGH_METHODS
    ):
        built = built.func.value  # `nn.Sequential(...).to(device)`
    if built is None:
        return None
    if index.call_name(built) == tables.SEQUENTIAL:
        return sequential_profile(index, built)
    if isinstance(built, cst.Call) and isinstance(built.func, cst.Name):
        info = index.module_classes.get(built.func.value)
        return class_profile(index, info) if info is not None else None
    return None


def class_profile(index: TorchIndex, info: ModuleClass) -> Profile:
    """What follows each layer of an nn.Module class, read from __init__ and forward()."""
    cache = _PROFILES.setdefault(index, {})
    if info.name not in cache:
        cache[info.name] = _build_profile(index, info)
    return cache[info.name]


def _build_profile(index: TorchIndex, info: ModuleClass) -> Profile:
    profile = Profile()
    if info.forward is None:
        profile.has_unknown = True
        return profile
    follow = _Follow(index, info, profile)
    follow.run(_block(info.forward))
    for attr, seen in follow.seen.items():
        value = info.attrs[attr]
        kind = layers.classify(index, value).kind
        followers = follow.recorded.get(attr, set())
        follower = followers.pop() if len(followers) == 1 else UNKNOWN
        if kind in (layers.DENSE, layers.RNN):
            profile.feeds[attr] = follower
            profile.layers.append((index.call_name(value) or UNKNOWN, follower))
        elif kind == layers.NORM:
            profile.has_norm = True
        elif kind == layers.SEQUENTIAL:
            stack = layers.sequence(index, value) or _starred_list(index, info, value)
            if stack is None:
                profile.has_unknown = True
            else:
                _add_stack(index, stack, profile)
        elif seen == "list":
            sized = layers.module_list_size(index, value)
            if sized is None:
                profile.has_unknown = True
            elif len(sized[1]) == 1 and sized[1][0].kind in (layers.DENSE, layers.RNN):
                profile.feeds[attr] = follower
                kind_name = index.call_name(sized[1][0].node) or UNKNOWN
                profile.layers.extend([(kind_name, follower)] * sized[0])
            else:
                _add_stack(index, sized[1], profile, repeats=sized[0])
        elif kind not in (layers.ACTIVATION, layers.SATURATING, layers.TRANSPARENT):
            profile.has_unknown = True  # custom blocks, embeddings, attention...
    return profile


class _Follow:
    """Walks forward() once: which layer's raw output reaches which activation first."""

    def __init__(self, index: TorchIndex, info: ModuleClass, profile: Profile) -> None:
        self.index = index
        self.info = info
        self.profile = profile
        self.env: dict[str, str] = {}  # variable -> layer attr whose raw output it holds
        self.loop_layers: dict[str, str] = {}  # `layer` in `for layer in self.layers`
        self.recorded: dict[str, set[str]] = {}
        self.seen: dict[str, str] = {}  # layer attrs called in forward: `call` / `list`

    def run(self, statements: Sequence[cst.CSTNode]) -> None:
        for statement in statements:
            if isinstance(statement, cst.SimpleStatementLine):
                for small in statement.body:
                    self.small(small)
            elif isinstance(statement, cst.For):
                attr = self_attribute(statement.iter)
                if (
                    attr is not None
                    and attr in self.info.attrs
                    and isinstance(statement.target, cst.Name)
                ):
                    self.loop_layers[statement.target.value] = attr
                    self.seen[attr] = "list"
                self.run(_block(statement))
                self.run(_block(statement))  # the second pass sees what feeds the next layer
            elif isinstance(statement, (cst.FunctionDef, cst.ClassDef)):
                self.profile.has_unknown = True
            elif isinstance(statement, cst.BaseCompoundStatement):
                for block in child_blocks(statement):
                    self.run(block)

    def small(self, node: cst.CSTNode) -> None:
        if isinstance(node, (cst.Assign, cst.AnnAssign)) and node.value is not None:
            source = self.expr(node.value)
            targets = (
                [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
            )
            for target in targets:
                if isinstance(target, cst.Name):
                    if source is None:
                        self.env.pop(target.value, None)
                    else:
                        self.env[target.value] = source
        elif isinstance(node, cst.AugAssign):
            self.expr(node.value)
            if isinstance(node.operator, (cst.AddAssign, cst.SubtractAssign)):
                self.profile.has_residual = True
            if isinstance(node.target, cst.Name):
                self.env.pop(node.target.value, None)
        elif isinstance(node, (cst.Return, cst.Expr)) and node.value is not None:
            source = self.expr(node.value)
            if source is not None:
                self.record(source, OUTPUT)

    def record(self, source: str | None, follower: str) -> None:
        if source is not None:
            self.recorded.setdefault(source, set()).add(follower)

    def expr(self, node: cst.BaseExpression) -> str | None:
        """The layer attr whose raw output `node` is, recording what consumes other outputs."""
        if isinstance(node, cst.Name):
            return self.env.get(node.value)
        if isinstance(node, cst.Call):
            return self.call(node)
        if isinstance(node, cst.BinaryOperation):
            self.expr(node.left), self.expr(node.right)
            if isinstance(node.operator, (cst.Add, cst.Subtract)) and not (
                number(self.index, node.left) is not None
                or number(self.index, node.right) is not None
            ):
                self.profile.has_residual = True
            return None
        if isinstance(node, (cst.Tuple, cst.List)):
            for element in node.elements:
                self.record(self.expr(element.value), OUTPUT)
            return None
        if isinstance(node, cst.Subscript):
            self.record(self.expr(node.value), UNKNOWN)
        return None

    def call(self, node: cst.Call) -> str | None:
        sources = [self.expr(arg.value) for arg in node.args]
        first = sources[0] if sources else None
        for other in sources[1:]:
            self.record(other, UNKNOWN)
        name = self.index.call_name(node)
        if name is not None:
            activation = ACTIVATION_BY_NAME.get(name)
            if activation is not None:
                self.record(first, activation)
            elif name in tables.NORM_FUNCTIONS:
                self.profile.has_norm = True
                self.record(first, NORM)
            elif name in _DROPOUT_FUNCTIONS:
                return first
            else:
                self.record(first, UNKNOWN)
            return None
        func = node.func
        attr = self_attribute(func)
        if attr is None and isinstance(func, cst.Name) and func.value in self.loop_layers:
            attr = self.loop_layers[func.value]
            return self.layer(attr, first, looped=True)
        if attr is not None:
            return self.layer(attr, first)
        if isinstance(func, cst.Attribute):
            receiver = self.expr(func.value)
            method = func.attr.value
            if method in ACTIVATION_BY_METHOD:
                self.record(receiver, ACTIVATION_BY_METHOD[method])
            elif method in _PASS_THROUGH_METHODS:
                return receiver
            else:
                self.record(receiver, UNKNOWN)
        self.record(first, UNKNOWN)
        return None

    def layer(self, attr: str, first: str | None, looped: bool = False) -> str | None:
        value = self.info.attrs.get(attr)
        if value is None:
            self.profile.has_unknown = True  # a helper method or a layer set elsewhere
            self.record(first, UNKNOWN)
            return None
        self.seen.setdefault(attr, "call")
        if looped:
            self.record(first, LINEAR)
            return attr
        layer = layers.classify(self.index, value)
        if layer.kind in (layers.ACTIVATION, layers.SATURATING):
            self.record(first, activation_of(self.index, value) or UNKNOWN)
        elif layer.kind == layers.NORM:
            self.record(first, NORM)
        elif layer.kind == layers.TRANSPARENT:
            return first
        elif layer.kind in (layers.DENSE, layers.RNN):
            self.record(first, LINEAR)
            return attr
        elif layer.kind == layers.SEQUENTIAL:
            stack = layers.sequence(self.index, value) or []
            self.record(
                first, _next_in_stack(self.index, [layers.Layer(layers.DENSE, value), *stack], 0)
            )
        else:
            self.record(first, UNKNOWN)
        return None


def _block(statement: cst.BaseCompoundStatement) -> Sequence[cst.CSTNode]:
    return next(iter(child_blocks(statement)), [])


def _starred_list(
    index: TorchIndex, info: ModuleClass, value: cst.BaseExpression
) -> list[layers.Layer] | None:
    """`nn.Sequential(*linear_layers)` with the list grown in __init__ by a loop over the
    configured sizes: one pass of it (enough to know which activation follows each layer)."""
    init = info.methods.get("__init__")
    if init is None or not isinstance(value, cst.Call) or len(value.args) != 1:
        return None
    arg = value.args[0]
    if arg.star != "*" or not isinstance(arg.value, cst.Name):
        return None
    return layers.grown_list(index, init, arg.value.value)


def follower_of_local(index: TorchIndex, info: ModuleClass, name: str) -> str | None:
    """What follows the layer `name` (a local variable of __init__, `linear = nn.Linear(..)`)
    in the nn.Sequential attribute it is placed in: relu / sigmoid / norm / output ...;
    None when it sits in no such container, or in several."""
    found: set[str] = set()
    for value in info.attrs.values():
        stack = layers.sequence(index, value) if isinstance(value, cst.Call) else None
        for position, layer in enumerate(stack or []):
            if isinstance(layer.node, cst.Name) and layer.node.value == name:
                found.add(_next_in_stack(index, stack or [], position))
    return found.pop() if len(found) == 1 else None
