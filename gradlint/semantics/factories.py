"""What a function of this file returns, so a variable filled by a call to it can be followed.

Course notebooks build the model, loss and optimizer in one function and unpack them at every
experiment (`net, lossfun, optimizer = createTheNet()`); to see what `net.fc1` is, the
constructor behind `net` has to come out of that function's `return`.
"""

from __future__ import annotations

import libcst as cst

from gradlint.semantics.index import TorchIndex
from gradlint.semantics.nodes import find


def returned_elements(index: TorchIndex, call: cst.Call) -> list[cst.BaseExpression] | None:
    """The values a call to a function of this file returns, one per element of a returned
    tuple (a single value otherwise), each local name replaced by what the function last
    assigned to it; None when the callee is not a function here or returns in several places."""
    if not isinstance(call.func, cst.Name) or call.func.value in index.classes:
        return None
    function = index.functions.get(call.func.value)
    if function is None:
        return None
    returns = [r for r in find(function.body, cst.Return, into_functions=False) if r.value]
    if len(returns) != 1:
        return None  # several exits may return different things
    value = returns[0].value
    assert value is not None
    items = [e.value for e in value.elements] if isinstance(value, cst.Tuple) else [value]
    assigned: dict[str, cst.BaseExpression] = {}
    for assign in find(function.body, cst.Assign, into_functions=False):
        for target in assign.targets:
            if isinstance(target.target, cst.Name):
                assigned[target.target.value] = assign.value
    return [assigned.get(i.value, i) if isinstance(i, cst.Name) else i for i in items]


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
