"""Losses and what flows into them: which criterion a call applies, and what its input is.

`loss_facts(index)` walks the file's statements once (never every expression node), keeping
for each local variable where its value came from; the result is memoised on the index, so
the rules that ask share it. Model calls are resolved by `model_outputs.Resolver`. Anything not
visible here gives `None` ("cannot know").
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import libcst as cst

from gradlint.semantics import tables
from gradlint.semantics.index import ModuleClass, PerFile, TorchIndex, self_attribute
from gradlint.semantics.model_outputs import (
    KEEPING_METHODS,
    LOG_FUNCTIONS,
    LOG_SOFTMAX,
    LOGITS,
    OUTPUT_FUNCTIONS,
    OUTPUT_METHODS,
    SOFTMAX,
    Assignments,
    Function,
    Output,
    Ref,
    Resolver,
    Value,
    is_kind,
    module_value,
)
from gradlint.semantics.names import child_blocks, dotted_name
from gradlint.semantics.recurrent import unwrap
from gradlint.semantics.training_walk import wraps

NN, F = tables.NN, tables.F

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
_CALL_DEPTH = 6  # calls nested deeper than this in one statement are not looked at


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

_Path = tuple[int, ...]  # the blocks around a statement; a binding reaches uses below it


@dataclass
class _Scope:
    function: Function
    cls: ModuleClass | None
    env: dict[str, tuple[_Path, Value]] = field(default_factory=dict)


class _Walker:
    def __init__(self, index: TorchIndex) -> None:
        self.index = index
        self.facts = LossFacts()
        self.assignments: Assignments = {}
        self.returns: dict[cst.FunctionDef, list[Value]] = {}
        # (loss call, its criterion or the name it is called by, input, where the input comes from)
        self.pending: list[tuple[cst.Call, tuple[str, str] | str, cst.BaseExpression, Value]] = []
        self.pending_logs: list[tuple[cst.Call, Value]] = []
        self.blocks = 0

    def run(self) -> LossFacts:
        self._block(self.index.module.body, _Scope(None, None), ())
        resolver = Resolver(self.index, self.assignments, self.returns)
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

    def _value(self, node: cst.BaseExpression, scope: _Scope, path: _Path, depth: int = 0) -> Value:
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

    def _call_value(self, call: cst.Call, scope: _Scope, path: _Path, depth: int) -> Value:
        name = self.index.call_name(call)
        if name in OUTPUT_FUNCTIONS:
            return Output(OUTPUT_FUNCTIONS[name], call)
        if name in LOG_FUNCTIONS:
            operand = input_of(call)
            inner = self._value(operand, scope, path, depth + 1) if operand is not None else None
            return Output(LOG_SOFTMAX, call) if is_kind(inner, SOFTMAX) else None
        if name == F + "linear":
            return Output(LOGITS, call)
        if name is not None:
            return None  # another torch function: the values mean something else
        func = call.func
        attr = self_attribute(func)
        if attr is not None:
            if scope.cls is None:
                return Ref(f"self.{attr}", None, None)  # a trainer class's `self.model`
            if attr not in scope.cls.attrs:
                return None  # a layer or helper this file does not show
            return module_value(self.index, scope.cls.attrs[attr], call)
        if isinstance(func, cst.Name) and func.value == "self":
            return Ref("", scope.function, scope.cls.name if scope.cls else None)
        if isinstance(func, cst.Attribute):
            method = func.attr.value
            if method in OUTPUT_METHODS:
                return Output(OUTPUT_METHODS[method], call)
            if method in KEEPING_METHODS:
                return self._value(func.value, scope, path, depth + 1)
        key = dotted_name(func)
        return Ref(key, scope.function, scope.cls.name if scope.cls else None) if key else None


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
