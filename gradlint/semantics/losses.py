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
    Outputs,
    Param,
    Ref,
    Resolver,
    Value,
    element_of,
    is_kind,
    module_value,
)
from gradlint.semantics.names import child_blocks, dotted_name
from gradlint.semantics.nodes import findall
from gradlint.semantics.recurrent import unwrap
from gradlint.semantics.syntax import lone_statement
from gradlint.semantics.training_walk import wraps

NN, F = tables.NN, tables.F

# loss families and the criteria (classes and functions) of each, qualified
CROSS_ENTROPY, NLL, BCE, BCE_LOGITS = "cross_entropy", "nll", "bce", "bce_with_logits"
LOSS_MODULES: dict[str, str] = {
    NN + "CrossEntropyLoss": CROSS_ENTROPY,
    NN + "NLLLoss": NLL,
    NN + "BCELoss": BCE,
    NN + "BCEWithLogitsLoss": BCE_LOGITS,
}
LOSS_FUNCTIONS: dict[str, str] = {
    F + "cross_entropy": CROSS_ENTROPY,
    F + "nll_loss": NLL,
    F + "binary_cross_entropy": BCE,
    F + "binary_cross_entropy_with_logits": BCE_LOGITS,
}
REPORT_METHODS = frozenset({"info", "debug", "warning", "add_scalar", "add_scalars", "write"})
DATA_PARALLEL = "torch.nn.parallel.data_parallel"  # calls its first argument on the input
EXP_FUNCTIONS = frozenset({"torch.exp", "torch.special.exp"})
_CALL_DEPTH = 6  # calls nested deeper than this in one statement are not looked at
_ARGUMENTS = 3  # positional arguments of a call remembered for loss wrappers
_WRAPPER_DEPTH = 3  # loss wrappers calling loss wrappers, followed this many levels


@dataclass(frozen=True)
class LossUse:
    """`criterion(input, target)` / `F.cross_entropy(input, target)`."""

    call: cst.Call
    loss: str  # the criterion's short name, e.g. CrossEntropyLoss, cross_entropy
    family: str  # CROSS_ENTROPY / NLL / BCE
    input: cst.BaseExpression
    output: Output | None  # where the input comes from; None when not visible
    through: str | None = None  # the loss wrapper the input is passed to (`focal_loss`)
    via: cst.Call | None = None  # where it is passed to the wrapper


@dataclass
class LossFacts:
    uses: list[LossUse] = field(default_factory=list)
    # `torch.log(p)` / `p.log()` where p is a softmax output
    logs_of_softmax: list[tuple[cst.Call, Output]] = field(default_factory=list)
    # (imported base class as the imports spell it, class name, what its forward returns)
    # for `class RNN(BaseModel)`: a loss elsewhere may be applied to any BaseModel's output
    subclass_outputs: list[tuple[str, str, Output]] = field(default_factory=list)
    # a criterion built at the top of a script that never calls it here (the training part
    # lives in a file run after it), next to the one model the script builds:
    # (criterion constructor, short name, family, the model's output)
    unused_criteria: list[tuple[cst.Call, str, str, Output]] = field(default_factory=list)


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
_Criterion = tuple[str, str]  # (short name, family)
_Wrapped = tuple[_Criterion, cst.Call]  # the loss a wrapper applies, and where


@dataclass
class _Scope:
    function: Function
    cls: ModuleClass | None
    env: dict[str, tuple[_Path, Value]] = field(default_factory=dict)
    owner: cst.ClassDef | None = None  # the class whose body holds this scope, if any


@dataclass(frozen=True)
class _Pending:
    """A call that may apply a loss: decided once every assignment of the file is known."""

    call: cst.Call
    criterion: _Criterion | str  # a known loss, or the name the call goes through
    args: tuple[cst.BaseExpression, ...]  # the first positional arguments
    values: tuple[Value, ...]  # where each of them comes from
    owner: cst.ClassDef | None  # the class whose method makes the call


