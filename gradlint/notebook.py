"""Jupyter notebooks: code cells -> one Python program, and findings -> (cell, line in cell).

A notebook's code cells are joined into one source, so a model defined in cell 2 and trained
in cell 5 is understood like one file. IPython syntax (`%magic`, `%%cell magic`, `!shell`,
`obj?` help) is not Python: each such line becomes a placeholder on the same line, so every
other line keeps its position, and a finding maps back to its cell by line arithmetic alone.
Cells are numbered as a notebook user counts them: by position from 1, markdown and raw
cells included, as the cell list of JupyterLab or VS Code shows them (`cell 3` is the third
cell of the notebook, whatever its kind; not the execution count `[n]`, which changes with
every run).
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from gradlint.config import Config
from gradlint.findings import FileResult, Finding

if TYPE_CHECKING:
    from gradlint.rule import Rule

SUFFIX = ".ipynb"
_HELP = re.compile(r"^\s*(\?{1,2}[\w.*]+|[\w.*]+\?{1,2})\s*$")  # `obj?`, `??obj`, `torch.*Tensor?`
# shell commands IPython runs without `%` (automagic): `cd data`, `pip install x`, `ls -l`
_AUTOMAGIC = re.compile(
    r"^\s*(cd|ls|pip|conda|mkdir|cp|mv|rm|cat|wget|unzip|load_ext|matplotlib|tensorboard)"
    r"(\s+[-\w./~'\"$:]|\s*$)(?!.*=)"
)
_ASSIGNED_MAGIC = re.compile(r"^\s*[\w.]+\s*=\s*[%!]")  # `files = !ls`, `t = %timeit -o f()`


class NotebookError(ValueError):
    """The file is not a notebook gradlint can read (bad JSON or not nbformat 4-like)."""


class NotPython(NotebookError):
    """A well-formed notebook in another language (R, Julia, ...): nothing to lint."""


NOT_PYTHON = "notebook language is"  # how the skip reason of such a notebook starts


@dataclass(frozen=True)
class Notebook:
    """The code cells joined into one program, and where each cell starts in it."""

    source: str  # IPython lines replaced by placeholders; parses as Python
    original_lines: tuple[str, ...]  # the joined cells as written, for showing source lines
    # 0-based line where cell i+1 (any kind) starts in `source`; a markdown or raw cell holds
    # no lines, so it starts where the next code cell does
    cell_starts: tuple[int, ...]


def is_notebook(path: str | Path) -> bool:
    return str(path).lower().endswith(SUFFIX)


def read_notebook(data: bytes | str) -> Notebook:
    """Join the code cells of a notebook; raises NotebookError for anything unreadable."""
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise NotebookError(f"not valid notebook JSON: {exc}") from exc
    cells = document.get("cells") if isinstance(document, dict) else None
    if not isinstance(cells, list):
        raise NotebookError("not a Jupyter notebook: no `cells` list (nbformat 4 is supported)")
    language = _language(document)
    if language not in (None, "python"):
        raise NotPython(f"{NOT_PYTHON} {language!r}, not Python")
    neutral: list[str] = []
    original: list[str] = []
    starts: list[int] = []
    for cell in cells:
        starts.append(len(original))  # every cell counts in the numbering users see
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue  # markdown and raw cells are not code
        text = _cell_text(cell.get("source", ""))
        lines = text.splitlines()
        original.extend(lines)
        neutral.extend(neutralise(lines))
    source = "".join(line + "\n" for line in neutral)
    return Notebook(source=source, original_lines=tuple(original), cell_starts=tuple(starts))


def _language(document: dict[str, object]) -> str | None:
    """The notebook's language from `language_info`, else from the kernel's spec."""
    metadata = document.get("metadata")
    if not isinstance(metadata, dict):
        return None
    for key, field in (("language_info", "name"), ("kernelspec", "language")):
        table = metadata.get(key)
        name = table.get(field) if isinstance(table, dict) else None
        if isinstance(name, str) and name:
            return name.lower()
    return None


def _cell_text(source: object) -> str:
    if isinstance(source, list):
        return "".join(part for part in source if isinstance(part, str))
    if isinstance(source, str):
        return source
    raise NotebookError("a code cell's `source` is neither text nor a list of lines")


def neutralise(lines: Sequence[str]) -> list[str]:
    """The cell with IPython-only lines replaced by same-line placeholders."""
    if lines and lines[0].lstrip().startswith("%%"):
        # a cell magic (%%time, %%bash, %%writefile) may hold anything: not Python we can read
        return [_comment(line) for line in lines]
    lines = _dedent_cell(lines)
    out: list[str] = []
    magic_goes_on = False
    code = _CodeState()
    for line in lines:
        if magic_goes_on or (code.at_statement_start and _is_ipython_line(line)):
            indent = line[: len(line) - len(line.lstrip())]
            out.append(_comment(line) if magic_goes_on else f"{indent}pass  # {line.strip()}")
            magic_goes_on = line.rstrip().endswith("\\")  # `%pip install a \` goes on below
        else:
            out.append(line)
            code.read(line)  # a `%` inside brackets or after a backslash is Python's modulo
    return out


def _dedent_cell(lines: Sequence[str]) -> list[str]:
    """IPython removes the first line's indentation from every line of the cell."""
    first = next((line for line in lines if line.strip()), "")
    indent = first[: len(first) - len(first.lstrip())]
    if not indent:
        return list(lines)
    return [line[len(indent) :] if line.startswith(indent) else line for line in lines]


