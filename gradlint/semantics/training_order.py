"""The order of events inside one training step: what runs between `backward()` and the
optimizer's `step()` of the same pass.

Works on the per-function event lists of `training_walk`; an event behind its own `if`, or a
call of a helper of this file that may backpropagate, makes the order unknowable and nothing
is reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from gradlint.semantics.names import dotted_name
from gradlint.semantics.nodes import findall
from gradlint.semantics.training import OptimizerCall, TrainingFacts, parameters_calls
from gradlint.semantics.training_walk import Event, Function, receiver


@dataclass(frozen=True)
class ClearedBeforeStep:
    """`backward()`, then a `zero_grad()` that wipes what it computed, then `step()`."""

    zero_grad: cst.Call
    step: cst.Call
    optimizer: cst.BaseExpression


def cleared_before_step(facts: TrainingFacts) -> list[ClearedBeforeStep]:
    """Every optimizer step whose gradients were cleared after the last `backward()`."""
    found: list[ClearedBeforeStep] = []
    for function, events in facts.walk.events.items():
        for i, event in enumerate(events):
            if event.kind != "step":
                continue
            stepped = facts.stepped_optimizer(event.call, function)
            if stepped is None:
                continue  # `scheduler.step()`, `env.step()`
            hit = _clearing_before(facts, function, events[:i], event, *stepped)
            if hit is not None:
                found.append(ClearedBeforeStep(hit.call, event.call, stepped[0]))
    return found


def _clearing_before(
    facts: TrainingFacts,
    function: Function,
    before: list[Event],
    step: Event,
    optimizer: cst.BaseExpression,
    built: OptimizerCall | None,
) -> Event | None:
    """The `zero_grad()` of this optimizer that runs, in the step's pass, after the pass's
    `backward()` and before the step; None when there is none or the order is unknown."""
    for j in range(len(before) - 1, -1, -1):
        event = before[j]
        if event.kind in ("backward", "step") or _may_backpropagate(facts, event):
            return None  # a fresh backward (or a helper that may run one) comes first
        if event.kind != "zero_grad" or not _clears(event.call, optimizer, built):
            continue
        if not _same_loops(event, step) or not event.runs_whenever(step):
            return None  # behind its own branch, or in another loop: unknowable
        for earlier in reversed(before[:j]):
            if earlier.kind == "step":
                return None  # the pass stepped already; this clearing starts the next one
            if earlier.kind == "backward":
                return event if _same_loops(earlier, step) else None
        return None
    return None


def _may_backpropagate(facts: TrainingFacts, event: Event) -> bool:
    """A helper of this file (`self.compute_loss(batch)`), or anything named like backward."""
    if event.kind != "call":
        return False
    return event.name in facts.walk.callers or "backward" in event.name.lower()


def _clears(call: cst.Call, optimizer: cst.BaseExpression, built: OptimizerCall | None) -> bool:
    """`optimizer.zero_grad()`, or `model.zero_grad()` for an optimizer over that model."""
    owner = dotted_name(receiver(call))
    if owner is None:
        return False
    if owner == dotted_name(optimizer):
        return True
    if built is None or built.params is None:
        return False
    return any(dotted_name(receiver(c)) == owner for c in parameters_calls(built.params))


def _same_loops(a: Event, b: Event) -> bool:
    return len(a.loops) == len(b.loops) and all(x is y for x, y in zip(a.loops, b.loops))


# Attributes whose presence means the gradients may be used without an optimizer step here:
# a step or update of any kind, or `.grad` read by hand (manual SGD, FGSM, saliency maps).
_USES_GRADIENTS = frozenset({"step", "grad", "update", "apply_gradients"})


def backward_without_step(facts: TrainingFacts) -> list[cst.Call]:
    """`backward()` calls in a loop that clears the gradients every pass and never steps an
    optimizer nor reads `.grad`: each pass's gradients are computed and thrown away."""
    found: list[cst.Call] = []
    for function, events in facts.walk.events.items():
        scope: cst.CSTNode | None = function
        for event in events:
            if event.kind != "backward" or not event.loops:
                continue  # one backward outside any loop: a check or an analysis
            region = scope if scope is not None else event.loops[0]
            inner = event.loops[-1]
            if not any(e.kind == "zero_grad" and inner in e.loops for e in events):
                continue  # not cleared every pass: the gradients may be stepped later
            if _uses_gradients(facts, region, events):
                continue
            found.append(event.call)
    return found


def _uses_gradients(facts: TrainingFacts, region: cst.CSTNode, events: list[Event]) -> bool:
    """Anything in `region` (the function, or the module-level loop) that may step, update
    or read the gradients, or hands work to code this file may not show."""
    if any(
        isinstance(node, cst.Attribute) and node.attr.value in _USES_GRADIENTS
        for node in findall(region, cst.Attribute)
    ):
        return True
    for event in events:
        if event.kind != "call":
            continue
        if event.name in facts.index.functions or "step" in event.name.lower():
            return True  # a helper of this file, or `optimizer_step(...)`
        if any(
            (key := dotted_name(arg.value)) is not None and "optim" in key.lower()
            for arg in event.call.args
        ):
            return True  # the optimizer goes to a call that may step it
    return False
