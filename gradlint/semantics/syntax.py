"""Small questions about the shape of a statement or expression that several analyses ask."""

from __future__ import annotations

import re

import libcst as cst

from gradlint.semantics.nodes import findall


def is_name(node: cst.CSTNode, value: str) -> bool:
    return isinstance(node, cst.Name) and node.value == value


def lone_statement(statement: cst.CSTNode) -> cst.BaseSmallStatement | None:
    """The only statement on a simple line (`return x`, but not `y = 1; return x`)."""
    if isinstance(statement, cst.SimpleStatementLine) and len(statement.body) == 1:
        return statement.body[0]
    return None


def is_string_line(statement: cst.CSTNode, kinds: tuple[type[cst.CSTNode], ...]) -> bool:
    """A line holding nothing but a string literal (a docstring)."""
    lone = lone_statement(statement)
    return isinstance(lone, cst.Expr) and isinstance(lone.value, kinds)


def is_bare_method_call(node: cst.CSTNode, method: str) -> bool:
    """`<anything>.method()` with no arguments at all."""
    return (
        isinstance(node, cst.Call)
        and isinstance(node.func, cst.Attribute)
        and node.func.attr.value == method
        and not node.args
    )


def bare_name(func: cst.BaseExpression) -> str | None:
    """`fc` for `self.fc` or `fc`; None for anything else."""
    if isinstance(func, cst.Attribute):
        return func.attr.value
    if isinstance(func, cst.Name):
        return func.value
    return None


def compact_text(node: cst.CSTNode) -> str:
    """The source of `node` without whitespace or outer parentheses, for comparing terms."""
    code = cst.Module([]).code_for_node(node)
    return re.sub(r"\s+", "", code).strip("()")


def mentioned_names(node: cst.CSTNode) -> set[str]:
    """Every plain name in an expression (`MyFn` in `lambda x: MyFn.apply(x, 2)`)."""
    return {cst.ensure_type(n, cst.Name).value for n in findall(node, cst.Name)}
