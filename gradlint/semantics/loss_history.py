"""Losses kept with their autograd history across the passes of a training loop.

`total += loss`, `total = total + loss` and `losses.append(loss)` inside a loop that
backpropagates `loss` link every pass's graph to a variable that outlives the pass. One walk
over each function's statements (never every expression node) gathers the loops, the
`backward()` calls, the assignments and the accumulations; anything not visible in the
function itself (a loss returned by a helper of unknown kind, an accumulator kept in a
container) gives no finding.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Union

import libcst as cst

from gradlint.semantics import tables
from gradlint.semantics.grad_mode import switches_grad_off
from gradlint.semantics.index import TorchIndex
from gradlint.semantics.names import child_blocks, dotted_name
from gradlint.semantics.nodes import findall

Loop = Union[cst.For, cst.While]

# calls and attributes that turn a loss into a value without history
_DETACHING_METHODS = frozenset({"item", "detach", "tolist", "numpy", "cpu"})
_DETACHING_FUNCTIONS = frozenset({"float", "int", "round"})
_BACKWARD_CALLERS = frozenset({"backward", "manual_backward"})  # `accelerator.backward(loss)`
_LOSS_CLASS_SUFFIX = "Loss"
_MAX_DERIVED = 4  # `total = sum(losses)`, `mean = total / n`...: hops followed to a backward


@dataclass(frozen=True)
class Accumulation:
    """`acc += loss` (or `acc = acc + loss`, `acc.append(loss)`) keeping `loss`'s graph."""

    node: cst.CSTNode  # the AugAssign / Assign / append call
    accumulator: str
    loss: cst.Name  # the loss as it is written in the accumulation
    form: str  # "+=", "+" or "append"
    # `.item()` keeps the program's types (the accumulator is a plain number otherwise)
    plain_number: bool


@dataclass
class _Statement:
    node: cst.BaseSmallStatement
    loops: tuple[Loop, ...]
    block: Sequence[cst.CSTNode]  # the statement list holding it (`with` bodies left out)
    no_grad: bool


@dataclass
class _Scope:
    """One function's (or the module's) statements, in source order."""

    statements: list[_Statement] = field(default_factory=list)
    bodies: dict[int, Sequence[cst.CSTNode]] = field(default_factory=dict)  # id(loop) -> body
    params: set[str] = field(default_factory=set)


def graph_accumulations(index: TorchIndex) -> list[Accumulation]:
    """Every accumulation, in any function of the file, of a loss that the same loop
    backpropagates, into a variable that survives the pass."""
    found: list[Accumulation] = []
    for scope in _scopes(index):
        found.extend(_in_scope(index, scope))
    return found


# -- the walk ------------------------------------------------------------------------------


def _scopes(index: TorchIndex) -> Iterator[_Scope]:
    pending: list[tuple[Sequence[cst.CSTNode], set[str], bool]] = [
        (index.module.body, set(), False)
    ]
    while pending:
        body, params, no_grad = pending.pop()
        scope = _Scope(params=params)
        for function in _collect(index, body, scope, (), body, no_grad):
            names = {p.name.value for p in function.params.params}
            names |= {p.name.value for p in function.params.kwonly_params}
            off = any(switches_grad_off(index, d.decorator) for d in function.decorators)
            pending.append((_body(function), names, off))
        yield scope


def _collect(
    index: TorchIndex,
    statements: Sequence[cst.CSTNode],
    scope: _Scope,
    loops: tuple[Loop, ...],
    block: Sequence[cst.CSTNode],
    no_grad: bool,
) -> Iterator[cst.FunctionDef]:
    """Fill `scope` with the simple statements of `statements`; yield nested functions."""
    for statement in statements:
        if isinstance(statement, cst.SimpleStatementLine):
            for small in statement.body:
                scope.statements.append(_Statement(small, loops, block, no_grad))
        elif isinstance(statement, cst.BaseSmallStatement):
            scope.statements.append(_Statement(statement, loops, block, no_grad))
        elif isinstance(statement, cst.FunctionDef):
            yield statement
        elif isinstance(statement, cst.ClassDef):
            for inner in child_blocks(statement):
                for node in inner:
                    if isinstance(node, cst.FunctionDef):
                        yield node
        elif isinstance(statement, (cst.For, cst.While)):
            inner_loops = (*loops, statement)
            for i, inner in enumerate(child_blocks(statement)):
                if i == 0:
                    scope.bodies[id(statement)] = inner
                yield from _collect(
                    index, inner, scope, inner_loops if i == 0 else loops, inner, no_grad
                )
        elif isinstance(statement, cst.With):
            quiet = no_grad or any(switches_grad_off(index, item.item) for item in statement.items)
            for inner in child_blocks(statement):
                yield from _collect(index, inner, scope, loops, block, quiet)
        elif isinstance(statement, cst.BaseCompoundStatement):
            for inner in child_blocks(statement):
                yield from _collect(index, inner, scope, loops, inner, no_grad)


