"""One walk of the syntax tree that calls every rule's visit_<Node> / leave_<Node>.

libcst's own visitor rebuilds each node's children and visits every token and piece of
whitespace; rules never look at those. This walk reads the node fields directly and skips
trivia (whitespace, commas, brackets, operator tokens), which makes it several times faster
while giving the same visit/leave nesting for every node a rule can ask for.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

import libcst as cst

from gradlint.interrupts import stop_behind
from gradlint.rule import Rule
from gradlint.semantics.nodes import NODE_TYPES, TRIVIA, child_fields

Handler = Callable[[cst.CSTNode], object]


class Dispatcher:
    """Runs the handlers of several rules in one walk; a rule that raises is switched off."""

    def __init__(self, rules: Sequence[Rule], on_crash: Callable[[Rule, str], None]) -> None:
        self.rules = list(rules)
        self.crashed: set[Rule] = set()
        self.on_crash = on_crash
        self._build_tables()

    def _build_tables(self) -> None:
        self.visits: dict[str, list[tuple[Rule, Handler]]] = {}
        self.leaves: dict[str, list[tuple[Rule, Handler]]] = {}
        for rule in self.rules:
            if rule in self.crashed:
                continue
            for attr in handler_names(type(rule)):
                table = self.visits if attr.startswith("visit_") else self.leaves
                table.setdefault(attr.split("_", 1)[1], []).append((rule, getattr(rule, attr)))
        wanted = set(self.visits) | set(self.leaves)
        self.skip = frozenset(cls for cls in TRIVIA if cls.__name__ not in wanted)
        self.walkable = NODE_TYPES - self.skip
        self.plans: dict[type, tuple[str, ...]] = {}

    def walk(self, root: cst.CSTNode) -> None:
        """Visit `root` and everything below it; iterative, so depth costs no call stack."""
        stack: list[cst.CSTNode | tuple[cst.CSTNode]] = [root]
        pop, push, extend = stack.pop, stack.append, stack.extend
        while stack:
            item = pop()
            if isinstance(item, tuple):  # its children are done: time to leave it
                for rule, handler in self.leaves.get(type(item[0]).__name__, ()):
                    self._call(rule, handler, item[0])
                continue
            node = item
            cls = type(node)
            name = cls.__name__
            handlers = self.visits.get(name)
            if handlers:
                for rule, handler in handlers:
                    self._call(rule, handler, node)
            if name in self.leaves:
                push((node,))
            plan = self.plans.get(cls)  # the tables are rebuilt when a rule crashes
            if plan is None:
                plan = self.plans[cls] = child_fields(cls, self.skip)
            walkable = self.walkable
            kids: list[cst.CSTNode] = []
            for field in plan:
                value = getattr(node, field)
                kind = type(value)
                if kind is tuple or kind is list:
                    kids.extend(item for item in value if type(item) in walkable)
                elif kind in walkable:
                    kids.append(value)
            if kids:
                kids.reverse()
                extend(kids)

    def _call(self, rule: Rule, handler: Handler, node: cst.CSTNode) -> None:
        if rule in self.crashed:
            return
        try:
            handler(node)
        except RecursionError:
            raise  # the file is too deep for this stack: the engine's per-file boundary decides
        except Exception as exc:  # the per-rule boundary: one broken rule must not stop the rest
            stop = stop_behind(exc)
            if stop is not None:
                raise stop from exc  # an interrupt or timeout in disguise: never a rule's bug
            last = traceback.extract_tb(exc.__traceback__)[-1]
            where = f"{Path(last.filename).name}:{last.lineno}"
            self._crash(rule, f"{type(exc).__name__}: {exc} (at {where})")

    def _crash(self, rule: Rule, reason: str) -> None:
        self.crashed.add(rule)
        self.on_crash(rule, reason)
        self._build_tables()


_HANDLERS: dict[type[Rule], tuple[str, ...]] = {}


def handler_names(rule: type[Rule]) -> tuple[str, ...]:
    names = _HANDLERS.get(rule)
    if names is None:
        names = tuple(
            attr
            for attr in dir(rule)
            if attr.startswith(("visit_", "leave_")) and callable(getattr(rule, attr))
        )
        _HANDLERS[rule] = names
    return names
