"""Losses and the probabilities fed to them: which criterion a call applies, and whether its
input already went through softmax, log_softmax or sigmoid.

`loss_facts(index)` walks the file's statements once (never every expression node), keeping
for each local variable where its value came from; the result is memoised on the index, so
the rules that ask share it. A model call (`model(x)`, `self(x)`, `self.net(x)`) is linked
to what that model's forward returns when the model is built in this file. Anything not
visible here gives `None` ("cannot know"). `implicit_dim` finds softmax-family calls that
leave `dim` to PyTorch, with the axis that is clearly meant when one is.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Optional, Union

import libcst as cst

from gradlint.semantics import layers, tables
from gradlint.semantics.index import ModuleClass, PerFile, TorchIndex, self_attribute
from gradlint.semantics.names import child_blocks, dotted_name
from gradlint.semantics.recurrent import local_class, unwrap
from gradlint.semantics.training_walk import wraps

NN, F = tables.NN, tables.F

# what a tensor is, as far as a loss is concerned
SOFTMAX, LOG_SOFTMAX, SIGMOID, LOGITS = "softmax", "log_softmax", "sigmoid", "logits"
IMPORTED = "imported"  # the output of a class from another file: `model` names it

# loss families and the criteria (classes and functions) of each, qualified
CROSS_ENTROPY, NLL, BCE = "cross_entropy", "nll", "bce"
LOSS_MODULES: dict[str, str] = {
    NN + "CrossEntropyLoss": CROSS_ENTROPY,
    NN + "NLLLoss": NLL,
    NN + "BCELoss": BCE,
}
LOSS_FUNCTIONS: dict[str, str] = {
    F + "cross_entropy": CROSS_ENTROPY,
    F + "nll_loss": NLL,
    F + "binary_cross_entropy": BCE,
}

OUTPUT_FUNCTIONS: dict[str, str] = {
    "torch.softmax": SOFTMAX,
    "torch.special.softmax": SOFTMAX,
    F + "softmax": SOFTMAX,
    "torch.log_softmax": LOG_SOFTMAX,
    "torch.special.log_softmax": LOG_SOFTMAX,
    F + "log_softmax": LOG_SOFTMAX,
    **{name: SIGMOID for name, kind in tables.SATURATING_FUNCTIONS.items() if kind == "sigmoid"},
}
OUTPUT_METHODS: dict[str, str] = {
    "softmax": SOFTMAX,
    "log_softmax": LOG_SOFTMAX,
    "sigmoid": SIGMOID,
    "sigmoid_": SIGMOID,
}
OUTPUT_MODULES: dict[str, str] = {
    NN + "Softmax": SOFTMAX,
    NN + "LogSoftmax": LOG_SOFTMAX,
    NN + "Sigmoid": SIGMOID,
}
LOG_FUNCTIONS = frozenset({"torch.log", "torch.special.log"})
# tensor methods that reshape or cast but keep what the values mean
KEEPING_METHODS = frozenset(
    {
        "view",
        "reshape",
        "squeeze",
        "unsqueeze",
        "flatten",
        "permute",
        "transpose",
        "contiguous",
        "float",
        "double",
        "half",
        "to",
        "type_as",
        "view_as",
        "reshape_as",
        "t",
        "clamp",
        "clip",
    }
)
# the attribute holding the last layer of torchvision / timm classifiers
HEAD_ATTRIBUTES = ("fc", "classifier", "head")
_CALL_DEPTH = 6  # calls nested deeper than this in one statement are not looked at


@dataclass(frozen=True)
class Output:
    """What a tensor is: softmax/log_softmax/sigmoid probabilities or raw logits."""

    kind: str
    node: cst.CSTNode  # where the activation (or the final layer) is applied
    model: str | None = None  # the model it came out of: a local class or "nn.Sequential"


@dataclass(frozen=True)
class LossUse:
    """`criterion(input, target)` / `F.cross_entropy(input, target)`."""

    call: cst.Call
    loss: str  # the criterion's short name, e.g. CrossEntropyLoss, cross_entropy
    family: str  # CROSS_ENTROPY / NLL / BCE
    input: cst.BaseExpression
    output: Output | None  # where the input comes from; None when not visible


@dataclass
class LossFacts:
    uses: list[LossUse] = field(default_factory=list)
    # `torch.log(p)` / `p.log()` where p is a softmax output
    logs_of_softmax: list[tuple[cst.Call, Output]] = field(default_factory=list)


def loss_facts(index: TorchIndex) -> LossFacts:
    """The loss facts of the file behind `index`, built on first use."""
    facts = _CACHE.get(index)
    if facts is None:
        facts = _Walker(index).run()
        _CACHE[index] = facts
    return facts


_CACHE: PerFile[LossFacts] = PerFile("losses._CACHE")


def input_of(call: cst.Call) -> cst.BaseExpression | None:
    """The first positional argument or `input=`: what a loss or activation is applied to."""
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == "input":
            return arg.value
    positional = [a for a in call.args if a.keyword is None]
    if not positional or positional[0].star:
        return None
    return positional[0].value


# -- the walk ------------------------------------------------------------------------------

Function = Optional[cst.FunctionDef]


@dataclass(frozen=True)
class _Ref:
    """A model call whose output is looked up after the walk: `model(x)` or `self(x)`."""

    key: str  # `model`, `self.net`; "" for `self(x)`
    function: Function
    cls: str | None  # the class whose method makes the call


_Value = Union[Output, _Ref, None]
_Path = tuple[int, ...]  # the blocks around a statement; a binding reaches uses below it


@dataclass
class _Scope:
    function: Function
    cls: ModuleClass | None
    env: dict[str, tuple[_Path, _Value]] = field(default_factory=dict)


class _Walker:
    def __init__(self, index: TorchIndex) -> None:
        self.index = index
        self.facts = LossFacts()
        self.assignments: dict[str, list[tuple[cst.BaseExpression, Function]]] = {}
        self.returns: dict[cst.FunctionDef, list[_Value]] = {}
        # (loss call, its criterion or the name it is called by, input, where the input comes from)
        self.pending: list[tuple[cst.Call, tuple[str, str] | str, cst.BaseExpression, _Value]] = []
        self.pending_logs: list[tuple[cst.Call, _Value]] = []
        self.blocks = 0

    def run(self) -> LossFacts:
        self._block(self.index.module.body, _Scope(None, None), ())
        resolver = _Resolver(self)
        for call, criterion, expr, value in self.pending:
            found = self._criterion(criterion) if isinstance(criterion, str) else criterion
            if found is not None:
                loss, family = found
                self.facts.uses.append(LossUse(call, loss, family, expr, resolver.resolve(value)))
        for call, value in self.pending_logs:
            output = resolver.resolve(value)
            if output is not None and output.kind == SOFTMAX:
                self.facts.logs_of_softmax.append((call, output))
        return self.facts

    def _block(self, statements: Sequence[cst.CSTNode], scope: _Scope, path: _Path) -> None:
        for statement in statements:
            if isinstance(statement, cst.SimpleStatementLine):
                for small in statement.body:
                    self._small(small, scope, path)
            elif isinstance(statement, cst.FunctionDef):
                inner = _Scope(statement, scope.cls if scope.function is None else None)
                self._children(statement, inner, ())
            elif isinstance(statement, cst.ClassDef):
                info = self.index.module_classes.get(statement.name.value)
                owner = info if info is not None and info.node is statement else None
                self._children(statement, _Scope(None, owner), ())
            elif isinstance(statement, (cst.With, cst.Try)):
                # a with-body and a try-body always start: their bindings reach what follows
                self._block(_body(statement), scope, path)
                for block in list(child_blocks(statement))[1:]:
                    self._nested(block, scope, path)
            elif isinstance(statement, cst.BaseCompoundStatement):
                self._kill_loop_target(statement, scope, path)
                self._children(statement, scope, path)

    def _children(self, statement: cst.CSTNode, scope: _Scope, path: _Path) -> None:
        for block in child_blocks(statement):
            self._nested(block, scope, path)

    def _nested(self, block: Sequence[cst.CSTNode], scope: _Scope, path: _Path) -> None:
        self.blocks += 1
        self._block(block, scope, (*path, self.blocks))

    def _small(self, small: cst.CSTNode, scope: _Scope, path: _Path) -> None:
        value: cst.BaseExpression | None = None
        if isinstance(small, (cst.Expr, cst.Return)):
            value = small.value
        elif isinstance(small, (cst.Assign, cst.AnnAssign, cst.AugAssign)):
            value = small.value
        if value is not None:
            for call in _calls_in(value, _CALL_DEPTH):
                self._call(call, scope, path)
        if isinstance(small, cst.Return) and scope.function is not None:
            got = self._value(small.value, scope, path) if small.value is not None else None
            self.returns.setdefault(scope.function, []).append(got)
        elif isinstance(small, cst.Assign):
            for target in small.targets:
                self._bind(target.target, small.value, scope, path)
        elif isinstance(small, cst.AnnAssign) and small.value is not None:
            self._bind(small.target, small.value, scope, path)
        elif isinstance(small, cst.AugAssign) and isinstance(small.target, cst.Name):
            scope.env[small.target.value] = (path, None)

    def _bind(
        self, target: cst.BaseExpression, value: cst.BaseExpression, scope: _Scope, path: _Path
    ) -> None:
        key = dotted_name(target)
        # `model = model.to(device)`, `model = DDP(model)` keep the model that `model` names
        if key is not None and not wraps(value, key):
            self.assignments.setdefault(key, []).append((value, scope.function))
        if isinstance(target, cst.Name):
            scope.env[target.value] = (path, self._value(value, scope, path))
        elif isinstance(target, (cst.Tuple, cst.List)):
            for element in target.elements:
                if isinstance(element.value, cst.Name):
                    scope.env[element.value.value] = (path, None)

    def _kill_loop_target(self, statement: cst.CSTNode, scope: _Scope, path: _Path) -> None:
        if isinstance(statement, cst.For):
            for name in _names(statement.target):
                scope.env[name] = (path, None)

    def _call(self, call: cst.Call, scope: _Scope, path: _Path) -> None:
        name = self.index.call_name(call)
        if name in LOG_FUNCTIONS or (
            name is None
            and isinstance(call.func, cst.Attribute)
            and call.func.attr.value == "log"
            and not call.args
        ):
            operand = input_of(call) if name else cst.ensure_type(call.func, cst.Attribute).value
            if operand is not None:
                self.pending_logs.append((call, self._value(operand, scope, path)))
            return
        expr = input_of(call)
        if expr is None:
            return  # no input, or `*args`
        built = self.index.call_name(call.func)  # `nn.CrossEntropyLoss()(x, y)`
        key = dotted_name(call.func)
        criterion: tuple[str, str] | str | None = None
        if name in LOSS_FUNCTIONS:
            criterion = _short(name), LOSS_FUNCTIONS[name]
        elif built in LOSS_MODULES:
            criterion = _short(built), LOSS_MODULES[built]
        elif name is None and key not in (None, "self"):
            criterion = key  # `criterion(x, y)`: looked up once every assignment is known
        if criterion is not None:
            self.pending.append((call, criterion, expr, self._value(expr, scope, path)))

    def _criterion(self, key: str) -> tuple[str, str] | None:
        """(short name, family) when every assignment of `key` in the file builds one loss."""
        names = {self.index.call_name(unwrap(v)) for v, _ in self.assignments.get(key, [])}
        if len(names) == 1 and (only := names.pop()) in LOSS_MODULES:
            return _short(only), LOSS_MODULES[only]
        return None

    # -- values -------------------------------------------------------------------------

    def _value(
        self, node: cst.BaseExpression, scope: _Scope, path: _Path, depth: int = 0
    ) -> _Value:
        if depth > _CALL_DEPTH:
            return None  # long method chains: what they compute is not followed
        if isinstance(node, cst.Name):
            bound = scope.env.get(node.value)
            if bound is None or bound[0] != path[: len(bound[0])]:
                return None  # never bound here, or bound in a branch that may not have run
            return bound[1]
        if isinstance(node, cst.Subscript):
            return self._value(node.value, scope, path, depth + 1)
        if isinstance(node, cst.IfExp):
            body = self._value(node.body, scope, path, depth + 1)
            orelse = self._value(node.orelse, scope, path, depth + 1)
            if isinstance(body, Output) and isinstance(orelse, Output) and body.kind == orelse.kind:
                return body
            return None  # different values in the two branches
        if isinstance(node, cst.Call):
            return self._call_value(node, scope, path, depth + 1)
        return None

    def _call_value(self, call: cst.Call, scope: _Scope, path: _Path, depth: int) -> _Value:
        name = self.index.call_name(call)
        if name in OUTPUT_FUNCTIONS:
            return Output(OUTPUT_FUNCTIONS[name], call)
        if name in LOG_FUNCTIONS:
            operand = input_of(call)
            inner = self._value(operand, scope, path, depth + 1) if operand is not None else None
            return Output(LOG_SOFTMAX, call) if _is_kind(inner, SOFTMAX) else None
        if name == F + "linear":
            return Output(LOGITS, call)
        if name is not None:
            return None  # another torch function: the values mean something else
        func = call.func
        attr = self_attribute(func)
        if attr is not None:
            if scope.cls is None:
                return _Ref(f"self.{attr}", None, None)  # a trainer class's `self.model`
            if attr not in scope.cls.attrs:
                return None  # a layer or helper this file does not show
            return _module_value(self.index, scope.cls.attrs[attr], call)
        if isinstance(func, cst.Name) and func.value == "self":
            return _Ref("", scope.function, scope.cls.name if scope.cls else None)
        if isinstance(func, cst.Attribute):
            method = func.attr.value
            if method in OUTPUT_METHODS:
                return Output(OUTPUT_METHODS[method], call)
            if method in KEEPING_METHODS:
                return self._value(func.value, scope, path, depth + 1)
        key = dotted_name(func)
        return _Ref(key, scope.function, scope.cls.name if scope.cls else None) if key else None


def _module_value(index: TorchIndex, built: cst.BaseExpression, call: cst.CSTNode) -> _Value:
    """What calling the module that `built` constructs returns (`call`: where it is called)."""
    built = unwrap(built)
    name = index.call_name(built)
    if name in OUTPUT_MODULES:
        return Output(OUTPUT_MODULES[name], call)
    if name in tables.DENSE_LAYERS:
        return Output(LOGITS, call)
    if name == tables.SEQUENTIAL:
        stack = layers.sequence(index, built) or []
        last = next((layer for layer in reversed(stack) if not _is_dropout(index, layer)), None)
        if last is None or not isinstance(last.node, cst.BaseExpression):
            return None
        value = _module_value(index, last.node, call)
        if isinstance(value, Output):
            return Output(value.kind, last.node, value.model or "nn.Sequential")
        return value
    local = local_class(index, built)
    return _Ref("", None, local) if local is not None else None


class _Resolver:
    """Turns model calls into what the model's forward returns, once the walk is done."""

    def __init__(self, walker: _Walker) -> None:
        self.walker = walker
        self.index = walker.index

    def resolve(self, value: _Value, seen: frozenset[str] = frozenset()) -> Output | None:
        if not isinstance(value, _Ref):
            return value
        if value.key == "":
            return self._class_output(value.cls, seen)
        pairs = self.walker.assignments.get(value.key, [])
        pairs = [p for p in pairs if p[1] is value.function] or pairs
        if not pairs or value.key in seen:
            return None  # a parameter or a model built elsewhere
        seen = seen | {value.key}
        built = [_module_value(self.index, v, v) for v, _ in pairs]
        if all(isinstance(v, cst.Call) for v, _ in pairs) and not any(built):
            head = self._replaced_head(value.key, seen)  # `models.resnet50()` and the like
            return head if head is not None else self._imported(pairs)
        got = [self.resolve(b, seen) for b in built]
        first = got[0]
        if first is None or any(g is None or g.kind != first.kind for g in got):
            return None
        return first

    def _imported(self, pairs: list[tuple[cst.BaseExpression, Function]]) -> Output | None:
        """`model = Net()` with `Net` imported from another module: the project phase knows
        what its forward returns (`Output.model` holds the name as the imports spell it)."""
        if len(pairs) != 1:
            return None
        value = unwrap(pairs[0][0])
        name = self.index.call_name(value)
        if name is None or name.startswith(("torch", "lightning")):
            return None
        return Output(IMPORTED, value, name)

    def _replaced_head(self, key: str, seen: frozenset[str]) -> Output | None:
        """`model = models.resnet50(); model.fc = nn.Sequential(..., nn.Softmax(1))`: the
        replaced head is the last layer of torchvision and timm classifiers."""
        heads = [f"{key}.{h}" for h in HEAD_ATTRIBUTES if f"{key}.{h}" in self.walker.assignments]
        if len(heads) != 1:
            return None
        output = self.resolve(_Ref(heads[0], None, None), seen)
        return Output(output.kind, output.node, heads[0]) if output else None

    def _class_output(self, name: str | None, seen: frozenset[str]) -> Output | None:
        info = self.index.module_classes.get(name or "")
        if info is None or info.forward is None or info.name in seen:
            return None
        returns = self.walker.returns.get(info.forward, [])
        got = [self.resolve(r, seen | {info.name}) for r in returns]
        if not got or any(g is None for g in got):
            return None
        kinds = {g.kind for g in got if g is not None}
        first = got[0]
        if len(kinds) != 1 or first is None:
            return None  # e.g. softmax only when not training: the loss sees logits
        return Output(first.kind, first.node, info.name)


