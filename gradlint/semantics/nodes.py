"""Fast, trivia-free iteration over libcst nodes (rules use this instead of sub-visitors).

libcst's visitors rebuild children and visit every token and whitespace node; walking the
dataclass fields directly and skipping trivia is several times faster and sees every node a
rule cares about, in source order.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from bisect import bisect_left
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

import libcst as cst

N = TypeVar("N", bound=cst.CSTNode)


def _all_subclasses(cls: type) -> set[type]:
    found: set[type] = set()
    subclasses: list[type] = cls.__subclasses__()
    for child in subclasses:
        found.add(child)
        found |= _all_subclasses(child)
    return found


_TRIVIA_BASES: tuple[type, ...] = (
    cst.BaseParenthesizableWhitespace,
    cst.Newline,
    cst.EmptyLine,
    cst.TrailingWhitespace,
    cst.Comment,
    cst.Comma,
    cst.Semicolon,
    cst.Colon,
    cst.Dot,
    cst.LeftParen,
    cst.RightParen,
    cst.LeftSquareBracket,
    cst.RightSquareBracket,
    cst.LeftCurlyBrace,
    cst.RightCurlyBrace,
    cst.AssignEqual,
    cst.ImportStar,
    cst.ParamStar,
    cst.ParamSlash,
    cst.BaseBinaryOp,
    cst.BaseUnaryOp,
    cst.BaseBooleanOp,
    cst.BaseCompOp,
    cst.BaseAugOp,
)
TRIVIA: frozenset[type] = frozenset(
    cls for base in _TRIVIA_BASES for cls in (base, *_all_subclasses(base))
)

# Fields visited last, in this order, so that children come in source order.
_LATE = ("body", "orelse", "handlers", "finalbody")
_FIELDS: dict[type, tuple[str, ...]] = {}

# Every concrete node class: `type(x) in NODE_TYPES` is several times cheaper than
# `isinstance(x, cst.CSTNode)`, which goes through the ABC machinery.
NODE_TYPES: frozenset[type] = frozenset(
    cls for cls in _all_subclasses(cst.CSTNode) if not getattr(cls, "__abstractmethods__", None)
)


def fields(cls: type) -> tuple[str, ...]:
    """The fields of a node class in source order (decorators first, bodies last)."""
    order = _FIELDS.get(cls)
    if order is None:
        names = [f.name for f in dataclasses.fields(cls)]
        early = [n for n in names if n == "decorators"]
        middle = [n for n in names if n not in _LATE and n != "decorators"]
        order = tuple(early + middle + [n for n in _LATE if n in names])
        _FIELDS[cls] = order
    return order


def child_fields(cls: type, skip: frozenset[type] = TRIVIA) -> tuple[str, ...]:
    """The fields of `cls`, in source order, that can hold a node whose type is not in `skip`.

    Whitespace, comma and bracket fields are dropped once per class from the declared types,
    so walks never fetch them. A field whose type cannot be read is kept.
    """
    plans = _PLANS.get(skip)
    if plans is None:
        plans = _PLANS[skip] = {}
    plan = plans.get(cls)
    if plan is None:
        try:
            hints = typing.get_type_hints(cls)
        except Exception:  # an annotation that does not resolve: keep every field
            hints = {}
        plan = tuple(
            name for name in fields(cls) if name not in hints or _may_hold(hints[name], skip)
        )
        plans[cls] = plan
    return plan


_PLANS: dict[frozenset[type], dict[type, tuple[str, ...]]] = {}
_PLAN = _PLANS.setdefault(TRIVIA, {})  # the plans for the default skip set, read directly


def _may_hold(hint: object, skip: frozenset[type]) -> bool:
    """Whether a field annotated `hint` can hold a node class outside `skip`."""
    if isinstance(hint, type):
        if not issubclass(hint, cst.CSTNode):
            return False
        return any(cls not in skip for cls in (hint, *_all_subclasses(hint)))
    args = typing.get_args(hint)
    if not args:
        return not isinstance(hint, (str, typing.TypeVar)) and hint is not None
    return any(_may_hold(arg, skip) for arg in args)


def children(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """Direct children that are not trivia, in source order."""
    cls = type(node)
    plan = _PLAN.get(cls)
    if plan is None:
        plan = child_fields(cls)
    for name in plan:
        value = getattr(node, name)
        kind = type(value)
        if kind is tuple or kind is list:
            for item in value:
                if type(item) in _WALKABLE:
                    yield item
        elif kind in _WALKABLE:
            yield value


_WALKABLE: frozenset[type] = NODE_TYPES - TRIVIA


# bodies that do not run when the code around them runs
_NESTED = (cst.FunctionDef, cst.ClassDef, cst.Lambda)


def descendants(node: cst.CSTNode, *, into_functions: bool = True) -> Iterator[cst.CSTNode]:
    """Every non-trivia node under `node` (not `node` itself), depth first, in source order.

    With `into_functions=False`, nested function, lambda and class bodies are not entered:
    what they contain does not run when the enclosing code runs.
    """
    stack = list(children(node))
    stack.reverse()
    while stack:
        current = stack.pop()
        yield current
        if not into_functions and isinstance(current, _NESTED):
            continue
        kids = list(children(current))
        kids.reverse()
        stack.extend(kids)


def find(node: cst.CSTNode, kind: type[N], *, into_functions: bool = True) -> Iterator[N]:
    """Descendants of one node type, in source order."""
    table = _table_for(node)
    if table is not None:
        found = table.under(node, (kind,), include_self=False)
        if not into_functions and found:
            found = table.outside(node, found, _NESTED)
        yield from found  # type: ignore[misc]
        return
    for current in descendants(node, into_functions=into_functions):
        if isinstance(current, kind):
            yield current


def findall(tree: cst.CSTNode, kinds: type | tuple[type, ...]) -> list[cst.CSTNode]:
    """Every node of the given type(s) under (and including) `tree`, in source order.

    Inside the file being linted, they come from its node table (no walk at all).
    """
    wanted: tuple[type, ...] = kinds if isinstance(kinds, tuple) else (kinds,)
    table = _table_for(tree)
    if table is not None:
        return table.under(tree, wanted, include_self=True)
    return [node for node in (tree, *descendants(tree)) if isinstance(node, wanted)]


class NodeTable:
    """Every non-trivia node of one tree in source (pre)order, by type, with the span of each
    node's subtree: "the calls under this function" becomes two binary searches, not a walk."""

    def __init__(self, root: cst.CSTNode) -> None:
        self.order: list[cst.CSTNode] = []
        self.span: dict[int, tuple[int, int]] = {}  # id(node) -> (its index, end of subtree)
        self.by_type: dict[type, list[int]] = {}
        self._add(root)

    def _add(self, root: cst.CSTNode) -> None:
        order, span, by_type = self.order, self.span, self.by_type
        stack: list[cst.CSTNode | tuple[cst.CSTNode, int]] = [root]
        while stack:  # iterative: a 2,000-term chain is 2,000 levels deep
            item = stack.pop()
            if isinstance(item, tuple):  # its subtree is complete
                done, start = item
                span[id(done)] = (start, len(order))
                continue
            node = item
            start = len(order)
            order.append(node)
            cls = type(node)
            positions = by_type.get(cls)
            if positions is None:
                positions = by_type[cls] = []
            positions.append(start)
            stack.append((node, start))
            kids = list(children(node))
            kids.reverse()
            stack.extend(kids)

    def holds(self, node: cst.CSTNode) -> bool:
        span = self.span.get(id(node))
        return span is not None and self.order[span[0]] is node

    def outside(
        self, node: cst.CSTNode, found: list[cst.CSTNode], nested: tuple[type, ...]
    ) -> list[cst.CSTNode]:
        """`found` (nodes under `node`) less those inside a `nested` node below `node`."""
        spans = [self.span[id(n)] for n in self.under(node, nested, include_self=False)]
        if not spans:
            return found
        return [n for n in found if not any(s < self.span[id(n)][0] < e for s, e in spans)]

    def under(
        self, node: cst.CSTNode, kinds: tuple[type, ...], *, include_self: bool
    ) -> list[cst.CSTNode]:
        start, end = self.span[id(node)]
        if not include_self:
            start += 1
        hits: list[int] = []
        for kind in kinds:
            for cls in _concrete(kind):
                positions = self.by_type.get(cls)
                if positions:
                    hits.extend(
                        positions[bisect_left(positions, start) : bisect_left(positions, end)]
                    )
        if len(kinds) > 1 or len(_concrete(kinds[0])) > 1:
            hits.sort()
        order = self.order
        return [order[i] for i in hits]


