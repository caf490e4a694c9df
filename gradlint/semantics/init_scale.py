"""How large an initialisation makes a layer's weights, and which activation the layer feeds.

Three pieces shared by the init-scale rules: literal arithmetic (`1 / math.sqrt(256)`), the
distribution an init call draws from (`normal_(w, 0, 1)`, `uniform_(w)`, `kaiming_*`), and
the activation after each layer (in `nn.Sequential` literals and in `forward()`). Every
walk over the file is done once per file and shared through a cache keyed on the index.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import libcst as cst

from gradlint.semantics import init, layers, tables
from gradlint.semantics.index import ModuleClass, PerFile, TorchIndex, self_attribute
from gradlint.semantics.names import child_blocks, dotted_name
from gradlint.semantics.nodes import walk_visitor

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


# -- literal numbers ------------------------------------------------------------------------

_MATH = {"math.sqrt": math.sqrt, "numpy.sqrt": math.sqrt, "math.exp": math.exp}
_CONSTANTS = {"math.pi": math.pi, "math.e": math.e}


def number(index: TorchIndex, node: cst.BaseExpression) -> float | None:
    """The value of a literal expression (`-1`, `1 / math.sqrt(256)`, `2 ** -0.5`), else None."""
    if isinstance(node, (cst.Integer, cst.Float)):
        return float(node.evaluated_value)
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, (cst.Minus, cst.Plus)):
        inner = number(index, node.expression)
        if inner is None:
            return None
        return -inner if isinstance(node.operator, cst.Minus) else inner
    if isinstance(node, cst.BinaryOperation):
        left, right = number(index, node.left), number(index, node.right)
        if left is None or right is None:
            return None
        try:
            if isinstance(node.operator, cst.Add):
                return left + right
            if isinstance(node.operator, cst.Subtract):
                return left - right
            if isinstance(node.operator, cst.Multiply):
                return left * right
            if isinstance(node.operator, cst.Divide):
                return left / right
            if isinstance(node.operator, cst.Power):
                return float(left**right)
        except (ZeroDivisionError, OverflowError, ValueError):
            return None
        return None
    name = index.qualified(node) if isinstance(node, (cst.Name, cst.Attribute)) else None
    if name in _CONSTANTS:
        return _CONSTANTS[name]
    if isinstance(node, cst.Call) and len(node.args) == 1:
        function = _MATH.get(index.call_name(node) or "")
        value = number(index, node.args[0].value)
        if function is not None and value is not None and value >= 0:
            return function(value)
    return None


def argument(call: cst.Call, position: int, keyword: str) -> cst.BaseExpression | None:
    """The argument passed at `position` (0-based) or as `keyword=`; None when absent."""
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == keyword:
            return arg.value
    positional = [arg for arg in call.args if arg.keyword is None]
    if any(arg.star for arg in positional[: position + 1]):
        return None
    return positional[position].value if position < len(positional) else None


def has_star(call: cst.Call) -> bool:
    return any(arg.star for arg in call.args)


# -- what an init call draws --------------------------------------------------------------


@dataclass(frozen=True)
class Draw:
    """The distribution a random/constant init draws every element from."""

    kind: str  # normal, uniform, constant
    low: float  # uniform bounds; for a normal, mean and std are kept in `mean` / `std`
    high: float
    mean: float = 0.0
    std: float = 0.0

    @property
    def rms(self) -> float:
        """sqrt(E[w^2]): fan_in * rms^2 is the factor by which a layer scales variance."""
        if self.kind == "uniform":
            return math.sqrt((self.low**2 + self.low * self.high + self.high**2) / 3)
        return math.sqrt(self.mean**2 + self.std**2)

    @property
    def text(self) -> str:
        if self.kind == "uniform":
            return f"U({self.low:g}, {self.high:g})"
        if self.kind == "normal":
            return f"N({self.mean:g}, {self.std:g})"
        return f"the constant {self.mean:g}"


# (position, keyword, default) of each parameter; positions count from the tensor argument
# for `nn.init` functions and from the first argument for tensor methods.
_NORMAL = (("mean", 1, 0.0), ("std", 2, 1.0))
_UNIFORM = (("a", 1, 0.0), ("b", 2, 1.0))
_METHOD_NORMAL = (("mean", 0, 0.0), ("std", 1, 1.0))
_METHOD_UNIFORM = (("from", 0, 0.0), ("to", 1, 1.0))


def draw(index: TorchIndex, call: init.InitCall) -> Draw | None:
    """What `nn.init.normal_/uniform_/trunc_normal_/constant_` or `.normal_()/.uniform_()/
    .fill_()` draws; None for other inits and for arguments that are not literal."""
    is_method = index.call_name(call.call) is None
    function = call.function
    if function in ("normal_", "trunc_normal_", "normal"):
        spec = _METHOD_NORMAL if is_method else _NORMAL
        values = _literal_args(index, call.call, spec)
        return None if values is None else Draw("normal", 0.0, 0.0, values[0], abs(values[1]))
    if function in ("uniform_", "uniform"):
        spec = _METHOD_UNIFORM if is_method else _UNIFORM
        values = _literal_args(index, call.call, spec)
        return None if values is None else Draw("uniform", min(values), max(values))
    if function in ("constant_", "fill_", "constant"):
        values = _literal_args(index, call.call, (("val", 0 if is_method else 1, math.nan),))
        if values is None or math.isnan(values[0]):
            return None
        return Draw("constant", values[0], values[0], values[0])
    return None


def _literal_args(
    index: TorchIndex, call: cst.Call, spec: Sequence[tuple[str, int, float]]
) -> list[float] | None:
    if has_star(call):
        return None
    values: list[float] = []
    for keyword, position, default in spec:
        node = argument(call, position, keyword)
        value = default if node is None else number(index, node)
        if value is None:
            return None
        values.append(value)
    return values


def gain(index: TorchIndex, call: init.InitCall) -> tuple[str, float, str] | None:
    """(`xavier` | `kaiming`, gain, nonlinearity it is meant for) of a Xavier/Kaiming call.

    The gain multiplies the weights' std; `gain ** 2` is how much variance a layer with
    fan_in == fan_out keeps (ReLU halves it, so ReLU layers need gain sqrt(2)).
    None when the call is something else or the gain cannot be read.
    """
    if index.call_name(call.call) is None or has_star(call.call):
        return None  # timm/HF re-exports and tensor methods: not torch's signature
    if call.function.startswith("xavier_"):
        node = argument(call.call, 1, "gain")
        if node is None:
            return "xavier", 1.0, "linear"
        meant = _calculate_gain(index, node)
        if meant is not None:
            return "xavier", meant[1], meant[0]
        value = number(index, node)
        return None if value is None else ("xavier", value, "gain")
    if call.function.startswith("kaiming_"):
        a_node = argument(call.call, 1, "a")
        nonlinearity = argument(call.call, 3, "nonlinearity")
        name = "leaky_relu" if nonlinearity is None else _string(nonlinearity)
        a = 0.0 if a_node is None else number(index, a_node)
        if name is None or a is None:
            return None
        return "kaiming", _gain_for(name, a), name
    return None


def _gain_for(nonlinearity: str, a: float) -> float:
    """`nn.init.calculate_gain(nonlinearity, a)`: sqrt(2) for relu, 5/3 for tanh, 1 for linear."""
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        return math.sqrt(2.0 / (1 + a * a))
    return {"tanh": 5.0 / 3, "selu": 0.75}.get(nonlinearity, 1.0)


def _calculate_gain(index: TorchIndex, node: cst.BaseExpression) -> tuple[str, float] | None:
    if not (isinstance(node, cst.Call) and index.call_name(node) == tables.INIT + "calculate_gain"):
        return None
    name = _string(node.args[0].value) if node.args else None
    if name is None:
        return None
    param = argument(node, 1, "param")
    a = 0.01 if param is None else number(index, param)
    return name, _gain_for(name, a if a is not None else 0.01)


def _string(node: cst.BaseExpression) -> str | None:
    if isinstance(node, cst.SimpleString):
        value = node.evaluated_value
        return value if isinstance(value, str) else None
    return None


# -- which parameter of which layer a call sets -------------------------------------------


def parameter_of(node: cst.BaseExpression) -> tuple[cst.BaseExpression, str] | None:
    """(`layer`, `weight` | `bias` | `bias_hh_l0` ...) for `layer.<param>` (`.data` allowed)."""
    found = init.weight_of(node)
    if found is not None:
        return found
    node = init.strip_data(node)
    if isinstance(node, cst.Attribute) and node.attr.value.startswith("bias"):
        return node.value, node.attr.value
    return None


@dataclass(frozen=True)
class InitSite:
    """An init call on `<layer>.<param>`, with what is known about the layer."""

    call: init.InitCall | None  # None for `w.data = -w.data.abs()`-style sign flips
    node: cst.BaseExpression  # the expression to report on
    param: str  # weight, bias, weight_hh_l0, ...
    cls: ModuleClass | None  # the nn.Module class whose code runs the call
    layer_attr: str | None  # `fc` for `self.fc.weight`
    constructor: cst.BaseExpression | None  # the layer's constructor, when visible
    types: frozenset[str]  # isinstance() types guarding the layer variable (a sweep)
    sweep: str | None  # `self` for a `self.modules()` loop / `self.apply(f)`; the applied-to
    # variable for `model.apply(f)`; `?` when the sweep's model is unknown; None otherwise
    model: cst.BaseExpression | None = None  # what built the swept variable (`nn.Sequential(..)`)
    is_self_tensor: bool = False  # `self.<param>` itself: a custom layer's own nn.Parameter


def target_text(site: InitSite) -> str:
    """`m.weight` for a finding's message (`.data` dropped)."""
    target = init.strip_data(site.call.target) if site.call is not None else site.node
    text = cst.Module([]).code_for_node(target).strip()
    return text if site.call is not None else text.split(".data")[0].split(" = ")[0]