def _body(function: cst.FunctionDef) -> Sequence[cst.CSTNode]:
    return next(iter(child_blocks(function)), [])


# -- one scope -----------------------------------------------------------------------------


def _in_scope(index: TorchIndex, scope: _Scope) -> Iterator[Accumulation]:
    # `loss.backward()` is a statement of its own; looking only there keeps the walk cheap
    backwards = [
        (s, target)
        for s in scope.statements
        if isinstance(s.node, cst.Expr)
        and isinstance(s.node.value, cst.Call)
        and (target := _backward_target(s.node.value)) is not None
    ]
    if not backwards:
        return  # nothing backpropagated here: no loss is known to carry a graph
    assigned = _assignments(scope)
    criteria = _criteria(index, assigned)
    for statement in scope.statements:
        if statement.no_grad or not statement.loops:
            continue  # no graph is recorded, or not repeated
        found = _accumulation(statement.node)
        if found is None:
            continue
        accumulator, loss, form = found
        loop = _backpropagating_loop(index, scope, statement, loss, backwards, assigned, criteria)
        if loop is None:
            continue  # the loss is not known to carry this pass's graph
        if _reset_every_pass(scope, statement, accumulator, loop, assigned):
            continue  # a fresh accumulator in every pass: nothing outlives it
        if _backpropagated(accumulator, loss.value, loop, backwards, assigned):
            continue  # the sum is the loss: TBPTT or accumulation over chunks, on purpose
        if _detached_in_loop(loss.value, loop, assigned):
            continue  # `loss = loss.item()` somewhere in the pass: the name is reused
        plain = _plain_number(index, scope, accumulator, statement, form, assigned)
        yield Accumulation(statement.node, accumulator, loss, form, plain)


def _accumulation(node: cst.BaseSmallStatement) -> tuple[str, cst.Name, str] | None:
    """(accumulator, loss name, form) of `a += loss`, `a = a + loss`, `a.append(loss)`."""
    if isinstance(node, cst.AugAssign) and isinstance(node.operator, cst.AddAssign):
        key, loss = dotted_name(node.target), _loss_operand(node.value)
        return (key, loss, "+=") if key is not None and loss is not None else None
    if isinstance(node, cst.Assign) and len(node.targets) == 1:
        key = dotted_name(node.targets[0].target)
        value = node.value
        if key is None or not isinstance(value, cst.BinaryOperation):
            return None
        if not isinstance(value.operator, cst.Add):
            return None
        for mine, other in ((value.left, value.right), (value.right, value.left)):
            if dotted_name(mine) == key and (loss := _loss_operand(other)) is not None:
                return key, loss, "+"
        return None
    if isinstance(node, cst.Expr) and isinstance(node.value, cst.Call):
        call = node.value
        if not isinstance(call.func, cst.Attribute) or call.func.attr.value != "append":
            return None
        key = dotted_name(call.func.value)
        if key is None or len(call.args) != 1 or call.args[0].keyword is not None:
            return None
        loss = _loss_operand(call.args[0].value)
        return (key, loss, "append") if loss is not None else None
    return None


def _loss_operand(expr: cst.BaseExpression) -> cst.Name | None:
    """`loss`, `loss * x.size(0)`, `w * loss`, `loss / n`: a name whose graph comes along."""
    if isinstance(expr, cst.Name):
        return expr
    if isinstance(expr, cst.BinaryOperation) and isinstance(
        expr.operator, (cst.Multiply, cst.Divide)
    ):
        if isinstance(expr.left, cst.Name):
            return expr.left
        if isinstance(expr.right, cst.Name) and isinstance(expr.operator, cst.Multiply):
            return expr.right
    return None


