"""Parameters and every write to them: each init call on a layer's weight or bias, on a
module's own `nn.Parameter`, constant tensors assigned to a layer's weight
(`fc.weight = nn.Parameter(torch.zeros(...))`) and the sign flips (`w.data = -w.data.abs()`),
with what is known about the layer (its constructor, the type guard of a sweep, the model it
sweeps, whether it feeds another weight layer), seen through variables
(`layer = model.features[0]`). One walk per file, cached on the index."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import libcst as cst

from gradlint.semantics import factories, init, layers, tables
from gradlint.semantics.index import ModuleClass, PerFile, TorchIndex, self_attribute
from gradlint.semantics.init_draws import constant_tensor, keep_values
from gradlint.semantics.layer_guards import is_layer_test, layer_guards
from gradlint.semantics.names import child_blocks, dotted_name
from gradlint.semantics.nodes import findall

UNKNOWN = "?"

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
    types: frozenset[str]  # isinstance()/type()/class-name types guarding the layer variable
    sweep: str | None  # `self` for a `self.modules()` loop / `self.apply(f)`; the applied-to
    # variable for `model.apply(f)`; `?` when the sweep's model is unknown; None otherwise
    model: cst.BaseExpression | None = None  # what built the swept variable (`nn.Sequential(..)`)
    is_self_tensor: bool = False  # `self.<param>` itself: a custom layer's own nn.Parameter
    narrowed: bool = False  # an `if` that is not a type test picks some layers (`"head" in n`)
    hidden: bool | None = None  # the layer, an element of an nn.Sequential, feeds a later
    # weight layer of it (True) or ends it (False); None when not known that way
    every_parameter: bool = False  # a loop over `model.parameters()` writes each of them,
    # weights included (an `if` on the name or shape that keeps weights only still counts)


def local_layer(site: InitSite) -> str | None:
    """`linear` when the site writes `linear.weight` for a local variable `linear`."""
    target = init.strip_data(site.call.target) if site.call is not None else None
    if isinstance(target, cst.Attribute) and isinstance(target.value, cst.Name):
        return target.value.value if target.value.value != "self" else None
    return None


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
    # attribute names of other objects' tensors set by an init call (`module.text_projection`)
    drawn_names: set[str] = field(default_factory=set)


_FACTS: PerFile[InitFacts] = PerFile("init_sites._FACTS")


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
    narrowed: bool = False
    # loop variable -> model, for `for p in model.parameters()` (`p`) and
    # `for p in model.named_parameters()` (`p[1]`, spelled `p[1]`)
    parameters: dict[str, str] = field(default_factory=dict)
    selects_weights: bool = False  # inside `if "weight" in name:` of such a loop


class _Walker:
    def __init__(self, index: TorchIndex) -> None:
        self.index = index
        self.facts = InitFacts()
        self.pending: list[tuple[InitSite, str]] = []  # callback sites waiting for `.apply(f)`
        # callback name -> (variable it is applied to, what built that variable)
        self.applied: dict[str, list[tuple[str, cst.BaseExpression | None]]] = {}
        self.module_level: dict[str, cst.BaseExpression] = {}  # module-level assignments
        # `init_fn(m.weight)` with `init_fn` a parameter: what callers pass decides the init
        self.callbacks: list[tuple[str, str, cst.BaseExpression, _Ctx]] = []

    def lookup(self, ctx: _Ctx, name: str) -> cst.BaseExpression | None:
        return ctx.local.get(name, self.module_level.get(name))

    def run(self) -> InitFacts:
        self.walk(self.index.module.body, _Ctx(local=self.module_level))
        for function, param, target, ctx in self.callbacks:
            if not _trains(self.index, function):
                continue  # a demo of activation statistics: the init is shown, not used
            for passed in _lambdas_passed(self.index, function, param):
                found = init.init_call(self.index, passed.body)
                if found is None or not _is_name(found.target, passed.params.params[0].name):
                    continue  # not `lambda w: nn.init.zeros_(w)`
                parameter = parameter_of(target)
                assert parameter is not None
                self.add(replace(found, target=target), passed, parameter, ctx)
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
                loops = {
                    **ctx.loops,
                    **_module_loop(statement),
                    **self.sequence_loop(ctx, statement),
                }
                parameters = {**ctx.parameters, **_parameter_loop(statement)}
                self.walk(_block(statement), replace(ctx, loops=loops, parameters=parameters))
            elif isinstance(statement, cst.If):
                test = statement.test
                guards = {**ctx.guards, **layer_guards(self.index, test, ctx.local)}
                narrowed = ctx.narrowed or not is_layer_test(self.index, test, ctx.local)
                weights = ctx.selects_weights or (bool(ctx.parameters) and _names_weights(test))
                inner = replace(ctx, guards=guards, narrowed=narrowed, selects_weights=weights)
                self.walk(_block(statement), inner)
                # in a parameter loop an `else` picks some parameters as much as the `if`
                other = replace(ctx, narrowed=True) if ctx.parameters else ctx
                for block in list(child_blocks(statement))[1:]:
                    self.walk(block, other)
            elif isinstance(statement, cst.BaseCompoundStatement):
                for block in child_blocks(statement):
                    self.walk(block, ctx)

    def small(self, node: cst.CSTNode, ctx: _Ctx) -> None:
        if isinstance(node, cst.Assign) and len(node.targets) == 1:
            target = node.targets[0].target
            if isinstance(target, cst.Name):
                ctx.local[target.value] = node.value
            ctx.local.update(factories.unpacked(self.index, target, node.value))
            self.every_parameter(ctx, target, node.value)
            parameter = parameter_of(target)
            if parameter is not None and is_negated_magnitude(node.value):
                self.add(None, node.value, parameter, ctx)
            value = keep_values(node.value)
            if (
                parameter is not None
                and not _is_self(parameter[0])
                and isinstance(value, cst.Call)
                and constant_tensor(self.index, value) is not None
            ):  # `fc.weight = nn.Parameter(torch.zeros(...))`: a write of one value everywhere
                self.add(init.InitCall(value, target, "=", True), value, parameter, ctx)
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
        if isinstance(func, cst.Name) and func.value in ctx.params and ctx.function is not None:
            if len(node.args) == 1 and parameter_of(node.args[0].value) is not None:
                self.callbacks.append((ctx.function, func.value, node.args[0].value, ctx))
                return  # `init_fn(m.weight)`: the callers' lambdas say which init
        found = init.init_call(self.index, node)
        if found is None:
            return  # not an initialisation
        if self.every_parameter(ctx, found.target, None, found):
            return
        direct = self_attribute(init.strip_data(found.target))
        stripped = init.strip_data(found.target)
        if direct is None and isinstance(stripped, cst.Attribute):
            self.facts.drawn_names.add(stripped.attr.value)
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
        cls = ctx.cls
        constructor: cst.BaseExpression | None = None
        hidden: bool | None = None
        if layer_attr is not None and ctx.cls is not None:
            constructor = ctx.cls.attrs.get(layer_attr)
        elif isinstance(owner, cst.Name):
            constructor = self.lookup(ctx, owner.value)
        if not types and not (variable in ctx.loops or variable in ctx.params):
            resolved = self.layer_of(ctx, constructor if isinstance(owner, cst.Name) else owner)
            if resolved is not None:  # `model.fc1`, `model.features[0]`, `layer = model[2]`
                cls, layer_attr, constructor, hidden = resolved
        site = InitSite(found, node, param, cls, layer_attr, constructor, types, None)
        site = replace(site, narrowed=ctx.narrowed, hidden=hidden)
        if variable is not None and variable in ctx.loops:
            model = ctx.loops[variable]
            self.facts.sites.append(replace(site, sweep=model, model=self.lookup(ctx, model)))
        elif variable is not None and variable in ctx.params and types and ctx.function is not None:
            self.pending.append((site, ctx.function))
        else:
            self.facts.sites.append(site)

    def every_parameter(
        self,
        ctx: _Ctx,
        target: cst.BaseExpression,
        value: cst.BaseExpression | None,
        found: init.InitCall | None = None,
    ) -> bool:
        """Record a write to the variable of a `model.parameters()` loop: an init call on it
        (`found`), or a constant tensor assigned to it (`p.data = torch.zeros_like(p)`)."""
        if not ctx.parameters or _parameter_variable(target, ctx.parameters) is None:
            return False
        if ctx.narrowed and not ctx.selects_weights:
            return True  # `if "bias" in name:` or `if p.dim() == 1:`: some parameters only
        if found is not None and not found.is_constant:
            return True  # a random draw for every parameter: biases included, but not wrong
        if found is None:
            if value is None or constant_tensor(self.index, value) is None:
                return True  # not one value everywhere
            calls = [cst.ensure_type(c, cst.Call) for c in findall(value, cst.Call)]
            kept = keep_values(value)
            made = kept if isinstance(kept, cst.Call) else calls[0]  # `torch.zeros_like(w) + 1`
            found, node = init.InitCall(made, target, "=", True), value
        else:
            node = found.call
        site = InitSite(found, node, "weight", None, None, None, frozenset(), None)
        self.facts.sites.append(replace(site, every_parameter=True))
        return True

    def layer_of(
        self, ctx: _Ctx, node: cst.BaseExpression | None
    ) -> tuple[ModuleClass | None, str | None, cst.BaseExpression, bool | None] | None:
        """(owning class, attr, constructor, feeds a later weight layer) of a layer reached
        through a model variable: `model.fc1`, `model.features[0]`, `net[2]`, `self.body[0]`."""
        if isinstance(node, cst.Attribute) and isinstance(node.value, cst.Name):
            info = self.model_class(ctx, node.value)
            if info is not None and node.attr.value in info.attrs:
                return info, node.attr.value, info.attrs[node.attr.value], None
            return None
        if not (isinstance(node, cst.Subscript) and len(node.slice) == 1):
            return None
        position = node.slice[0].slice
        if not (isinstance(position, cst.Index) and isinstance(position.value, cst.Integer)):
            return None  # `layers[i]`: which one is unknowable
        container = node.value
        built: cst.BaseExpression | None = None
        attr = self_attribute(container)
        if attr is not None and ctx.cls is not None:
            built = ctx.cls.attrs.get(attr)
        elif isinstance(container, cst.Attribute) and isinstance(container.value, cst.Name):
            info = self.model_class(ctx, container.value)
            built = info.attrs.get(container.attr.value) if info is not None else None
        elif isinstance(container, cst.Name):
            built = self.built(ctx, container)
        if not (isinstance(built, cst.Call) and self.index.call_name(built) == tables.SEQUENTIAL):
            return None
        items = [arg.value for arg in built.args]
        if any(arg.star or arg.keyword is not None for arg in built.args):
            return None  # `nn.Sequential(*layers)`, OrderedDicts
        index = int(position.value.value)
        if not -len(items) <= index < len(items):
            return None
        rest = items[index + 1 :] if index >= 0 else items[len(items) + index + 1 :]
        kinds = [layers.classify(self.index, item).kind for item in rest]
        if any(kind not in _STACK_KINDS for kind in kinds):
            return None  # custom blocks after it: what they hold is not followed
        return None, None, items[index], any(k in (layers.DENSE, layers.RNN) for k in kinds)

    def sequence_loop(self, ctx: _Ctx, loop: cst.For) -> dict[str, str]:
        """{`m`: `model`} for `for m in model:` over an nn.Sequential built in this scope."""
        if not (isinstance(loop.iter, cst.Name) and isinstance(loop.target, cst.Name)):
            return {}
        built = self.built(ctx, loop.iter)
        if isinstance(built, cst.Call) and self.index.call_name(built) == tables.SEQUENTIAL:
            return {loop.target.value: loop.iter.value}
        return {}

    def built(self, ctx: _Ctx, name: cst.Name) -> cst.BaseExpression | None:
        """What built the model a variable holds, `.to(device)`-style calls stripped."""
        value = self.lookup(ctx, name.value)
        while (
            isinstance(value, cst.Call)
            and isinstance(value.func, cst.Attribute)
            and value.func.attr.value in tables.MODEL_PASS_THROUGH_METHODS
        ):
            value = value.func.value
        if isinstance(value, cst.Call):
            returned = factories.returned_elements(self.index, value)  # `net = build_net()`
            if returned is not None and len(returned) == 1:
                value = returned[0]
        return value

    def model_class(self, ctx: _Ctx, name: cst.Name) -> ModuleClass | None:
        """The nn.Module class of this file that `model = Net(...)` instantiates."""
        value = self.built(ctx, name)
        if isinstance(value, cst.Call) and isinstance(value.func, cst.Name):
            return self.index.module_classes.get(value.func.value)
        return None


_STACK_KINDS = frozenset(
    {
        layers.DENSE,
        layers.RNN,
        layers.ACTIVATION,
        layers.SATURATING,
        layers.NORM,
        layers.TRANSPARENT,
    }
)


def _is_self(node: cst.BaseExpression) -> bool:
    return isinstance(node, cst.Name) and node.value == "self"


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


def _parameter_loop(loop: cst.For) -> dict[str, str]:
    """{`p`: `model`} for `for p in model.parameters()` and `for name, p in
    model.named_parameters()`; {`p[1]`: `model`} for `for p in model.named_parameters()`."""
    it = loop.iter
    if not (isinstance(it, cst.Call) and isinstance(it.func, cst.Attribute)):
        return {}
    method = it.func.attr.value
    if method not in ("parameters", "named_parameters"):
        return {}
    owner = dotted_name(it.func.value) or UNKNOWN
    target: cst.BaseExpression = loop.target
    if isinstance(target, cst.Tuple) and len(target.elements) == 2 and method != "parameters":
        target = target.elements[1].value
    elif method == "named_parameters" and isinstance(target, cst.Name):
        return {f"{target.value}[1]": owner}
    return {target.value: owner} if isinstance(target, cst.Name) else {}


def _parameter_variable(node: cst.BaseExpression, loops: dict[str, str]) -> str | None:
    """The loop variable `node` writes (`p`, `p.data`, `p[1].data`), if it is one of `loops`."""
    node = init.strip_data(node)
    if isinstance(node, cst.Name):
        return node.value if node.value in loops else None
    if isinstance(node, cst.Subscript) and isinstance(node.value, cst.Name):
        text = cst.Module([]).code_for_node(node).replace(" ", "")
        return text if text in loops else None
    return None


def _names_weights(test: cst.BaseExpression) -> bool:
    """`"weight" in name` (and no other name test, nor normalization weights): an `if` that
    keeps the weight matrices."""
    strings = [
        cst.ensure_type(s, cst.SimpleString).evaluated_value
        for s in findall(test, cst.SimpleString)
    ]
    return bool(strings) and all(
        "weight" in str(s) and not any(n in str(s) for n in ("norm", "bn", "ln")) for s in strings
    )


def _is_name(node: cst.BaseExpression, name: cst.Name) -> bool:
    return isinstance(node, cst.Name) and node.value == name.value


def _lambdas_passed(index: TorchIndex, function: str, param: str) -> list[cst.Lambda]:
    """One-parameter lambdas the file passes to `function` as its parameter `param`."""
    defined = index.functions.get(function)
    if defined is None:
        return []
    names = [p.name.value for p in defined.params.params]
    found: list[cst.Lambda] = []
    for call in findall(index.module, cst.Call):
        call = cst.ensure_type(call, cst.Call)
        if not (isinstance(call.func, cst.Name) and call.func.value == function):
            continue
        for position, arg in enumerate(call.args):
            if arg.star:
                break  # positions after `*args` are unknowable
            name = arg.keyword.value if arg.keyword is not None else None
            if name is None and position < len(names):
                name = names[position]
            value = arg.value
            if name == param and isinstance(value, cst.Lambda) and len(value.params.params) == 1:
                found.append(value)
    return found


def _trains(index: TorchIndex, function: str) -> bool:
    """The function builds an optimizer or calls `backward()`: what it initialises is trained."""
    defined = index.functions.get(function)
    if defined is None:
        return False
    for call in findall(defined, cst.Call):
        call = cst.ensure_type(call, cst.Call)
        func = call.func
        if isinstance(func, cst.Attribute) and func.attr.value == "backward":
            return True
        if (index.call_name(call) or "").startswith("torch.optim."):
            return True
    return False