def _is_kind(value: _Value, kind: str) -> bool:
    return isinstance(value, Output) and value.kind == kind


def _is_dropout(index: TorchIndex, layer: layers.Layer) -> bool:
    name = index.call_name(layer.node) or ""
    return name.startswith(NN + "Dropout") or name in (NN + "AlphaDropout", NN + "Identity")


def _short(name: str | None) -> str:
    return (name or "").rsplit(".", 1)[-1]


def _body(statement: cst.BaseCompoundStatement) -> Sequence[cst.CSTNode]:
    return next(iter(child_blocks(statement)), [])


def _names(target: cst.BaseExpression) -> Iterator[str]:
    if isinstance(target, cst.Name):
        yield target.value
    elif isinstance(target, (cst.Tuple, cst.List)):
        for element in target.elements:
            yield from _names(element.value)


def _calls_in(expr: cst.BaseExpression, depth: int) -> Iterator[cst.Call]:
    """Calls in an expression, inner ones first, a few levels deep."""
    if depth <= 0:
        return
    if isinstance(expr, cst.Call):
        yield from _calls_in(expr.func, depth - 1)
        for arg in expr.args:
            yield from _calls_in(arg.value, depth - 1)
        yield expr
    elif isinstance(expr, (cst.Attribute, cst.Subscript)):
        yield from _calls_in(expr.value, depth - 1)
    elif isinstance(expr, (cst.Tuple, cst.List)):
        for element in expr.elements:
            yield from _calls_in(element.value, depth - 1)
    elif isinstance(expr, cst.BinaryOperation):
        yield from _calls_in(expr.left, depth - 1)
        yield from _calls_in(expr.right, depth - 1)
    elif isinstance(expr, (cst.UnaryOperation, cst.Await)):
        yield from _calls_in(expr.expression, depth - 1)


