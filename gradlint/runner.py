"""Lint a tree: prefilter, cache, parallel per-file work, then the project phase."""

from __future__ import annotations

import ast
import gc
import multiprocessing
import os
import re
import signal
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from gradlint.cache import Cache
from gradlint.config import Config
from gradlint.discovery import read_source
from gradlint.findings import FileResult, Finding, Severity
from gradlint.follow import ImportFollower
from gradlint.interrupts import FileTimeout, stop_behind, time_limit
from gradlint.notebook import (
    NotebookError,
    NotPython,
    is_notebook,
    lint_notebook,
    read_notebook,
    to_cells,
)
from gradlint.project import Deferred, FileSummary, Project, module_name
from gradlint.registry import LazyRule, severity_for
from gradlint.suppression import keep_unsuppressed

if TYPE_CHECKING:
    from gradlint.rule import Rule

FILE_TIME_LIMIT = 60  # seconds for one file; a pathological file is reported, the run goes on
PARALLEL_MIN_FILES = 16  # below this, starting workers costs more than it saves
# `nn.Module`: a snippet or notebook cell that uses torch without importing it
TORCH_MARKERS = (b"torch", b"lightning", b"nn.Module")
_IMPORT = re.compile(rb"^[ \t]*(?:from[ \t]+(\.*[\w.]*)[ \t]+import|import[ \t]+([\w.]+))", re.M)


@dataclass(frozen=True)
class RunOptions:
    jobs: int = 0  # 0: one per available core
    cache_dir: Path | None = None  # None: no cache
    prefilter: bool = True
    named: frozenset[str] = frozenset()  # files named on the command line (display paths)


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def lint_tree(
    paths: Sequence[Path], config: Config, rules: Sequence[type[Rule]], options: RunOptions
) -> list[FileResult]:
    """Results for every file, in the order given, with project-phase findings merged in.

    Files are read one at a time for the prefilter and the cache key and their bytes dropped
    at once; workers read what they lint themselves, so memory does not grow with the tree.
    """
    local = _local_modules(paths) if options.prefilter else None
    cache = Cache(options.cache_dir, _settings(config, rules)) if options.cache_dir else None
    results: dict[str, FileResult] = {}
    work: list[WorkItem] = []
    for path in paths:
        display = path.as_posix()
        data = _read(path)
        if isinstance(data, OSError):
            results[display] = lint_source_error(display, data, config)
            continue
        if local is not None and not _may_hold_torch(path, data, local):
            if display not in options.named or _compiles(path, data):
                results[display] = FileResult(path=display, skipped="no torch and no local import")
                continue
            # named explicitly and broken: lint it, so the user hears why (GL001)
        hit = cache.get(cache.key(display, data)) if cache else None
        if hit is not None:
            results[display] = hit
        else:
            work.append((display, _module_of(path)))
    for display, (result, key) in zip(
        (item[0] for item in work), _run(work, config, rules, options.jobs, cache)
    ):
        results[display] = result
        if cache and key:
            cache.put(key, result)
    ordered = project_phase([results[p.as_posix()] for p in paths], config, rules, cache)
    # notebooks are linted (and cached) as their joined cells; cells are mapped at the end
    return [_notebook_cells(p, r) if is_notebook(p) else r for p, r in zip(paths, ordered)]


WorkItem = tuple[str, tuple[str, bool]]  # display path, (module name, is package)


def _notebook_cells(path: Path, result: FileResult) -> FileResult:
    data = _read(path)
    return result if isinstance(data, OSError) else to_cells(result, data)


def _read(path: Path) -> bytes | OSError:
    try:
        return read_source(path)
    except OSError as exc:
        return exc


def _settings(config: Config, rules: Sequence[type[Rule]]) -> str:
    return config.fingerprint() + "|" + ",".join(rule.CODE for rule in rules)


def passes_prefilter(paths: Sequence[Path]) -> list[Path]:
    """The files among `paths` that a run parses (cache aside): the others cannot hold
    PyTorch code. For benchmarks, whose floor must parse the same files."""
    local = _local_modules(paths)
    return [
        p for p in paths if not isinstance(d := _read(p), OSError) and _may_hold_torch(p, d, local)
    ]


def _local_modules(paths: Sequence[Path]) -> set[str]:
    """Every module and package name the linted tree defines (`pkg`, `pkg.models`, ...)."""
    local: set[str] = set()
    for path in paths:
        if is_notebook(path):
            continue  # nothing imports a notebook
        name, _ = module_name(path)
        parts = name.split(".")
        local.update(".".join(parts[: i + 1]) for i in range(len(parts)))
    return local