@dataclass
class InitFacts:
    sites: list[InitSite] = field(default_factory=list)
    # (class, attr) of every `self.<attr>` tensor set by an init call (re-init of nn.Parameter)
    drawn: set[tuple[str, str]] = field(default_factory=set)


_FACTS: PerFile[InitFacts] = PerFile("init_scale._FACTS")


def init_facts(index: TorchIndex) -> InitFacts:
    """Every init call on a layer parameter in the file, computed once per file."""
    facts = _FACTS.get(index)
    if facts is None:
        facts = _FACTS[index] = _Walker(index).run()
    return facts


@dataclass(frozen=True)
class _Ctx:
    cls: ModuleClass | None = None
    function: str | None = None
    params: frozenset[str] = frozenset()
    loops: dict[str, str] = field(default_factory=dict)  # loop variable -> `self` / model
    guards: dict[str, frozenset[str]] = field(default_factory=dict)
    local: dict[str, cst.BaseExpression] = field(default_factory=dict)


class _Walker:
    def __init__(self, index: TorchIndex) -> None:
        self.index = index
        self.facts = InitFacts()
        self.pending: list[tuple[InitSite, str]] = []  # callback sites waiting for `.apply(f)`
        # callback name -> (variable it is applied to, what built that variable)
        self.applied: dict[str, list[tuple[str, cst.BaseExpression | None]]] = {}
        self.module_level: dict[str, cst.BaseExpression] = {}  # module-level assignments

    def lookup(self, ctx: _Ctx, name: str) -> cst.BaseExpression | None:
        return ctx.local.get(name, self.module_level.get(name))

    def run(self) -> InitFacts:
        self.walk(self.index.module.body, _Ctx(local=self.module_level))
        for site, function in self.pending:
            targets = self.applied.get(function, [])
            if len(targets) == 1:
                self.facts.sites.append(replace(site, sweep=targets[0][0], model=targets[0][1]))
            else:
                self.facts.sites.append(replace(site, sweep=UNKNOWN))
        return self.facts

    def walk(self, statements: Sequence[cst.CSTNode], ctx: _Ctx) -> None:
        for statement in statements:
            if isinstance(statement, cst.SimpleStatementLine):
                for small in statement.body:
                    self.small(small, ctx)
            elif isinstance(statement, cst.ClassDef):
                info = self.index.module_classes.get(statement.name.value)
                owner = info if info is not None and info.node is statement else None
                self.walk(_block(statement), _Ctx(cls=owner))
            elif isinstance(statement, cst.FunctionDef):
                params = frozenset(p.name.value for p in statement.params.params) - {"self"}
                inner = replace(
                    ctx, function=statement.name.value, params=params, local={}, guards={}
                )
                self.walk(_block(statement), inner)
            elif isinstance(statement, cst.For):
                self.walk(
                    _block(statement), replace(ctx, loops={**ctx.loops, **_module_loop(statement)})
                )
            elif isinstance(statement, cst.If):
                guards = {
                    **ctx.guards,
                    **init.isinstance_guard(self.index, statement.test),
                    **_type_guard(self.index, statement.test),
                }
                self.walk(_block(statement), replace(ctx, guards=guards))
                for block in list(child_blocks(statement))[1:]:
                    self.walk(block, ctx)
            elif isinstance(statement, cst.BaseCompoundStatement):
                for block in child_blocks(statement):
                    self.walk(block, ctx)

    def small(self, node: cst.CSTNode, ctx: _Ctx) -> None:
        if isinstance(node, cst.Assign) and len(node.targets) == 1:
            target = node.targets[0].target
            if isinstance(target, cst.Name):
                ctx.local[target.value] = node.value
            parameter = parameter_of(target)
            if parameter is not None and is_negated_magnitude(node.value):
                self.add(None, node.value, parameter, ctx)
            if isinstance(node.value, cst.Call):
                self.call(node.value, ctx)  # `model = Net().apply(init)`
        if isinstance(node, cst.Expr) and isinstance(node.value, cst.Call):
            chain = _negated_chain(node.value)
            parameter = parameter_of(chain) if chain is not None else None
            if parameter is not None:
                self.add(None, node.value, parameter, ctx)
            self.call(node.value, ctx)

    def call(self, node: cst.Call, ctx: _Ctx) -> None:
        func = node.func
        if isinstance(func, cst.Attribute) and func.attr.value == "apply" and len(node.args) == 1:
            receiver = dotted_name(func.value)
            built = self.lookup(ctx, receiver) if receiver is not None else None
            if isinstance(func.value, cst.Call):
                receiver, built = "<call>", func.value  # `Net().to(device).apply(init)`
            callback = node.args[0].value
            name = self_attribute(callback) or dotted_name(callback)
            if receiver is not None and name is not None:
                self.applied.setdefault(name, []).append((receiver, built))
        found = init.init_call(self.index, node)
        if found is None:
            return  # not an initialisation
        direct = self_attribute(init.strip_data(found.target))
        if direct is not None and ctx.cls is not None:
            self.facts.drawn.add((ctx.cls.name, direct))
        parameter = parameter_of(found.target)
        if parameter is None or (direct is not None and ctx.cls is not None):
            if direct is None or ctx.cls is None:
                return  # not a layer's weight or bias, nor a tensor of this module
            site = InitSite(
                found, node, direct, ctx.cls, None, ctx.cls.attrs.get(direct), frozenset(), None
            )
            self.facts.sites.append(replace(site, is_self_tensor=True))
            return
        self.add(found, node, parameter, ctx)

    def add(
        self,
        found: init.InitCall | None,
        node: cst.BaseExpression,
        parameter: tuple[cst.BaseExpression, str],
        ctx: _Ctx,
    ) -> None:
        owner, param = parameter
        layer_attr = self_attribute(owner)
        variable = dotted_name(owner)
        types = ctx.guards.get(variable, frozenset()) if variable is not None else frozenset()
        constructor: cst.BaseExpression | None = None
        if layer_attr is not None and ctx.cls is not None:
            constructor = ctx.cls.attrs.get(layer_attr)
        elif isinstance(owner, cst.Name):
            constructor = self.lookup(ctx, owner.value)
        site = InitSite(found, node, param, ctx.cls, layer_attr, constructor, types, None)
        if variable is not None and variable in ctx.loops:
            model = ctx.loops[variable]
            self.facts.sites.append(replace(site, sweep=model, model=self.lookup(ctx, model)))
        elif variable is not None and variable in ctx.params and types and ctx.function is not None:
            self.pending.append((site, ctx.function))
        else:
            self.facts.sites.append(site)