class _CodeState:
    """Just enough of Python's tokenizer to know whether a line starts a new statement:
    open brackets, a trailing backslash and triple-quoted strings carry a statement on."""

    def __init__(self) -> None:
        self.depth = 0
        self.backslash = False
        self.quote: str | None = None  # the open triple quote

    @property
    def at_statement_start(self) -> bool:
        return self.depth == 0 and not self.backslash and self.quote is None

    def read(self, line: str) -> None:
        at, end = 0, len(line)
        while at < end:
            char = line[at]
            if self.quote is not None:
                if char == "\\":
                    at += 2
                    continue
                if line.startswith(self.quote, at):
                    at += 3
                    self.quote = None
                    continue
                at += 1
            elif char == "#":
                break
            elif char in "\"'":
                if line.startswith(char * 3, at):
                    self.quote = char * 3
                    at += 3
                    continue
                at = _string_end(line, at)
            else:
                if char in "([{":
                    self.depth += 1
                elif char in ")]}":
                    self.depth = max(self.depth - 1, 0)
                at += 1
        self.backslash = self.quote is None and line.rstrip().endswith("\\") and "#" not in line


def _string_end(line: str, start: int) -> int:
    """The index after the single-quoted string that opens at `start` (or the line's end)."""
    quote, at = line[start], start + 1
    while at < len(line):
        if line[at] == "\\":
            at += 2
        elif line[at] == quote:
            return at + 1
        else:
            at += 1
    return at


def _comment(line: str) -> str:
    return "# " + line


def _is_ipython_line(line: str) -> bool:
    stripped = line.lstrip()
    if stripped.startswith(("%", "!")):
        return True
    return bool(_HELP.match(line) or _ASSIGNED_MAGIC.match(line) or _AUTOMAGIC.match(line))


def lint_notebook(
    data: bytes | str,
    path: str,
    config: Config,
    rules: Sequence[type[Rule]],
    module: tuple[str, bool] | None = None,
) -> FileResult:
    """Lint the joined cells; positions are still in the joined source (see `to_cells`)."""
    from gradlint.engine import lint_source, unreadable  # the parser loads only when needed

    try:
        notebook = read_notebook(data)
    except NotPython as exc:
        return FileResult(path=path, skipped=str(exc))
    except NotebookError as exc:
        return unreadable(path, str(exc), config)
    result = lint_source(notebook.source, path, config, rules, module=module)
    if not any(f.code == "GL001" and f.message.startswith("syntax error") for f in result.findings):
        return result
    # a cell that is not Python on its own (`loss = # TODO`, a stray keystroke) must not cost
    # the other cells their findings: lint without it, and report it alone
    lines = notebook.source.splitlines()
    broken: list[Finding] = []
    for start, end in _code_spans(notebook.cell_starts, len(lines)):
        alone = lint_source("".join(line + "\n" for line in lines[start:end]), path, config, [])
        errors = [f for f in alone.findings if f.code == "GL001"]
        if not errors:
            continue
        broken.extend(_shifted(f, start) for f in errors)
        lines[start:end] = ["# " + line for line in lines[start:end]]
    if not broken:
        return result  # no single cell fails: the error spans cells, report it as it is
    rest = lint_source("".join(line + "\n" for line in lines), path, config, rules, module=module)
    findings = sorted((*rest.findings, *broken), key=lambda f: (f.line, f.column, f.code))
    return replace(rest, findings=tuple(findings))


