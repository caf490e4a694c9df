"""Fast, trivia-free iteration over libcst nodes (rules use this instead of sub-visitors).

libcst's visitors rebuild children and visit every token and whitespace node; walking the
dataclass fields directly and skipping trivia is several times faster and sees every node a
rule cares about, in source order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
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


def children(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """Direct children that are not trivia, in source order."""
    for name in fields(type(node)):
        value = getattr(node, name)
        kind = type(value)
        if kind is tuple or kind is list:
            for item in value:
                if type(item) not in TRIVIA and isinstance(item, cst.CSTNode):
                    yield item
        elif kind not in TRIVIA and isinstance(value, cst.CSTNode):
            yield value


def descendants(node: cst.CSTNode, *, into_functions: bool = True) -> Iterator[cst.CSTNode]:
    """Every non-trivia node under `node` (not `node` itself), depth first, in source order.

    With `into_functions=False`, nested function, lambda and class bodies are not entered:
    what they contain does not run when the enclosing code runs.
    """
    stack = list(children(node))
    stack.reverse()
    nested = (cst.FunctionDef, cst.ClassDef, cst.Lambda)
    while stack:
        current = stack.pop()
        yield current
        if not into_functions and isinstance(current, nested):
            continue
        kids = list(children(current))
        kids.reverse()
        stack.extend(kids)


def find(node: cst.CSTNode, kind: type[N], *, into_functions: bool = True) -> Iterator[N]:
    """Descendants of one node type, in source order."""
    for current in descendants(node, into_functions=into_functions):
        if isinstance(current, kind):
            yield current


def findall(tree: cst.CSTNode, matcher: object) -> list[cst.CSTNode]:
    """`libcst.matchers.findall` on the fast walk: every node under (and including) `tree`
    that matches, in source order. Candidates are filtered by node type before matching."""
    import libcst.matchers as m

    wanted = _matcher_types(matcher)
    found = []
    for node in (tree, *descendants(tree)):
        if wanted is not None and type(node).__name__ not in wanted:
            continue
        if m.matches(node, matcher):  # type: ignore[arg-type]
            found.append(node)
    return found


def _matcher_types(matcher: object) -> frozenset[str] | None:
    """Node type names a matcher can match (None: any type)."""
    import libcst.matchers as m

    if isinstance(matcher, m.OneOf):
        names: set[str] = set()
        for option in matcher.options:
            inner = _matcher_types(option)
            if inner is None:
                return None
            names |= inner
        return frozenset(names)
    name = type(matcher).__name__
    return frozenset({name}) if isinstance(getattr(cst, name, None), type) else None


def walk_visitor(tree: cst.CSTNode, visitor: object) -> None:
    """Run a libcst-style visitor (`visit_<Node>` / `leave_<Node>` methods) over `tree` on the
    fast walk; a `visit_` method returning False skips that node's children, as in libcst."""
    name = type(tree).__name__
    enter = getattr(visitor, f"visit_{name}", None)
    if enter is None or enter(tree) is not False:
        for child in children(tree):
            walk_visitor(child, visitor)
    leave = getattr(visitor, f"leave_{name}", None)
    if leave is not None:
        leave(tree)