def _type_guard(index: TorchIndex, test: cst.BaseExpression) -> dict[str, frozenset[str]]:
    """{`m`: {torch.nn.Linear}} for the tutorial idiom `if type(m) == nn.Linear:` / `in (..)`."""
    if not (isinstance(test, cst.Comparison) and len(test.comparisons) == 1):
        return {}
    left, (target,) = test.left, test.comparisons
    if not (
        isinstance(left, cst.Call)
        and isinstance(left.func, cst.Name)
        and left.func.value == "type"
        and len(left.args) == 1
        and isinstance(target.operator, (cst.Equal, cst.Is, cst.In))
    ):
        return {}
    subject = dotted_name(left.args[0].value)
    right = target.comparator
    elements = (
        [el.value for el in right.elements]
        if isinstance(right, (cst.Tuple, cst.List, cst.Set))
        else [right]
    )
    if subject is None:
        return {}
    return {subject: frozenset(index.qualified(el) or "?" for el in elements)}


def is_negated_magnitude(node: cst.BaseExpression) -> bool:
    """`-w.abs()`, `w.abs().neg()`, `-torch.abs(w)`: every element made negative."""
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus):
        return _is_abs(node.expression)
    return _negated_chain(node) is not None


def _negated_chain(node: cst.BaseExpression) -> cst.BaseExpression | None:
    """`w` for `w.abs().neg()` / `w.abs_().neg_()` / `w.abs().mul(-1)`, else None."""
    if not (isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute)):
        return None
    method = node.func.attr.value
    negates = method in ("neg", "neg_", "negative", "negative_") or (
        method in ("mul", "mul_")
        and len(node.args) == 1
        and isinstance(node.args[0].value, cst.UnaryOperation)
    )
    inner = node.func.value
    if negates and _is_abs(inner):
        assert isinstance(inner, cst.Call) and isinstance(inner.func, cst.Attribute)
        return inner.func.value
    return None