@functools.cache
def _concrete(kind: type) -> tuple[type, ...]:
    """The concrete node classes that are `kind` or derive from it."""
    return tuple(cls for cls in (kind, *_all_subclasses(kind)) if cls in NODE_TYPES)


_ROOT: list[cst.CSTNode] = []  # the tree being linted, while it is
_TABLE: list[NodeTable] = []


@contextmanager
def indexed(root: cst.CSTNode) -> Iterator[None]:
    """While `root` is linted, `find` and `findall` under it use a node table (built on first
    use) instead of walking."""
    _ROOT[:] = [root]
    _TABLE.clear()
    try:
        yield
    finally:
        _ROOT.clear()
        _TABLE.clear()


def _table_for(node: cst.CSTNode) -> NodeTable | None:
    if not _ROOT:
        return None
    if not _TABLE:
        _TABLE.append(NodeTable(_ROOT[0]))
    table = _TABLE[0]
    return table if table.holds(node) else None


def walk_visitor(tree: cst.CSTNode, visitor: object) -> None:
    """Run a libcst-style visitor (`visit_<Node>` / `leave_<Node>` methods) over `tree` on the
    fast walk; a `visit_` method returning False skips that node's children, as in libcst.
    Iterative, so a deep tree costs no call stack."""
    stack: list[cst.CSTNode | tuple[cst.CSTNode]] = [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, tuple):
            leave = getattr(visitor, f"leave_{type(item[0]).__name__}", None)
            if leave is not None:
                leave(item[0])
            continue
        node = item
        enter = getattr(visitor, f"visit_{type(node).__name__}", None)
        stack.append((node,))
        if enter is None or enter(node) is not False:
            kids = list(children(node))
            kids.reverse()
            stack.extend(kids)