def _backward_target(call: cst.Call) -> str | None:
    """`loss` in `loss.backward()`, `scaler.scale(loss).backward()`, `(loss / k).backward()`,
    `loss.mean().backward()`, `accelerator.backward(loss)`."""
    if not isinstance(call.func, cst.Attribute) or call.func.attr.value not in _BACKWARD_CALLERS:
        return None
    positional = [a.value for a in call.args if a.keyword is None and not a.star]
    if positional and isinstance(positional[0], cst.Name):
        return positional[0].value  # `accelerator.backward(loss)`, `engine.backward(loss)`
    return _root_name(call.func.value)


def _root_name(expr: cst.BaseExpression) -> str | None:
    """The tensor an expression starts from: `loss` in `scaler.scale(loss)`, `loss / k`."""
    if isinstance(expr, cst.Name):
        return expr.value
    if isinstance(expr, cst.BinaryOperation):
        return _root_name(expr.left)
    if isinstance(expr, cst.Call):
        if isinstance(expr.func, cst.Attribute) and expr.func.attr.value in ("mean", "sum"):
            return _root_name(expr.func.value)  # `loss.mean().backward()`
        args = [a.value for a in expr.args if a.keyword is None and not a.star]
        if len(args) == 1 and isinstance(expr.func, cst.Attribute):
            return _root_name(args[0])  # `scaler.scale(loss)`
    return None


Assigned = dict[str, list[tuple[_Statement, cst.BaseExpression]]]