def _is_abs(node: cst.BaseExpression) -> bool:
    return (
        isinstance(node, cst.Call)
        and isinstance(node.func, cst.Attribute)
        and node.func.attr.value in ("abs", "abs_")
    )


def _block(statement: cst.BaseCompoundStatement) -> Sequence[cst.CSTNode]:
    return next(iter(child_blocks(statement)), [])


def _module_loop(loop: cst.For) -> dict[str, str]:
    """{`m`: `self`} for `for m in self.modules()`, {`m`: `model`} for `model.modules()`."""
    it = loop.iter
    if not (isinstance(it, cst.Call) and isinstance(it.func, cst.Attribute)):
        return {}
    if it.func.attr.value not in ("modules", "children", "named_modules", "named_children"):
        return {}
    owner = dotted_name(it.func.value) or "?"
    target: cst.BaseExpression = loop.target
    if isinstance(target, cst.Tuple) and target.elements:
        target = target.elements[-1].value
    return {target.value: owner} if isinstance(target, cst.Name) else {}


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


_PROFILES: PerFile[dict[str, Profile]] = PerFile("init_scale._PROFILES")


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
            stack = layers.sequence(index, value)
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


# -- nn.Parameter tensors used as weight matrices -----------------------------------------

_MATRIX_FUNCTIONS = frozenset(
    {
        "linear",
        "conv1d",
        "conv2d",
        "conv3d",
        "conv_transpose1d",
        "conv_transpose2d",
        "matmul",
        "mm",
        "bmm",
        "bilinear",
        "einsum",
    }
)
_TRANSPOSES = frozenset({"t", "transpose", "permute", "T", "mT", "view", "reshape"})