# -- softmax without `dim` ------------------------------------------------------------------

# `dim=None` by default: PyTorch guesses the axis and warns (legacy `_get_softmax_dim`)
IMPLICIT_DIM_MODULES = frozenset({NN + "Softmax", NN + "LogSoftmax", NN + "Softmin"})
IMPLICIT_DIM_FUNCTIONS = frozenset({F + "softmax", F + "log_softmax", F + "softmin"})
# no default at all: leaving `dim` out raises TypeError
REQUIRED_DIM_FUNCTIONS = frozenset(
    {"torch.softmax", "torch.log_softmax", "torch.special.softmax", "torch.special.log_softmax"}
)
REQUIRED_DIM_METHODS = frozenset({"softmax", "log_softmax"})


@dataclass(frozen=True)
class ImplicitDim:
    """A softmax-family call that leaves `dim` to PyTorch (or forgets the required one)."""

    call: cst.Call  # add `dim=...` to this call's arguments
    name: str  # the callee as written: `nn.Softmax`, `F.log_softmax`, `x.softmax`
    raises: bool  # torch.softmax / Tensor.softmax: no default, the call raises TypeError
    intended: int | None  # the axis clearly meant (-1 after Linear or `@`, 1 after a conv)


def legacy_softmax_dim(ndim: int) -> int:
    """The axis PyTorch picks when `dim` is None (torch.nn.functional._get_softmax_dim)."""
    return 0 if ndim in (0, 1, 3) else 1