def _may_hold_torch(path: Path, data: bytes, local: set[str]) -> bool:
    """The file mentions torch, or imports a module of the linted tree (relative included)."""
    if any(marker in data for marker in TORCH_MARKERS):
        return True
    code = _code_of(path, data)
    if code is None:
        return True  # a broken notebook: report it (GL001) rather than skip it
    for match in _IMPORT.finditer(code):
        module = (match.group(1) or match.group(2) or b"").decode("ascii", "replace")
        if module.startswith(".") or module in local or module.split(".")[0] in local:
            return True
    return False


def _compiles(path: Path, data: bytes) -> bool:
    """Python accepts the file (notebooks: their code cells)."""
    code = _code_of(path, data)
    if code is None:
        return False
    try:
        compile(code, path.as_posix(), "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def _module_of(path: Path) -> tuple[str, bool]:
    """A notebook cannot be imported: its name must not shadow `train.py` beside `train.ipynb`."""
    name, is_package = module_name(path)
    return (f"{name}.ipynb" if is_notebook(path) else name), is_package


def _code_of(path: Path, data: bytes) -> bytes | None:
    """The Python a file holds (a notebook's code cells); None for an unreadable notebook."""
    if not is_notebook(path):
        return data
    try:
        return read_notebook(data).source.encode("utf-8")
    except NotPython:
        return b""  # R, Julia...: skipped when linted, with a note
    except NotebookError:
        return None


# -- per-file work, in this process or in workers --------------------------------------------

_WORKER: tuple[Config, list[type[Rule]], Cache | None] | None = None


def _init_worker(config: Config, rules: list[type[Rule]], cache: Cache | None) -> None:
    global _WORKER
    _WORKER = (config, rules, cache)  # rule classes travel to workers by reference (module + name)
    _calm_gc()


def _init_process(config: Config, rules: list[type[Rule]], cache: Cache | None) -> None:
    """A worker process leaves Ctrl-C to the main process, which cancels the work left."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _init_worker(config, rules, cache)


_GC_CALMED = False


def _calm_gc() -> None:
    """Parsing allocates millions of small objects, and with the default thresholds the cyclic
    collector runs every 700 of them, rescanning every object alive (the interpreter, libcst,
    gradlint) again and again. Freeze what exists now and collect young objects less often:
    a file's cyclic garbage is still freed within a few thousand statements."""
    global _GC_CALMED
    if not _GC_CALMED:
        _GC_CALMED = True
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)


def _lint_one(item: WorkItem) -> tuple[FileResult, str | None]:
    """Lint one file (read here, in the worker) and return its cache key with the result."""
    assert _WORKER is not None
    from gradlint.engine import lint_source, unreadable  # loaded once per worker

    config, rules, cache = _WORKER
    display, module = item
    data = _read(Path(display))
    if isinstance(data, OSError):
        return lint_source_error(display, data, config), None
    key = cache.key(display, data) if cache else None
    try:
        with time_limit(FILE_TIME_LIMIT):
            if is_notebook(display):
                return lint_notebook(data, display, config, rules, module=module), key
            return lint_source(data, display, config, rules, module=module), key
    except FileTimeout:
        message = f"linting took longer than {FILE_TIME_LIMIT} s; the file was skipped"
        return unreadable(display, message, config), key


def lint_source_error(display: str, error: OSError, config: Config) -> FileResult:
    from gradlint.engine import unreadable

    return unreadable(display, f"cannot read file: {error.strerror or error}", config)


def _run(
    work: list[WorkItem],
    config: Config,
    rules: Sequence[type[Rule]],
    jobs: int,
    cache: Cache | None,
) -> Iterable[tuple[FileResult, str | None]]:
    if not work:
        return []
    jobs = jobs or default_jobs()
    # a catalogue entry stands in for its rule until a file must really be linted
    chosen = [rule.load() if isinstance(rule, LazyRule) else rule for rule in rules]
    if jobs == 1 or len(work) < PARALLEL_MIN_FILES:
        _init_worker(config, chosen, cache)
        return map(_lint_one, work)
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    chunk = max(1, min(16, len(work) // (jobs * 8)))
    pool = ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=multiprocessing.get_context(method),
        initializer=_init_process,
        initargs=(config, chosen, cache),
    )
    try:
        return list(pool.map(_lint_one, work, chunksize=chunk))
    except BaseException:  # an interrupt: drop the queued files instead of linting them all
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)


