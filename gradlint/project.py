"""Whole-project analysis: small per-file summaries, joined through imports.

Phase one (per file, cacheable, parallel) produces a `FileSummary`: the module's dotted name,
its import aliases, facts about the nn.Module classes it defines, and what rules left for the
project phase ("this training step steps a model built from `models.rnn.Encoder`"). Phase two
resolves such names to the summary of the file that defines them, following relative imports,
`import pkg.mod as m` aliases and re-exports in `__init__.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_REEXPORT_HOPS = 8


@dataclass(frozen=True)
class ClassFacts:
    """What other files may need to know about an nn.Module class defined in this file."""

    name: str
    line: int
    rnn: str | None = None  # the first recurrent layer it builds (LSTM, GRU, ...)
    output: str | None = None  # softmax / log_softmax / sigmoid when forward() ends in one
    mode_layer: str | None = None  # the first dropout / batch-norm layer it builds


@dataclass(frozen=True)
class Deferred:
    """A finding a rule could not decide alone: it needs facts about an imported class."""

    code: str
    qualified: str  # the class, as this file's imports spell it (`.rnn.Encoder`, `models.Net`)
    line: int
    column: int
    end_line: int
    end_column: int
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FileSummary:
    path: str
    module: str
    is_package: bool = False
    imports: Mapping[str, str] = field(default_factory=dict)
    classes: Mapping[str, ClassFacts] = field(default_factory=dict)
    deferred: tuple[Deferred, ...] = ()
    noqa: Mapping[int, tuple[str, ...]] = field(default_factory=dict)  # line -> codes ("*": all)

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "module": self.module,
            "is_package": self.is_package,
            "imports": dict(self.imports),
            "classes": {k: vars(v) for k, v in self.classes.items()},
            "deferred": [{**vars(d), "data": dict(d.data)} for d in self.deferred],
            "noqa": {str(k): list(v) for k, v in self.noqa.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FileSummary:
        return cls(
            path=data["path"],
            module=data["module"],
            is_package=data["is_package"],
            imports=dict(data["imports"]),
            classes={k: ClassFacts(**v) for k, v in data["classes"].items()},
            deferred=tuple(Deferred(**d) for d in data["deferred"]),
            noqa={int(k): tuple(v) for k, v in data["noqa"].items()},
        )


def module_name(path: Path) -> tuple[str, bool]:
    """Dotted module name of a file, from the package folders (with __init__.py) around it."""
    try:
        path = path.resolve()
    except (RuntimeError, OSError):  # a symlink loop: name it from the path as written
        path = path.absolute()
    is_package = path.stem == "__init__"
    parts = [] if is_package else [path.stem]
    folder = path.parent
    while (folder / "__init__.py").exists() or (folder / "__init__.pyi").exists():
        parts.append(folder.name)
        if folder.parent == folder:
            break
        folder = folder.parent
    return ".".join(reversed(parts)) or path.stem, is_package


Loader = Callable[[str], "FileSummary | None"]  # module name -> summary of a file not linted


class Project:
    """Every summary of the run, by module name, with name resolution across files.

    `loader` supplies the summary of a module the run did not lint (a pre-commit run names
    only the staged files, an editor only the open buffer), so that a script still sees the
    model it imports from a file nobody named.
    """

    def __init__(self, summaries: Iterable[FileSummary], loader: Loader | None = None) -> None:
        self.by_module: dict[str, FileSummary] = {}
        self.loader = loader
        for summary in summaries:
            self.by_module.setdefault(summary.module, summary)

    def summary(self, module: str) -> FileSummary | None:
        found = self.by_module.get(module)
        if found is None and self.loader is not None and module:
            found = self.loader(module)
            if found is not None:
                self.by_module[module] = found
        return found

    def absolute(self, qualified: str, origin: FileSummary) -> str:
        """`..models.Net` written in `pkg.train.main` -> `pkg.models.Net`."""
        if not qualified.startswith("."):
            return qualified
        level = len(qualified) - len(qualified.lstrip("."))
        package = origin.module.split(".") if origin.is_package else origin.module.split(".")[:-1]
        base = package[: len(package) - (level - 1)] if level > 1 else package
        rest = qualified[level:]
        return ".".join([*base, rest] if rest else base)

    def find_class(
        self, qualified: str, origin: FileSummary
    ) -> tuple[FileSummary, ClassFacts] | None:
        """The summary and facts of the class a name refers to, or None outside the tree."""
        name = self.absolute(qualified, origin)
        for _ in range(MAX_REEXPORT_HOPS):
            module, _, attr = name.rpartition(".")
            summary = self.summary(module) if attr else None
            if summary is None:
                return None
            if attr in summary.classes:
                return summary, summary.classes[attr]
            target = summary.imports.get(attr)
            if target is None:
                return None  # defined some other way (assignment, star import): stay quiet
            name = self.absolute(target, summary)  # a re-export, e.g. in __init__.py
        return None
