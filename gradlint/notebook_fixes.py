"""Fixes in notebooks: edits on the joined cells, written back into the cells they touch.

The rules see a notebook as one program (`gradlint.notebook`), so their fixes are edits on
that program. An edit is applied only when it lies inside one code cell, on lines that
IPython syntax did not change (no magic, no dedented cell); each cell is edited on its own
and the notebook's JSON is written back in the layout it was read in, so a fix changes
nothing but the cells it fixes. The diff shows the changed cells, not the JSON.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from gradlint.findings import Edit, Fix
from gradlint.fixes import apply_fixes, check_parses, unified_diff
from gradlint.notebook import neutralise


@dataclass(frozen=True)
class FixedNotebook:
    text: str  # the whole notebook file, fixed
    applied: int
    diff: str  # a unified diff per changed cell, headed `path:cell N`


@dataclass(frozen=True)
class _Cell:
    position: int  # index in the notebook's cell list (cells count from 1 for users)
    start: int  # 0-based line where it starts in the joined source
    text: str
    lines: tuple[str, ...]
    unchanged: frozenset[int]  # 0-based lines the joined source holds as written


def fix_notebook(data: str, path: str, fixes: Iterable[Fix]) -> FixedNotebook | None:
    """The notebook with every fix applied that can be; None when none can."""
    try:
        document = json.loads(data)
        cells = _code_cells(document["cells"])
    except (ValueError, KeyError, TypeError):
        return None  # not a notebook after all: it was reported unreadable already
    by_cell: dict[int, list[Fix]] = defaultdict(list)
    for fix in fixes:
        placed = _in_one_cell(fix, cells)
        if placed is not None:
            by_cell[placed[0]].append(placed[1])
    applied = 0
    new_texts: dict[int, str] = {}
    for index, cell_fixes in by_cell.items():
        text, count = apply_fixes(cells[index].text, cell_fixes)
        if count and text != cells[index].text:
            new_texts[index] = text
            applied += count
    if not new_texts:
        return None
    for text in new_texts.values():  # cells parse on their own; another may be broken
        check_parses("".join(line + "\n" for line in neutralise(text.splitlines())), path)
    diff = []
    for index, text in sorted(new_texts.items()):
        cell = cells[index]
        source = document["cells"][cell.position]
        source["source"] = (
            text.splitlines(keepends=True) if isinstance(source.get("source"), list) else text
        )
        label = f"{path}:cell {cell.position + 1}"
        diff.append(unified_diff(_ending(cell.text), _ending(text), label))
    return FixedNotebook(_dump_like(document, data), applied, "".join(diff))


def _code_cells(cells: list[dict[str, object]]) -> list[_Cell]:
    """The code cells, each with where it starts in the joined source (as `read_notebook`)."""
    found: list[_Cell] = []
    start = 0
    for position, cell in enumerate(cells):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        raw = cell.get("source", "")
        text = "".join(raw) if isinstance(raw, list) else raw
        if not isinstance(text, str):
            raise TypeError("a code cell's source is not text")
        lines = tuple(text.splitlines())
        neutral = neutralise(lines)
        unchanged = frozenset(i for i, line in enumerate(lines) if neutral[i] == line)
        found.append(_Cell(position, start, text, lines, unchanged))
        start += len(lines)
    return found


def _in_one_cell(fix: Fix, cells: list[_Cell]) -> tuple[int, Fix] | None:
    """(index in `cells`, the fix in that cell's lines) when every edit lies inside one code
    cell, on lines kept as written; None otherwise (the fix is left for the user)."""
    home: int | None = None
    edits: list[Edit] = []
    for edit in fix.edits:
        first, last = edit.line - 1, edit.end_line - 1
        index = next(
            (i for i, c in enumerate(cells) if c.start <= first < c.start + len(c.lines)), None
        )
        if index is None or (home is not None and index != home):
            return None
        home, cell = index, cells[index]
        span = range(first - cell.start, last - cell.start + 1)
        if span.stop > len(cell.lines) or any(i not in cell.unchanged for i in span):
            return None
        edits.append(
            Edit(
                edit.line - cell.start,
                edit.column,
                edit.end_line - cell.start,
                edit.end_column,
                edit.replacement,
            )
        )
    if home is None:
        return None
    return home, Fix(fix.message, tuple(edits))


def _ending(text: str) -> str:
    """A cell's last line has no newline on disk; give it one so the diff reads cleanly."""
    return text if not text or text.endswith("\n") else text + "\n"


def _dump_like(document: object, original: str) -> str:
    """The JSON of `document` in the layout of `original`: the indent, separators and
    escaping that reproduce the file as read, else nbformat's own (one space, UTF-8 kept)."""
    before = json.loads(original)
    newline = "\n" if original.endswith("\n") else ""
    layouts: list[dict[str, Any]] = [{"indent": indent} for indent in (1, 2, 4, 0, 3)] + [
        {"indent": None},
        {"indent": None, "separators": (",", ":")},
    ]
    for layout in layouts:
        for ascii_only in (False, True):
            options = {**layout, "ensure_ascii": ascii_only}
            if json.dumps(before, **options) + newline == original:
                return json.dumps(document, **options) + newline
    return json.dumps(document, indent=1, ensure_ascii=False) + "\n"