class _Walker:
    def __init__(self, index: TorchIndex) -> None:
        self.index = index
        self.facts = LossFacts()
        self.assignments: Assignments = {}
        self.returns: dict[cst.FunctionDef, list[Value]] = {}
        self.pending: list[_Pending] = []
        self.pending_logs: list[tuple[cst.Call, Value]] = []
        self.functions: dict[str, cst.FunctionDef] = {}  # module-level functions
        self.methods: dict[cst.ClassDef, dict[str, cst.FunctionDef]] = {}
        # (class, attribute) -> `nn.Sequential(self.<attribute>, ...)` built around it later
        self.extended: dict[tuple[str, str], cst.BaseExpression] = {}
        self.blocks = 0

    def run(self) -> LossFacts:
        self._block(self.index.module.body, _Scope(None, None), ())
        resolver = Resolver(self.index, self.assignments, self.returns)
        # loss wrappers: function -> {parameter position: the loss it feeds, and its call}
        wrappers: dict[cst.FunctionDef, dict[int, _Wrapped]] = {}
        waiting = list(self.pending)
        for _ in range(_WRAPPER_DEPTH + 1):
            later: list[_Pending] = []
            found_wrapper = False
            for pending in waiting:
                found = self._criterion_of(pending, wrappers)
                if found is None:
                    later.append(pending)
                    continue
                (criterion, inner), position, through = found
                if position >= len(pending.values):
                    continue  # the argument is passed by keyword or `*args`
                value = pending.values[position]
                if isinstance(value, Param):  # inside a wrapper: its callers say what flows in
                    wrapped = (criterion, inner or pending.call)
                    wrappers.setdefault(value.function, {})[value.position] = wrapped
                    found_wrapper = True
                    continue
                output = resolver.resolve(value)
                loss, family = criterion
                expr = pending.args[position]
                call, via = (inner, pending.call) if inner is not None else (pending.call, None)
                self.facts.uses.append(LossUse(call, loss, family, expr, output, through, via))
            waiting = later
            if not found_wrapper:
                break
        for call, value in self.pending_logs:
            output = resolver.resolve(value)
            if output is not None and output.kind == SOFTMAX:
                self.facts.logs_of_softmax.append((call, output))
        self._subclass_outputs(resolver)
        self._unused_criteria(resolver)
        return self.facts

    def _unused_criteria(self, resolver: Resolver) -> None:
        """`model = Net(...)` and `loss_fn = nn.CrossEntropyLoss()` at the top level of a
        script that never mentions `loss_fn` again: the two can only meet elsewhere."""
        criteria: list[tuple[str, cst.Call]] = []
        models: list[Output] = []
        for statement in self.index.module.body:
            small = lone_statement(statement)
            if not (isinstance(small, cst.Assign) and len(small.targets) == 1):
                continue
            target, value = small.targets[0].target, small.value
            if not (isinstance(target, cst.Name) and isinstance(value, cst.Call)):
                continue
            if self.index.call_name(value) in LOSS_MODULES:
                criteria.append((target.value, value))
            elif isinstance(value.func, cst.Name) and value.func.value in self.index.module_classes:
                found = resolver.resolve(Ref("", None, value.func.value))
                if found is not None:
                    models.append(found)
        if len(criteria) != 1 or len(models) != 1:
            return  # none, or several to pair up
        (name, built), output = criteria[0], models[0]
        mentions = sum(
            1
            for n in findall(self.index.module, cst.Name)
            if cst.ensure_type(n, cst.Name).value == name
        )
        criterion = self._criterion(name)
        if mentions == 1 and criterion is not None:
            self.facts.unused_criteria.append((built, criterion[0], criterion[1], output))

    def _subclass_outputs(self, resolver: Resolver) -> None:
        """What forward() returns in classes built on a class imported from the project."""
        for owner, methods in self.methods.items():
            forward = methods.get("forward")
            bases = [self.index.qualified(base.value) for base in owner.bases]
            base = bases[0] if len(bases) == 1 else None
            if forward is None or base is None or base.startswith(("torch", "lightning")):
                continue  # no forward, or a torch base: a model of this file, seen directly
            got = [resolver.resolve(value) for value in self.returns.get(forward, [])]
            kinds = {g.kind for g in got if g is not None}
            if got and len(kinds) == 1 and all(g is not None for g in got):
                output = got[-1]
                assert output is not None
                self.facts.subclass_outputs.append((base, owner.name.value, output))

    def _criterion_of(
        self, pending: _Pending, wrappers: dict[cst.FunctionDef, dict[int, _Wrapped]]
    ) -> tuple[tuple[_Criterion, cst.Call | None], int, str | None] | None:
        """((loss, the loss call inside a wrapper), position of its input among the call's
        arguments, wrapper name); None when the call applies no loss."""
        if not isinstance(pending.criterion, str):
            return (pending.criterion, None), 0, None
        key = pending.criterion
        direct = self._criterion(key)
        if direct is not None:
            return (direct, None), 0, None
        function = self._callee(key, pending.owner)
        fed = wrappers.get(function) if function is not None else None
        if not fed or len(fed) != 1:
            return None  # not a wrapper, or one feeding several losses
        position, criterion = next(iter(fed.items()))
        return criterion, position, key

    def _callee(self, key: str, owner: cst.ClassDef | None) -> cst.FunctionDef | None:
        """The function of this file that `key(...)` runs: a module-level function, a method
        of the calling class (`self.loss`), or the forward of a local class instance."""
        if key in self.functions:
            return self.functions[key]
        if key.startswith("self.") and owner is not None:
            method = self.methods.get(owner, {}).get(key[5:])
            if method is not None:
                return method
        assigned = [unwrap(v) for v, _ in self.assignments.get(key, [])]
        if len(assigned) != 1 or not isinstance(assigned[0], cst.Call):
            return None  # not built here, or built in several places
        node = self.index.classes.get(dotted_name(assigned[0].func) or "")
        if node is None:
            return None  # not a class of this file
        methods = self.methods.get(node, {})
        return methods.get("forward") or methods.get("__call__")

    def _block(self, statements: Sequence[cst.CSTNode], scope: _Scope, path: _Path) -> None:
        for statement in statements:
            if isinstance(statement, cst.SimpleStatementLine):
                for small in statement.body:
                    self._small(small, scope, path)
            elif isinstance(statement, cst.FunctionDef):
                self._function(statement, scope)
            elif isinstance(statement, cst.ClassDef):
                info = self.index.module_classes.get(statement.name.value)
                owner = info if info is not None and info.node is statement else None
                self._children(statement, _Scope(None, owner, owner=statement), ())
            elif isinstance(statement, (cst.With, cst.Try)):
                # a with-body and a try-body always start: their bindings reach what follows
                self._block(_body(statement), scope, path)
                for block in list(child_blocks(statement))[1:]:
                    self._nested(block, scope, path)
            elif isinstance(statement, cst.If) and isinstance(statement.orelse, cst.Else):
                self._if_else(statement, statement.orelse, scope, path)
            elif isinstance(statement, cst.BaseCompoundStatement):
                self._kill_loop_target(statement, scope, path)
                self._children(statement, scope, path)

    def _function(self, function: cst.FunctionDef, scope: _Scope) -> None:
        method = scope.function is None and scope.owner is not None
        if method and scope.owner is not None:
            self.methods.setdefault(scope.owner, {})[function.name.value] = function
        elif scope.function is None:
            self.functions.setdefault(function.name.value, function)
        inner = _Scope(function, scope.cls if method else None, owner=scope.owner)
        params = list(function.params.params)
        static = any(dotted_name(d.decorator) == "staticmethod" for d in function.decorators)
        if method and not static:
            params = params[1:]  # self / cls
        for position, param in enumerate(params):
            inner.env[param.name.value] = ((), Param(function, position))
        self._children(function, inner, ())

    def _if_else(self, node: cst.If, orelse: cst.Else, scope: _Scope, path: _Path) -> None:
        """A name both branches bind to the same kind of value holds it after the `if`
        (`output = data_parallel(self.main, x)` / `output = self.main(x)`)."""
        bound: list[dict[str, Value]] = []
        for block in (node.body.body, orelse.body.body):
            before = dict(scope.env)
            self._nested(block, scope, path)
            bound.append({n: v[1] for n, v in scope.env.items() if before.get(n) is not v})
        for name, value in bound[0].items():
            other = bound[1].get(name)
            if isinstance(value, Output) and isinstance(other, Output):
                same = value.kind == other.kind
            else:
                same = value is not None and value == other
            if same:
                scope.env[name] = (path, value)

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
        if isinstance(small, cst.Expr) and _is_report(value):
            value = None  # `print(" | Cost: %.3f" % F.binary_cross_entropy(p, y))`: no gradient
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
        if key is not None and _extends(self.index, value, key):
            self.assignments[key] = [(value, scope.function)]  # what it was now runs first
            if key.startswith("self.") and scope.cls is not None:
                self.extended[(scope.cls.name, key[5:])] = value
        # `model = model.to(device)`, `model = DDP(model)` keep the model that `model` names
        elif key is not None and not wraps(value, key):
            self.assignments.setdefault(key, []).append((value, scope.function))
        if isinstance(target, cst.Name):
            scope.env[target.value] = (path, self._value(value, scope, path))
        elif isinstance(target, (cst.Tuple, cst.List)):
            whole = self._value(value, scope, path)
            unpacked = isinstance(whole, (Outputs, Ref)) and not any(
                isinstance(e, cst.StarredElement) for e in target.elements
            )
            for position, element in enumerate(target.elements):
                if isinstance(element.value, cst.Name):
                    got = element_of(whole, position) if unpacked else None
                    scope.env[element.value.value] = (path, got)

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
        criterion: _Criterion | str | None = None
        args: tuple[cst.BaseExpression, ...] = (expr,)
        if name in LOSS_FUNCTIONS:
            criterion = _short(name), LOSS_FUNCTIONS[name]
        elif built in LOSS_MODULES:
            criterion = _short(built), LOSS_MODULES[built]
        elif name is None and key not in (None, "self"):
            criterion = key  # `criterion(x, y)`: looked up once every assignment is known
            args = _positional(call)
        if criterion is not None:
            values = tuple(self._value(a, scope, path) for a in args)
            self.pending.append(_Pending(call, criterion, args, values, scope.owner))

    def _criterion(self, key: str) -> _Criterion | None:
        """(short name, family) when every assignment of `key` in the file builds one loss
        (`criterion = nn.BCELoss()`) or names a loss function (`loss_fn = F.cross_entropy`)."""
        names = set()
        for value, _ in self.assignments.get(key, []):
            value = unwrap(value)
            names.add(self.index.call_name(value) or _function_name(self.index, value))
        if len(names) != 1:
            return None
        only = names.pop()
        if only in LOSS_MODULES:
            return _short(only), LOSS_MODULES[only]
        if only is not None and only.startswith("function:") and only[9:] in LOSS_FUNCTIONS:
            return _short(only), LOSS_FUNCTIONS[only[9:]]
        return None

    # -- values -------------------------------------------------------------------------

    def _module_call(self, module: cst.BaseExpression, call: cst.Call, scope: _Scope) -> Value:
        """What calling `module` (`self.fc`, `self.decode`, `self`) returns."""
        attr = self_attribute(module)
        if attr is None:
            key = dotted_name(module)
            return Ref(key, scope.function, scope.cls.name if scope.cls else None) if key else None
        if scope.cls is None:
            return Ref(f"self.{attr}", None, None)  # a trainer class's `self.model`
        if attr in scope.cls.attrs:
            built = self.extended.get((scope.cls.name, attr), scope.cls.attrs[attr])
            return module_value(self.index, built, call)
        if attr in scope.cls.methods:  # a helper method: `self.decode(z)`
            return Ref("", scope.function, scope.cls.name, attr)
        return None  # a layer or helper this file does not show

    def _value(self, node: cst.BaseExpression, scope: _Scope, path: _Path, depth: int = 0) -> Value:
        if depth > _CALL_DEPTH:
            return None  # long method chains: what they compute is not followed
        if isinstance(node, cst.Name):
            bound = scope.env.get(node.value)
            if bound is None or bound[0] != path[: len(bound[0])]:
                return None  # never bound here, or bound in a branch that may not have run
            return bound[1]
        if isinstance(node, cst.Subscript):
            inner = self._value(node.value, scope, path, depth + 1)
            element = _literal_index(node)
            if element is not None:
                return element_of(inner, element)  # `D(x)[0]`, `outputs[-1]`
            return None if isinstance(inner, Outputs) else inner
        if isinstance(node, cst.Tuple):
            return Outputs(
                tuple(self._value(e.value, scope, path, depth + 1) for e in node.elements)
            )
        if isinstance(node, cst.IfExp):
            body = self._value(node.body, scope, path, depth + 1)
            orelse = self._value(node.orelse, scope, path, depth + 1)
            if isinstance(body, Output) and isinstance(orelse, Output) and body.kind == orelse.kind:
                return body
            return None  # different values in the two branches
        if isinstance(node, cst.Call):
            return self._call_value(node, scope, path, depth + 1)
        if isinstance(node, cst.BinaryOperation) and self._is_hand_softmax(node):
            return Output(SOFTMAX, node)  # `torch.exp(s) / torch.exp(s).sum(1, keepdim=True)`
        return None

    def _is_hand_softmax(self, node: cst.BinaryOperation) -> bool:
        """`exp(a) / sum(exp(b))` written out, the sum maybe reshaped (`.unsqueeze(1)`)."""
        if not isinstance(node.operator, cst.Divide) or not self._is_exp(node.left):
            return False
        total = node.right
        while (
            isinstance(total, cst.Call)
            and isinstance(total.func, cst.Attribute)
            and total.func.attr.value in KEEPING_METHODS
        ):
            total = total.func.value
        if not isinstance(total, cst.Call):
            return False
        if self.index.call_name(total) == "torch.sum" and total.args:
            return self._is_exp(total.args[0].value)
        func = total.func
        return (
            isinstance(func, cst.Attribute)
            and func.attr.value == "sum"
            and self._is_exp(func.value)
        )

    def _is_exp(self, node: cst.BaseExpression) -> bool:
        if not isinstance(node, cst.Call):
            return False
        if self.index.call_name(node) in EXP_FUNCTIONS:
            return True
        func = node.func
        return isinstance(func, cst.Attribute) and func.attr.value == "exp" and not node.args

    def _call_value(self, call: cst.Call, scope: _Scope, path: _Path, depth: int) -> Value:
        name = self.index.call_name(call)
        if name in OUTPUT_FUNCTIONS:
            return Output(OUTPUT_FUNCTIONS[name], call)
        if name in LOG_FUNCTIONS:
            operand = input_of(call)
            inner = self._value(operand, scope, path, depth + 1) if operand is not None else None
            return Output(LOG_SOFTMAX, call) if is_kind(inner, SOFTMAX) else None
        if name in EXP_FUNCTIONS:
            operand = input_of(call)
            inner = self._value(operand, scope, path, depth + 1) if operand is not None else None
            return Output(SOFTMAX, call) if is_kind(inner, LOG_SOFTMAX) else None
        if name == F + "linear":
            return Output(LOGITS, call)
        if name == DATA_PARALLEL and call.args:  # `data_parallel(self.main, x, gpus)`
            return self._module_call(call.args[0].value, call, scope)
        if name is not None:
            return None  # another torch function: the values mean something else
        func = call.func
        if self_attribute(func) is not None:
            return self._module_call(func, call, scope)
        if isinstance(func, cst.Name) and func.value == "self":
            return Ref("", scope.function, scope.cls.name if scope.cls else None)
        if isinstance(func, cst.Attribute):
            method = func.attr.value
            if method in OUTPUT_METHODS:
                return Output(OUTPUT_METHODS[method], call)
            if method == "exp" and not call.args:
                inner = self._value(func.value, scope, path, depth + 1)
                return Output(SOFTMAX, call) if is_kind(inner, LOG_SOFTMAX) else None
            if method in KEEPING_METHODS:
                return self._value(func.value, scope, path, depth + 1)
        key = dotted_name(func)
        return Ref(key, scope.function, scope.cls.name if scope.cls else None) if key else None