def matrix_operands(info: ModuleClass) -> set[str]:
    """`self.<attr>` used as a weight matrix (F.linear/conv, matmul, `@`) outside __init__."""
    use = _MatrixUse()
    for name, method in info.methods.items():
        if name != "__init__":
            walk_visitor(method, use)
    return use.attrs


class _MatrixUse(cst.CSTVisitor):
    def __init__(self) -> None:
        self.attrs: set[str] = set()

    def add(self, node: cst.BaseExpression) -> None:
        while True:  # `self.w.t()`, `self.w.T`, `self.w.view(...)` are the same matrix
            if (
                isinstance(node, cst.Call)
                and isinstance(node.func, cst.Attribute)
                and node.func.attr.value in _TRANSPOSES
            ):
                node = node.func.value
            elif isinstance(node, cst.Attribute) and node.attr.value in _TRANSPOSES:
                node = node.value
            else:
                break
        attr = self_attribute(node)
        if attr is not None:
            self.attrs.add(attr)

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        name = func.attr.value if isinstance(func, cst.Attribute) else getattr(func, "value", None)
        if name in _MATRIX_FUNCTIONS:
            for arg in node.args:
                self.add(arg.value)

    def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
        if isinstance(node.operator, cst.MatrixMultiply):
            self.add(node.left)
            self.add(node.right)