# -- the project phase ---------------------------------------------------------------------


def project_phase(
    results: list[FileResult],
    config: Config,
    rules: Sequence[type[Rule]],
    cache: Cache | None = None,
) -> list[FileResult]:
    """Decide the deferred findings; the files they need but nobody named are followed
    through their imports (read, never reported)."""
    summaries = [r.summary for r in results if r.summary is not None]
    if not any(s.deferred for s in summaries):
        return results
    project = Project(summaries, ImportFollower(config, summaries, cache).load)
    by_code = {rule.CODE: rule for rule in rules}
    extra: dict[str, list[Finding]] = {}
    for summary in summaries:
        for item in summary.deferred:
            rule = by_code.get(item.code)
            found = project.find_class(item.qualified, summary) if rule else None
            if rule is None or found is None:
                continue  # rule not selected, or the class is not in the linted tree
            where, facts = found
            try:
                message = rule.resolve_deferred(item, facts, where)
                if message is not None:
                    finding = _finding(rule, config, item, message, summary)
                    extra.setdefault(summary.path, []).append(finding)
            except Exception as exc:  # the per-rule boundary of the project phase
                stop = stop_behind(exc)
                if stop is not None:
                    raise stop from exc
                extra.setdefault(summary.path, []).append(_crash(rule, summary.path, exc))
    _join(summaries, project, by_code, config, extra)
    return [_merge(result, extra.get(result.path, []), config) for result in results]


def _join(
    summaries: list[FileSummary],
    project: Project,
    by_code: dict[str, type[Rule]],
    config: Config,
    extra: dict[str, list[Finding]],
) -> None:
    """Deferred findings of one rule that name the same project class, from different
    files, decided together (`Rule.join_deferred`)."""
    groups: dict[tuple[str, str, str], list[tuple[Deferred, FileSummary]]] = {}
    for summary in summaries:
        for item in summary.deferred:
            rule = by_code.get(item.code)
            if rule is None or not rule.JOINS_DEFERRED:
                continue
            found = project.find_class(item.qualified, summary)
            if found is not None:
                key = (item.code, found[0].module, found[1].name)
                groups.setdefault(key, []).append((item, summary))
    for (code, _, _), members in groups.items():
        rule = by_code[code]
        for item, summary in members:
            partners = [member for member in members if member[0] is not item]
            try:
                message = rule.join_deferred(item, partners)
            except Exception as exc:  # the per-rule boundary of the project phase
                stop = stop_behind(exc)
                if stop is not None:
                    raise stop from exc
                extra.setdefault(summary.path, []).append(_crash(rule, summary.path, exc))
                continue
            if message is not None:
                finding = _finding(rule, config, item, message, summary)
                extra.setdefault(summary.path, []).append(finding)


def _finding(
    rule: type[Rule], config: Config, item: Deferred, message: str, summary: FileSummary
) -> Finding:
    return Finding(
        path=summary.path,
        line=item.line,
        column=item.column,
        end_line=item.end_line,
        end_column=item.end_column,
        code=rule.CODE,
        name=rule.name(),
        severity=severity_for(rule, config)
        or Severity(item.data.get("severity", rule.SEVERITY.value)),
        message=message,
        hint=rule.HINT,
    )


def _crash(rule: type[Rule], path: str, exc: Exception) -> Finding:
    from gradlint.engine import _engine_finding

    message = (
        f"internal error in rule {rule.CODE} ({rule.name()}) while joining files: "
        f"{type(exc).__name__}: {exc}. Please report this at the gradlint issue tracker"
    )
    return _engine_finding(path, "GL000", message)


def _merge(result: FileResult, extra: list[Finding], config: Config) -> FileResult:
    if not extra or result.summary is None:
        return result
    kept = keep_unsuppressed(extra, result.summary.noqa, config)
    if not kept:
        return result
    lines = result.source_lines
    if not lines:
        try:
            text = read_source(Path(result.path)).decode("utf-8", errors="replace")
            lines = tuple(text.splitlines())
        except OSError:
            lines = ()
    findings = sorted((*result.findings, *kept), key=lambda f: f.sort_key)
    return replace(result, findings=tuple(findings), source_lines=lines)
