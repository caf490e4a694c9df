"""Refuse pathological files cheaply, before the parser meets them.

libcst's native parser overflows its stack on expressions nested a few thousand deep and is
super-linear on long chains (`-----1`, `a.b.c...`, `1+1+...+1`): a crash or a hang for the
whole run. CPython's own parser has hard limits and fails cleanly on such input, so files
that look risky by cheap byte-level measures are first checked with `ast.parse` and an
explicit depth count; normal files skip that check entirely.
"""

from __future__ import annotations

import ast

MAX_FILE_BYTES = 8 * 1024 * 1024  # larger files are generated data, not model code
MAX_DEPTH = 200  # syntax-tree depth gradlint analyses; real code stays far below
_RISKY_LINE = 2000  # bytes
_RISKY_BRACKET_DEPTH = 40
_RISKY_BRACKET_LINES = 2000
_RISKY_CONTINUATIONS = 200
_KEEP = b"()[]{}\n"
_DROP = bytes(b for b in range(256) if b not in _KEEP)


def _looks_risky(data: bytes) -> bool:
    if b"\\\n" in data and data.count(b"\\\n") > _RISKY_CONTINUATIONS:
        return True
    if any(len(line) > _RISKY_LINE for line in data.split(b"\n")):
        return True
    skeleton = data.translate(None, _DROP)  # brackets and newlines only, at C speed
    depth = lines = 0
    for byte in skeleton:
        if byte in b"([{":
            depth += 1
            if depth > _RISKY_BRACKET_DEPTH:
                return True
        elif byte in b")]}":
            depth = max(depth - 1, 0)
            if depth == 0:
                lines = 0
        elif depth:
            lines += 1
            if lines > _RISKY_BRACKET_LINES:
                return True
    return False


def _depth(tree: ast.AST) -> int:
    deepest = 0
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > deepest:
            deepest = depth
            if deepest > MAX_DEPTH:
                return deepest
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return deepest


def refusal(data: bytes) -> str | None:
    """Why this file must not be parsed, or None when it is safe."""
    if len(data) > MAX_FILE_BYTES:
        return f"file is {len(data) / 1e6:.1f} MB, above the {MAX_FILE_BYTES // 2**20} MiB limit for source files"
    if not _looks_risky(data):
        return None
    try:
        tree = ast.parse(data)
    except (RecursionError, MemoryError):
        return "file is nested too deeply to parse safely"
    except SyntaxError as exc:
        if "too many" in str(exc) or "too complex" in str(exc) or "nested" in str(exc):
            return f"file is nested too deeply to parse safely ({exc.msg})"
        return None  # an ordinary syntax error: the parser reports it with its position
    except ValueError:
        return None  # NUL bytes and the like are reported by the normal path
    depth = _depth(tree)
    if depth > MAX_DEPTH:
        return f"file is nested more than {MAX_DEPTH} levels deep; gradlint does not analyse it"
    return None