def _code_spans(starts: tuple[int, ...], total: int) -> list[tuple[int, int]]:
    """(first, end) joined-source lines of each cell that holds any."""
    ends = (*starts[1:], total)
    return [(a, b) for a, b in zip(starts, ends) if b > a]


def _shifted(finding: Finding, lines: int) -> Finding:
    return replace(finding, line=finding.line + lines, end_line=finding.end_line + lines)


def to_cells(result: FileResult, data: bytes | str) -> FileResult:
    """Map a notebook result's joined-source lines to (cell, line in cell)."""
    try:
        notebook = read_notebook(data)
    except NotebookError:
        return result  # its only finding is the GL001 on line 1; there are no cells
    findings = tuple(cell_finding(f, notebook) for f in result.findings)
    lines = notebook.original_lines if findings else ()
    return replace(result, findings=findings, source_lines=lines, cell_starts=notebook.cell_starts)


def cell_finding(finding: Finding, notebook: Notebook) -> Finding:
    starts = notebook.cell_starts
    if not starts or not notebook.original_lines or finding.cell is not None:
        return finding  # a notebook without code only has whole-file findings; or mapped already
    # the last cell starting at or before the line: a code cell, never an empty markdown
    # cell that shares its start
    index = max(bisect.bisect_right(starts, finding.line - 1) - 1, 0)
    first = starts[index]
    end = starts[index + 1] if index + 1 < len(starts) else len(notebook.original_lines)
    line = max(finding.line - first, 1)
    end_line, end_column = finding.end_line - first, finding.end_column
    if finding.end_line - 1 >= end:  # a range running into the next cell stops at this one's end
        end_line = max(end - first, line)
        end_column = len(notebook.original_lines[end - 1]) + 1 if end > first else 1
    message = _LINE.sub(lambda m: _cell_line(int(m.group(1)), starts, index), finding.message)
    return replace(
        finding,
        line=line,
        end_line=max(end_line, line),
        end_column=end_column,
        cell=index + 1,
        message=message,
    )


_LINE = re.compile(r"\bline (\d+)\b")  # a message pointing at another line: `(line 80)`


def _cell_line(number: int, starts: tuple[int, ...], home: int) -> str:
    """`line 12` of the finding's own cell, or `cell 4, line 12`, for joined line `number`."""
    index = max(bisect.bisect_right(starts, number - 1) - 1, 0)
    within = number - starts[index]
    return f"line {within}" if index == home else f"cell {index + 1}, line {within}"


def source_line(result: FileResult, finding: Finding, offset: int = 0) -> str | None:
    """The source line of a finding (or `offset` lines from it) in a file or notebook cell."""
    number = finding.line + offset
    base = 0
    if finding.cell is not None and result.cell_starts:
        base = result.cell_starts[finding.cell - 1]
        end = (
            result.cell_starts[finding.cell]
            if finding.cell < len(result.cell_starts)
            else len(result.source_lines)
        )
        if base + number > end:
            return None  # past the end of the cell
    if number < 1 or base + number > len(result.source_lines):
        return None
    return result.source_lines[base + number - 1]


def location(finding: Finding) -> str:
    """`cell 4:3:1` in a notebook, `3:1` elsewhere: the part of a concise line after the path."""
    prefix = f"cell {finding.cell}:" if finding.cell is not None else ""
    return f"{prefix}{finding.line}:{finding.column}"


def lint_notebook_path(path: Path, config: Config, rules: Sequence[type[Rule]]) -> FileResult:
    """Read, lint and map one notebook (for callers outside the runner, like the LSP server)."""
    display = path.as_posix()
    from gradlint.discovery import read_source
    from gradlint.engine import unreadable

    try:
        data = read_source(path)
    except OSError as exc:
        return unreadable(display, f"cannot read file: {exc.strerror or exc}", config)
    return to_cells(lint_notebook(data, display, config, rules), data)