_RANDOM_FACTORIES = {"torch.randn": "N(0, 1)", "torch.rand": "U(0, 1)"}


def unscaled_random_tensor(index: TorchIndex, node: cst.BaseExpression) -> str | None:
    """`N(0, 1)` for `torch.randn(a, b)` (2-D or more, no scale factor); None otherwise."""
    factor = 1.0
    if isinstance(node, cst.BinaryOperation) and isinstance(
        node.operator, (cst.Multiply, cst.Divide)
    ):
        value = number(index, node.right)
        if value is None or value == 0:
            return None  # `/ math.sqrt(fan_in)`, `* scale`: scaled by something we cannot read
        factor = value if isinstance(node.operator, cst.Multiply) else 1 / value
        node = node.left
    if not isinstance(node, cst.Call):
        return None
    distribution = _RANDOM_FACTORIES.get(index.call_name(node) or "")
    if distribution is None or abs(factor) < 0.5 or has_star(node):
        return None
    positional = [arg.value for arg in node.args if arg.keyword is None]
    if positional and isinstance(positional[0], (cst.Tuple, cst.List)):
        rank = len(positional[0].elements)
    else:
        rank = len(positional)
    if rank < 2:
        return None  # a vector: scales, offsets, tokens
    return distribution if factor == 1.0 else f"{factor:g}·{distribution}"


def fan_in(index: TorchIndex, constructor: cst.BaseExpression | None) -> int | None:
    """in_features (Linear) or in_channels·k·k (Conv) when written as literals."""
    if not isinstance(constructor, cst.Call):
        return None
    name = index.call_name(constructor) or ""
    first = argument(constructor, 0, "in_features" if name.endswith("Linear") else "in_channels")
    size = number(index, first) if first is not None else None
    if size is None:
        return None
    if "Conv" in name:
        kernel = argument(constructor, 2, "kernel_size")
        k = number(index, kernel) if kernel is not None else None
        if k is None:
            return None
        dims = 3 if name.endswith("3d") else 1 if name.endswith("1d") else 2
        return int(size * k**dims)
    return int(size) if name.endswith("Linear") else None


def has_manual_scale(index: TorchIndex, info: ModuleClass) -> bool:
    """An attribute like `self.scale = dim ** -0.5` or `1 / math.sqrt(d)`: products get rescaled."""
    finder = _ScaleFinder(index)
    for value in info.attrs.values():
        walk_visitor(value, finder)
    return finder.found


class _ScaleFinder(cst.CSTVisitor):
    def __init__(self, index: TorchIndex) -> None:
        self.index = index
        self.found = False

    def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
        if isinstance(node.operator, cst.Power) and number(self.index, node.right) in (-0.5, 0.5):
            self.found = True

    def visit_Call(self, node: cst.Call) -> None:
        if (self.index.call_name(node) or "").endswith(".sqrt"):
            self.found = True
