"""Optimizers that clear gradients every pass and are never stepped anywhere in the file.

The GAN trainer's shape: `optimizer_D.zero_grad(); loss_D.backward()` in the discriminator's
loop while only `optimizer_G.step()` is ever called. Every use of the optimizer in the file is
read; anything that could step it out of sight (handing it to code of another file, keeping
it in a list, a base class from elsewhere) keeps the answer "unknown" and nothing is said.
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from gradlint.semantics import tables
from gradlint.semantics.names import dotted_name
from gradlint.semantics.nodes import findall
from gradlint.semantics.training import TrainingFacts
from gradlint.semantics.training_extra import local_function
from gradlint.semantics.training_walk import Event, receiver, starts

# what reading or configuring an optimizer looks like; none of it updates a weight
_HARMLESS_ATTRIBUTES = frozenset(
    {
        "zero_grad",
        "param_groups",
        "state_dict",
        "load_state_dict",
        "add_param_group",
        "defaults",
        "state",
    }
)
_PLAIN_BASES = frozenset({"object", "Module", "nn.Module", "torch.nn.Module"})


@dataclass(frozen=True)
class Unstepped:
    backward: cst.Call
    optimizer: str  # as written: `optimizer_D`, `self.opt_d`


def unstepped_optimizers(facts: TrainingFacts) -> list[Unstepped]:
    """The `backward()` that follows, in the same loop, the `zero_grad()` of an optimizer
    built in this file that nothing in the file ever steps."""
    found: list[Unstepped] = []
    verdicts: dict[str, bool] = {}
    for function, events in facts.walk.events.items():
        for i, event in enumerate(events):
            if event.kind != "zero_grad" or not event.loops:
                continue
            key = dotted_name(receiver(event.call))
            if key is None:
                continue
            is_optimizer, built = facts.optimizer(receiver(event.call), function)
            if not is_optimizer or built is None:
                continue  # only optimizers whose construction this file shows
            if key not in verdicts:
                verdicts[key] = _never_stepped(facts, key, function)
            if not verdicts[key]:
                continue
            backward = _next_backward(events[i + 1 :], event, key)
            if backward is not None and all(f.backward is not backward for f in found):
                found.append(Unstepped(backward, key))
    return found


def _next_backward(later: list[Event], clear: Event, key: str) -> cst.Call | None:
    """The first `backward()` after the clearing, in the same loops, before it clears again."""
    for event in later:
        if event.kind == "zero_grad" and dotted_name(receiver(event.call)) == key:
            return None
        if event.kind == "backward" and event.loops == clear.loops:
            return event.call
    return None


def _never_stepped(facts: TrainingFacts, key: str, function: cst.FunctionDef | None) -> bool:
    """Every use of `key` in the file is known, and none of them may step it."""
    if key.startswith("self.") and not _plain_class(facts, function):
        return False  # a base class of another file may step it
    uses = _Uses(key)
    facts.index.module.visit(uses)
    if uses.unknown:
        return False
    for call in uses.passed_to:
        if not _harmless_call(facts, call):
            return False
    return True


def _plain_class(facts: TrainingFacts, function: cst.FunctionDef | None) -> bool:
    owner = facts.walk.owner.get(function) if function is not None else None
    cls = facts.index.classes.get(owner) if owner is not None else None
    if cls is None:
        return False
    return all(dotted_name(base.value) in _PLAIN_BASES for base in cls.bases)


def _harmless_call(facts: TrainingFacts, call: cst.Call) -> bool:
    """A scheduler built over the optimizer, or a helper of this file that never steps."""
    name = facts.index.call_name(call)
    if starts(name, tables.SCHEDULER_PREFIXES):
        return True
    helper = local_function(facts.index, call)
    if helper is not None:
        return not any(
            isinstance(node, cst.Attribute) and node.attr.value in ("step", "update")
            for node in findall(helper, cst.Attribute)
        )
    return False


class _Uses(cst.CSTVisitor):
    """Sorts every occurrence of the expression `key` in the file."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.unknown = False
        self.passed_to: list[cst.Call] = []
        self._stack: list[cst.CSTNode] = []

    def on_visit(self, node: cst.CSTNode) -> bool:
        if self.unknown:
            return False
        if isinstance(node, (cst.Name, cst.Attribute)) and self._is_key(node):
            self._sort(node)
            return False
        self._stack.append(node)
        return True

    def on_leave(self, original_node: cst.CSTNode) -> None:
        if self._stack and self._stack[-1] is original_node:
            self._stack.pop()

    def _is_key(self, node: cst.CSTNode) -> bool:
        parent = self._stack[-1] if self._stack else None
        if isinstance(parent, cst.Attribute) and parent.attr is node:
            return False  # `args.optimizer_D`: another object's attribute of the same name
        return dotted_name(node) == self.key  # type: ignore[arg-type]

    def _sort(self, node: cst.CSTNode) -> None:
        parent = self._stack[-1] if self._stack else None
        grand = self._stack[-2] if len(self._stack) > 1 else None
        if isinstance(parent, cst.Attribute) and parent.value is node:
            if parent.attr.value not in _HARMLESS_ATTRIBUTES:
                self.unknown = True  # `.step`, or anything else done with it
        elif isinstance(parent, cst.AssignTarget) or isinstance(parent, cst.Param):
            return  # where it is bound
        elif isinstance(parent, cst.Arg) and isinstance(grand, cst.Call):
            self.passed_to.append(grand)
        else:
            self.unknown = True  # in a list, returned, aliased, compared: out of sight
