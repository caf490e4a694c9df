"""Autofix: text edits attached to findings, applied safely.

A fix is a list of edits on 1-based line / column ranges (end exclusive), as reported by the
rule that offers it. Applying fixes never leaves a file half-written: the new text must parse
before it replaces the file, and it replaces it atomically (temp file + rename, mode kept).
"""

from __future__ import annotations

import difflib
import os
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path

from gradlint.findings import Fix


class FixError(Exception):
    """A fix that would break the file; the file is left untouched."""


def _offsets(text: str) -> list[int]:
    starts = [0]
    for line in text.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    return starts


def apply_fixes(text: str, fixes: Iterable[Fix]) -> tuple[str, int]:
    """The text with every non-overlapping fix applied, and how many fixes were applied.

    Fixes are taken in source order; a fix that overlaps one already taken waits for the
    next run (as ruff does), so edits never corrupt each other.
    """
    starts = _offsets(text)

    def offset(line: int, column: int) -> int:
        return starts[min(line - 1, len(starts) - 1)] + column - 1

    chosen: list[tuple[int, int, str]] = []
    applied = 0
    taken: list[tuple[int, int]] = []
    for fix in sorted(fixes, key=lambda f: min((e.line, e.column) for e in f.edits)):
        spans = [
            (offset(e.line, e.column), offset(e.end_line, e.end_column), e.replacement)
            for e in fix.edits
        ]
        if any(
            a < end and start < b or (a == b == start) for a, b, _ in spans for start, end in taken
        ):
            continue
        chosen.extend(spans)
        taken.extend((a, b) for a, b, _ in spans)
        applied += 1
    for start, end, replacement in sorted(chosen, key=lambda s: (s[0], s[1]), reverse=True):
        text = text[:start] + replacement + text[end:]
    return text, applied


def check_parses(text: str, path: str) -> None:
    import libcst as cst  # only a run that fixes needs the parser here

    try:
        cst.parse_module(text)
    except (cst.ParserSyntaxError, RecursionError) as exc:
        raise FixError(
            f"{path}: the fixed source would not parse ({exc}); file left unchanged"
        ) from None


def unified_diff(old: str, new: str, path: str) -> str:
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True), path, path
        )
    )


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def write_atomically(path: Path, text: str, encoding: str = "utf-8") -> None:
    """Replace or create `path` with `text` in one rename. An existing file keeps its mode; a
    new one gets the mode any program's new file gets (0666 less the umask), not the 0600
    of the temporary file."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".gradlint-tmp")
    try:
        with os.fdopen(fd, "w", encoding=encoding, newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        raise