def implicit_dim(
    index: TorchIndex,
    call: cst.Call,
    owner: ModuleClass | None = None,
    previous: cst.CSTNode | None = None,
) -> ImplicitDim | None:
    """The call, when it is a softmax without `dim`; `previous` is the layer before it in an
    nn.Sequential, `owner` the module class whose layers `self.fc(x)` refers to."""
    if any(arg.star for arg in call.args):
        return None  # `*args` / `**kwargs` may carry dim
    name = index.call_name(call)
    if name in IMPLICIT_DIM_MODULES:
        dim_at, raises, operand = 0, False, None
    elif name in IMPLICIT_DIM_FUNCTIONS or name in REQUIRED_DIM_FUNCTIONS:
        dim_at, raises, operand = 1, name in REQUIRED_DIM_FUNCTIONS, input_of(call)
    elif (
        name is None
        and isinstance(call.func, cst.Attribute)
        and call.func.attr.value in REQUIRED_DIM_METHODS
        and self_attribute(call.func) is None
    ):
        dim_at, raises, operand = 0, True, call.func.value
    else:
        return None
    if _has_dim(call, dim_at):
        return None
    intended = _axis_after(index, previous) if previous is not None else None
    if operand is not None:
        intended = _axis_of(index, operand, owner)
    spelled = cst.Module([]).code_for_node(call.func)
    return ImplicitDim(call, spelled, raises, intended)