def _extends(index: TorchIndex, value: cst.BaseExpression, key: str) -> bool:
    """`self.model = nn.Sequential(self.model, nn.Sigmoid())`: a container around itself."""
    return (
        isinstance(value, cst.Call)
        and index.call_name(value) == tables.SEQUENTIAL
        and any(dotted_name(arg.value) == key for arg in value.args)
    )


def _is_report(value: cst.BaseExpression | None) -> bool:
    """`print(...)`, `logger.info(...)`, `writer.add_scalar(...)`: shown, never backpropagated."""
    if not isinstance(value, cst.Call):
        return False
    func = value.func
    if isinstance(func, cst.Name):
        return func.value == "print"
    return isinstance(func, cst.Attribute) and func.attr.value in REPORT_METHODS


def _positional(call: cst.Call) -> tuple[cst.BaseExpression, ...]:
    """The first positional arguments of a call, up to the first `*args`."""
    found: list[cst.BaseExpression] = []
    for arg in call.args:
        if arg.keyword is not None or arg.star or len(found) == _ARGUMENTS:
            break
        found.append(arg.value)
    return tuple(found)


def _literal_index(node: cst.Subscript) -> int | None:
    """`i` for `x[i]` with a literal integer `i` (negative included), else None."""
    if len(node.slice) != 1 or not isinstance(node.slice[0].slice, cst.Index):
        return None
    value = node.slice[0].slice.value
    sign = 1
    if isinstance(value, cst.UnaryOperation) and isinstance(value.operator, cst.Minus):
        sign, value = -1, value.expression
    if isinstance(value, cst.Integer):
        return sign * int(value.evaluated_value)
    return None


def _function_name(index: TorchIndex, node: cst.BaseExpression) -> str | None:
    """ "function:<qualified name>" for a function named without calling it (`F.nll_loss`)."""
    if isinstance(node, (cst.Name, cst.Attribute)):
        qualified = index.qualified(node)
        return f"function:{qualified}" if qualified is not None else None
    return None


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