def _assignments(scope: _Scope) -> Assigned:
    found: Assigned = {}
    for statement in scope.statements:
        node = statement.node
        targets: list[cst.BaseExpression] = []
        value: cst.BaseExpression | None = None
        if isinstance(node, cst.Assign):
            targets, value = [t.target for t in node.targets], node.value
        elif isinstance(node, cst.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        if value is None:
            continue
        for target in targets:
            elements = target.elements if isinstance(target, (cst.Tuple, cst.List)) else [target]
            for element in elements:
                inner = element.value if isinstance(element, cst.BaseElement) else element
                key = dotted_name(inner)
                if key is not None:
                    found.setdefault(key, []).append((statement, value))
    return found


def _criteria(index: TorchIndex, assigned: Assigned) -> set[str]:
    """Names bound to a torch loss module: `criterion = nn.CrossEntropyLoss()`."""
    return {
        key
        for key, values in assigned.items()
        if any(_is_loss_class(index.call_name(v)) for _, v in values)
    }


def _is_loss_class(name: str | None) -> bool:
    return name is not None and name.startswith(tables.NN) and name.endswith(_LOSS_CLASS_SUFFIX)


def _is_loss_call(index: TorchIndex, value: cst.BaseExpression, criteria: set[str]) -> bool:
    """`F.cross_entropy(...)`, `criterion(...)` for a torch criterion of this function."""
    if not isinstance(value, cst.Call):
        return False
    name = index.call_name(value)
    if name is not None and name.startswith(tables.F) and "loss" in name.rsplit(".", 1)[-1]:
        return True
    if name is not None and name.startswith(tables.F) and name.endswith("cross_entropy"):
        return True
    return dotted_name(value.func) in criteria


def _backpropagating_loop(
    index: TorchIndex,
    scope: _Scope,
    statement: _Statement,
    loss: cst.Name,
    backwards: list[tuple[_Statement, str]],
    assigned: Assigned,
    criteria: set[str],
) -> Loop | None:
    """The loop whose every pass computes the accumulated `loss` afresh and backpropagates
    it (or, for a torch criterion's result, backpropagates anything): the innermost loop of
    the assignment that reaches the accumulation."""
    order = {id(s): i for i, s in enumerate(scope.statements)}
    here = order[id(statement)]
    before = [(s, v) for s, v in assigned.get(loss.value, []) if order[id(s)] < here]
    if not before:
        return None  # bound in an earlier pass, or by a `for` target: not followed
    reaching, value = before[-1]
    if reaching.no_grad:
        return None  # computed under no_grad / inference_mode: it has no graph
    if not reaching.loops or reaching.loops[-1] not in statement.loops:
        return None  # computed outside the accumulating loop
    loop = reaching.loops[-1]
    same_pass = [target for s, target in backwards if s.loops and s.loops[-1] is loop]
    if loss.value in same_pass:
        return loop
    if same_pass and _is_loss_call(index, value, criteria):
        return loop
    return None


def _reset_every_pass(
    scope: _Scope, statement: _Statement, accumulator: str, loop: Loop, assigned: Assigned
) -> bool:
    """The accumulator is bound anew, unconditionally, in every pass of `loop`."""
    body = scope.bodies.get(id(loop))
    for other, _ in assigned.get(accumulator, []):
        if other is statement or loop not in other.loops:
            continue
        if other.block is body:
            return True
    return False


def _backpropagated(
    accumulator: str,
    loss: str,
    loop: Loop,
    backwards: list[tuple[_Statement, str]],
    assigned: Assigned,
) -> bool:
    """The accumulator, or a value built from it, is backpropagated somewhere here (the
    pass's own `loss.backward()` aside, even when `loss = total / n` follows the loop)."""
    names = _derived(accumulator, assigned)
    others = [(s, t) for s, t in backwards if not (loop in s.loops and t == loss)]
    return any(t in names or _mentions(s.node, names) for s, t in others)


def _derived(accumulator: str, assigned: Assigned) -> set[str]:
    """The accumulator and the names bound to values built from it (`avg = total / n`)."""
    names = {accumulator}
    for _ in range(_MAX_DERIVED):
        grown = {
            key for key, values in assigned.items() if any(_mentions(v, names) for _, v in values)
        }
        if grown <= names:
            break
        names |= grown
    return names


def _mentions(node: cst.CSTNode, names: set[str]) -> bool:
    for found in findall(node, (cst.Name, cst.Attribute)):
        key = dotted_name(found)  # type: ignore[arg-type]
        if key in names:
            return True
    return False


def _detached_in_loop(name: str, loop: Loop, assigned: Assigned) -> bool:
    return any(loop in s.loops and _is_detaching(value) for s, value in assigned.get(name, []))


def _is_detaching(value: cst.BaseExpression) -> bool:
    if isinstance(value, cst.Attribute):
        return value.attr.value == "data"
    if not isinstance(value, cst.Call):
        return False
    if isinstance(value.func, cst.Attribute):
        return value.func.attr.value in _DETACHING_METHODS
    return isinstance(value.func, cst.Name) and value.func.value in _DETACHING_FUNCTIONS


def _plain_number(
    index: TorchIndex,
    scope: _Scope,
    accumulator: str,
    statement: _Statement,
    form: str,
    assigned: Assigned,
) -> bool:
    """The accumulator starts as a number literal and is never used as a tensor (no method,
    no torch call, not returned), so `.item()` changes nothing but the history."""
    if form == "append" or "." in accumulator:
        return False
    starts = [v for s, v in assigned.get(accumulator, []) if s is not statement]
    if not any(isinstance(v, (cst.Integer, cst.Float)) for v in starts):
        return False  # no number to start from: it may be a tensor on purpose
    if not all(
        isinstance(v, (cst.Integer, cst.Float)) or _mentions(v, {accumulator}) for v in starts
    ):
        return False  # also bound to something else
    names = _derived(accumulator, assigned)
    for other in scope.statements:
        node = other.node
        if other is statement:
            continue
        if isinstance(node, cst.Return) and node.value is not None:
            if _mentions(node.value, names):
                return False  # the caller may treat it as a tensor
        for attr in findall(node, cst.Attribute):
            if dotted_name(cst.ensure_type(attr, cst.Attribute).value) in names:
                return False  # `total.item()`, `avg.cpu()`
        for call in _calls(node):
            name = index.call_name(call)
            if (name or "").startswith("torch") and _mentions(call, names):
                return False  # `dist.all_reduce(total)`
    return True


def _calls(node: cst.CSTNode) -> Iterator[cst.Call]:
    for call in findall(node, cst.Call):
        yield cst.ensure_type(call, cst.Call)