def _has_dim(call: cst.Call, position: int) -> bool:
    positional = [a.value for a in call.args if a.keyword is None]
    keywords = {a.keyword.value: a.value for a in call.args if a.keyword is not None}
    dim = keywords.get("dim", positional[position] if len(positional) > position else None)
    return dim is not None and not (isinstance(dim, cst.Name) and dim.value == "None")


def _axis_of(
    index: TorchIndex, operand: cst.BaseExpression, owner: ModuleClass | None
) -> int | None:
    """The class/feature axis of a tensor computed by a visible layer, else None."""
    if isinstance(operand, cst.BinaryOperation):
        return -1 if isinstance(operand.operator, cst.MatrixMultiply) else None
    if not isinstance(operand, cst.Call):
        return None
    if index.call_name(operand) in (F + "linear", "torch.matmul", "torch.bmm"):
        return -1
    attr = self_attribute(operand.func)
    if attr is not None and owner is not None and attr in owner.attrs:
        return _axis_after(index, owner.attrs[attr])
    return None


def _axis_after(index: TorchIndex, layer: cst.CSTNode) -> int | None:
    name = index.call_name(layer)
    if name not in tables.DENSE_LAYERS:
        return None
    return 1 if "Conv" in name else -1  # conv outputs put channels at 1, Linear features last
