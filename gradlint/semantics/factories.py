"""What a function of this file returns, so a variable filled by a call to it can be followed.

Course notebooks build the model, loss and optimizer in one function and unpack them at every
experiment (`net, lossfun, optimizer = createTheNet()`); to see what `net.fc1` is, the
constructor behind `net` has to come out of that function's `return`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import chain

import libcst as cst

from gradlint.semantics.index import PerFile, TorchIndex
from gradlint.semantics.names import child_blocks


def returned_elements(index: TorchIndex, call: cst.Call) -> list[cst.BaseExpression] | None:
    """The values a call to a function of this file returns, one per element of a returned
    tuple (a single value otherwise), each local name replaced by what the function last
    assigned to it; None when the callee is not a function here or returns in several places."""
    if not isinstance(call.func, cst.Name) or call.func.value in index.classes:
        return None
    function = index.functions.get(call.func.value)
    if function is None:
        return None
    summary = _summaries(index).get(function)
    if summary is None:
        summary = _summaries(index)[function] = _summary(function)
    value, assigned = summary
    if value is None:
        return None  # no return, or several exits that may return different things
    items = [e.value for e in value.elements] if isinstance(value, cst.Tuple) else [value]
    return [assigned.get(i.value, i) if isinstance(i, cst.Name) else i for i in items]


_Summary = tuple[cst.BaseExpression | None, dict[str, cst.BaseExpression]]
_CACHE: PerFile[dict[cst.FunctionDef, _Summary]] = PerFile("factories._CACHE")


def _summaries(index: TorchIndex) -> dict[cst.FunctionDef, _Summary]:
    return _CACHE.setdefault(index, {})


def _summary(function: cst.FunctionDef) -> _Summary:
    """(the one returned value, or None; what each local name was last assigned). Reads the
    statements alone, never every expression node: factories are often long functions."""
    returns: list[cst.BaseExpression] = []
    assigned: dict[str, cst.BaseExpression] = {}
    for small in _small_statements(function.body.body):
        if isinstance(small, cst.Return) and small.value is not None:
            returns.append(small.value)
        elif isinstance(small, cst.Assign):
            for target in small.targets:
                if isinstance(target.target, cst.Name):
                    assigned[target.target.value] = small.value
    return (returns[0] if len(returns) == 1 else None), assigned


def _small_statements(body: Sequence[cst.CSTNode]) -> Iterator[cst.CSTNode]:
    """The simple statements of a body and its blocks, not those of nested functions/classes."""
    stack: list[Iterator[cst.CSTNode]] = [iter(body)]
    while stack:
        statement = next(stack[-1], None)
        if statement is None:
            stack.pop()
        elif isinstance(statement, cst.SimpleStatementLine):
            yield from statement.body
        elif isinstance(statement, cst.BaseSmallStatement):
            yield statement  # `def f(): return x` on one line
        elif isinstance(statement, (cst.FunctionDef, cst.ClassDef)):
            continue
        elif isinstance(statement, cst.BaseCompoundStatement):
            stack.append(chain.from_iterable(child_blocks(statement)))


def unpacked(
    index: TorchIndex, target: cst.BaseExpression, value: cst.BaseExpression
) -> dict[str, cst.BaseExpression]:
    """{`net`: `MnistNet()`} for `net, loss_fn, opt = build()` where `build` returns a net it
    constructed; empty when nothing is known."""
    if not (isinstance(target, (cst.Tuple, cst.List)) and isinstance(value, cst.Call)):
        return {}
    got = returned_elements(index, value)
    if got is None or len(got) != len(target.elements):
        return {}
    return {
        element.value.value: item
        for element, item in zip(target.elements, got)
        if isinstance(element.value, cst.Name) and not isinstance(element, cst.StarredElement)
    }
