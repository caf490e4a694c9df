"""Summaries of the files that linted files import, when the run was not asked to lint them.

pre-commit hands gradlint only the staged files and an editor only the open buffer, yet a
`train.py` that trains a GRU model imported from `models.py` is only wrong in the light of
`models.py`. When the project phase meets a module no linted file defines, it asks
`ImportFollower.load` for it: the module is looked up as Python would find it from the linted
files (beside them, at the top of their package, at the project root and its `src/`), only
inside the project (the configuration's folder; without one, the linted files'
folders) and outside its excludes, and at most `MAX_FOLLOWED` files a run. A
followed file gives only its summary (from the cache, or by parsing it without rules): its
own findings are never reported.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from gradlint.config import Config
from gradlint.discovery import is_excluded_within
from gradlint.project import FileSummary

if TYPE_CHECKING:
    from gradlint.cache import Cache

MAX_FOLLOWED = 64  # files a run may read beyond those it lints
_MEMO_SIZE = 256
# (resolved path, size, mtime) -> summary: a language server re-lints the same buffer often
_MEMO: dict[tuple[str, int, int, str], FileSummary] = {}


class ImportFollower:
    """The `Project` loader: module name -> summary of the project file that defines it."""

    def __init__(
        self,
        config: Config,
        linted: Iterable[FileSummary],
        cache: Cache | None = None,
        limit: int = MAX_FOLLOWED,
    ) -> None:
        self.config = config
        self.cache = cache
        self.left = limit
        self.missing: set[str] = set()
        self.bases: list[Path] = []
        for summary in linted:
            folder = Path(summary.path).parent
            top = folder
            for _ in range(summary.module.count(".") + summary.is_package):
                top = top.parent  # the folder that holds the file's top-level package
            self._add_base(top)
            self._add_base(folder)
        # without a configuration file the project is the linted files' own folders
        roots = [config.root] if config.source is not None else [config.root, *self.bases]
        self.roots = [_resolved(root) for root in roots]
        self._add_base(config.root)
        self._add_base(config.root / "src")

    def _add_base(self, folder: Path) -> None:
        if folder not in self.bases:
            self.bases.append(folder)

    def load(self, module: str) -> FileSummary | None:
        if self.left <= 0 or module in self.missing:
            return None  # bounded: a huge import graph costs at most MAX_FOLLOWED parses
        path = self._find(module)
        if path is None:
            self.missing.add(module)  # torch.nn, an installed library: not looked for again
            return None
        self.left -= 1
        summary = self._summary(path, module)
        if summary is None:
            return None
        # a folder without __init__.py is still importable (a namespace package): name the
        # file as the import does, so its own relative imports resolve from there
        return summary if summary.module == module else replace(summary, module=module)

    def _find(self, module: str) -> Path | None:
        parts = module.split(".")
        if not all(part.isidentifier() for part in parts):
            return None
        for base in self.bases:
            for candidate in (
                base.joinpath(*parts[:-1], parts[-1] + ".py"),
                base.joinpath(*parts, "__init__.py"),
            ):
                if candidate.is_file() and self._inside(candidate):  # FIFOs are not files
                    return candidate
        return None

    def _inside(self, path: Path) -> bool:
        resolved = _resolved(path)
        if not any(root == resolved or root in resolved.parents for root in self.roots):
            return False  # an installed library, or another checkout: not this project
        return not is_excluded_within(path, self.config)

    def _summary(self, path: Path, module: str) -> FileSummary | None:
        from gradlint.discovery import read_source
        from gradlint.engine import lint_source
        from gradlint.interrupts import FileTimeout, time_limit
        from gradlint.runner import FILE_TIME_LIMIT

        display = path.as_posix()
        try:
            data = read_source(path)  # regular files only: a FIFO named models.py never blocks
            stat = path.stat()
        except OSError:
            return None
        memo = (str(_resolved(path)), stat.st_size, stat.st_mtime_ns, module)
        if memo in _MEMO:
            return _MEMO[memo]
        cached = self.cache.get(self.cache.key(display, data)) if self.cache else None
        if cached is not None and cached.summary is not None:
            return cached.summary
        is_package = path.name == "__init__.py"
        try:
            with time_limit(FILE_TIME_LIMIT):  # summaries need no rules: parse and index only
                result = lint_source(data, display, self.config, [], module=(module, is_package))
        except FileTimeout:
            return None
        if result.summary is not None:
            if len(_MEMO) >= _MEMO_SIZE:
                _MEMO.pop(next(iter(_MEMO)))
            _MEMO[memo] = result.summary
        return result.summary


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symlink loop
        return path.absolute()
