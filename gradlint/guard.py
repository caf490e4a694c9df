"""Refuse pathological files cheaply, before the parser meets them; analyse deep ones on a
stack that can hold them.

libcst's native parser overflows its stack on input nested many thousands deep (a crash of
the whole process) and is super-linear on long chains (`-----1`, `a.b.c...`, `1+1+...+1`).
CPython's own parser and compiler fail cleanly on such input, so files that look risky by
cheap byte-level measures are first parsed with `ast` and their depth counted; normal files
skip that check entirely. What CPython compiles is never refused: a 2,000-term sum or a
1,000-branch `elif` chain is legal code.

Deep but legal trees then meet gradlint's own analysis, whose helpers recurse on the tree:
a file that exceeds the interpreter's default recursion limit is analysed again on a
thread with a large stack and a matching recursion limit (`run_deep`), so its depth is
bounded by the check above and never by the caller's stack.
"""

from __future__ import annotations

import ast
import ctypes
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import TypeVar

T = TypeVar("T")

MAX_FILE_BYTES = 8 * 1024 * 1024  # larger files are generated data, not model code
# CPython 3.11+ compiles syntax trees up to about 3 x its recursion limit (1000) deep; deeper
# ones it refuses, and so does gradlint. libcst parses every depth below this safely.
MAX_DEPTH = 3000
_RISKY_LINE = 2000  # bytes in one physical line
_RISKY_LOGICAL_LINE = 4096  # bytes in one statement spread over lines (brackets, backslashes)
_RISKY_BRACKET_DEPTH = 40
_RISKY_ELIFS = 200  # each `elif` nests the rest of its chain one level deeper
_KEEP = b"()[]{}\n"
_DROP = bytes(b for b in range(256) if b not in _KEEP)
_OPEN, _CLOSE, _NEWLINE = frozenset(b"([{"), frozenset(b")]}"), ord("\n")

DEEP_STACK_BYTES = 512 * 1024 * 1024  # reserved address space; only what is used is touched
DEEP_RECURSION_LIMIT = 100_000  # about 2.5 KiB of C stack per level at most: fits the stack


def _looks_risky(data: bytes) -> bool:
    """Whether some statement could nest deep enough to matter; cheap, and never misses one.

    Depth costs bytes: every level of a chain is at least one byte of one statement, so a
    file whose statements are all short (or whose `elif` chains are) cannot be deep.
    """
    if data.count(b"elif") > _RISKY_ELIFS:
        return True
    lines = data.split(b"\n")
    if any(len(line) > _RISKY_LINE for line in lines):
        return True
    continued = (
        {row for row, line in enumerate(lines) if line.endswith((b"\\", b"\\\r"))}
        if b"\\\n" in data or b"\\\r\n" in data
        else set()
    )
    skeleton = data.translate(None, _DROP)  # brackets and newlines only, at C speed
    depth = row = 0
    logical = len(lines[0])
    for byte in skeleton:
        if byte == _NEWLINE:
            ends_statement = not depth and row not in continued
            row += 1
            logical = len(lines[row]) if ends_statement else logical + len(lines[row]) + 1
            if logical > _RISKY_LOGICAL_LINE:
                return True
        elif byte in _OPEN:
            depth += 1
            if depth > _RISKY_BRACKET_DEPTH:
                return True
        elif byte in _CLOSE:
            depth = max(depth - 1, 0)
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


def _parse(data: bytes) -> ast.AST:
    """`ast.parse` with the recursion headroom CPython's compiler has at the top level, so
    that a file CPython compiles is not refused because gradlint calls from deeper down."""
    depth = 0
    frame: FrameType | None = sys._getframe()
    while frame is not None:
        depth, frame = depth + 1, frame.f_back
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, depth + 1000))  # 1000: CPython's default limit
    try:
        return ast.parse(data)
    finally:
        sys.setrecursionlimit(limit)


def refusal(data: bytes) -> str | None:
    """Why this file must not be parsed, or None when it is safe."""
    if len(data) > MAX_FILE_BYTES:
        limit = MAX_FILE_BYTES // 2**20
        return f"file is {len(data) / 1e6:.1f} MB, above the {limit} MiB limit for source files"
    if not _looks_risky(data):
        return None
    try:
        tree = _parse(data)
    except (RecursionError, MemoryError):
        return "file is nested too deeply to parse safely (CPython refuses it too)"
    except SyntaxError as exc:
        if "too many" in str(exc) or "too complex" in str(exc) or "nested" in str(exc):
            return f"file is nested too deeply to parse safely ({exc.msg})"
        return None  # an ordinary syntax error: the parser reports it with its position
    except ValueError:
        return None  # NUL bytes and the like are reported by the normal path
    if _depth(tree) > MAX_DEPTH:
        return f"file is nested more than {MAX_DEPTH} levels deep; gradlint does not analyse it"
    return None


def run_deep(work: Callable[[], T]) -> T:
    """`work()` on a thread with a large stack and recursion limit; returns or raises what it
    does. A timeout or interrupt that reaches this (the main) thread meanwhile is passed on
    to the worker thread, which is joined before it propagates here."""
    box: list[tuple[bool, object]] = []

    def target() -> None:
        try:
            box.append((True, work()))
        except BaseException as exc:  # handed back to the caller, re-raised below
            box.append((False, exc))

    thread = threading.Thread(target=target, name="gradlint-deep", daemon=True)
    limit = sys.getrecursionlimit()
    try:
        try:
            previous_stack = threading.stack_size(DEEP_STACK_BYTES)
        except (ValueError, RuntimeError):  # a platform that cannot size thread stacks
            return work()  # the default limit stays: deep files end as GL001, never a crash
        try:
            # the limit is the interpreter's, not the thread's: set it before the thread runs
            sys.setrecursionlimit(max(limit, DEEP_RECURSION_LIMIT))
            thread.start()
        finally:
            threading.stack_size(previous_stack)
        try:
            thread.join()
        except BaseException as exc:  # a signal handler raised here: stop the work too
            _raise_in(thread, type(exc))
            thread.join()
            raise
    finally:
        sys.setrecursionlimit(limit)  # a signal anywhere above must not leave it raised
    ok, value = box[0]
    if ok:
        return value  # type: ignore[return-value]
    raise value  # type: ignore[misc]


def _raise_in(thread: threading.Thread, kind: type[BaseException]) -> None:
    if thread.ident is not None and thread.is_alive():
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(thread.ident), ctypes.py_object(kind)
        )
