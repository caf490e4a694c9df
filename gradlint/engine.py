"""Parse once, build the per-file index once, run every selected rule in one traversal."""

from __future__ import annotations

import ast
import io
import tokenize
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import libcst as cst

from gradlint.config import Config
from gradlint.discovery import read_source
from gradlint.findings import FileResult, Finding, Severity
from gradlint.guard import refusal, run_deep
from gradlint.interrupts import stop_behind
from gradlint.project import Deferred, FileSummary, module_name
from gradlint.registry import ENGINE_CODES, is_selected, options_for, selected_rules, severity_for
from gradlint.rule import Rule, RuleContext
from gradlint.semantics.index import TorchIndex
from gradlint.semantics.nodes import indexed
from gradlint.semantics.summary import class_facts
from gradlint.suppression import has_skip_file, is_test_path, keep_unsuppressed, noqa_lines
from gradlint.traversal import Dispatcher


def lint_file(path: Path, config: Config, rules: Sequence[type[Rule]]) -> FileResult:
    """Read and lint one file; an unreadable file becomes a GL001 finding."""
    display = path.as_posix()
    try:
        data = read_source(path)
    except OSError as exc:
        return unreadable(display, f"cannot read file: {exc.strerror or exc}", config)
    return lint_source(data, display, config, rules, module=module_name(path))


def lint_paths(
    paths: Sequence[Path], config: Config, rules: Sequence[type[Rule]] | None = None
) -> Iterator[FileResult]:
    """Lint each file, in the order given, one file at a time (no project phase)."""
    chosen = list(selected_rules(config)) if rules is None else list(rules)
    for path in paths:
        yield lint_file(path, config, chosen)


def lint_source(
    source: str | bytes,
    path: str,
    config: Config | None = None,
    rules: Sequence[type[Rule]] | None = None,
    module: tuple[str, bool] | None = None,
) -> FileResult:
    """Lint one file's source; never raises for bad input or a failing rule.

    `module` is the file's dotted module name and whether it is a package `__init__`, for
    the project phase; by default it is derived from `path`.
    """
    config = config or Config()
    chosen = list(selected_rules(config)) if rules is None else list(rules)
    try:
        text = _decode(source)
    except (UnicodeDecodeError, SyntaxError, LookupError) as exc:
        line = _decode_error_line(source, exc)
        message = f"file is not valid text in its declared encoding: {exc}"
        return unreadable(path, message, config, line)
    if has_skip_file(text):
        return FileResult(path=path, skipped="gradlint: skip-file")
    refused = refusal(
        source if isinstance(source, bytes) else text.encode("utf-8", "surrogatepass")
    )
    if refused is not None:
        return unreadable(path, refused, config)
    try:
        tree = cst.parse_module(text)
    except cst.ParserSyntaxError as exc:
        message, line, column = _syntax_error(text, path, exc)
        return unreadable(path, f"syntax error: {message}", config, line, column)
    except RecursionError:
        return unreadable(path, "file is nested too deeply to parse", config)
    noqa = noqa_lines(text)
    name, is_package = module if module is not None else module_name(Path(path))
    needed = [rule for rule in chosen if not rule.NEEDS or any(w in text for w in rule.NEEDS)]
    if is_test_path(path, config):
        needed = [rule for rule in needed if rule.IN_TESTS]

    def analyse() -> FileResult:
        with indexed(tree):
            findings, index, deferred = _run_rules(tree, path, config, needed, text)
            summary = FileSummary(
                path=path,
                module=name,
                is_package=is_package,
                imports=dict(index.names.aliases),
                classes=class_facts(index, text) if index.module_classes else {},
                deferred=tuple(deferred),
                noqa={line: tuple(codes) for line, codes in noqa.items()},
            )
        return _finish(path, text, findings, config, noqa, summary)

    return _analysed(analyse, path, config)


def _analysed(analyse: Callable[[], FileResult], path: str, config: Config) -> FileResult:
    """The per-file boundary: nothing raised while analysing one file escapes it except an
    interrupt or a timeout. A tree deeper than the recursion limit allows is analysed again
    on a deep stack (the guard has bounded its depth)."""
    try:
        try:
            return analyse()
        except RecursionError:
            pass  # retried below, outside this handler, so its frames are gone
        try:
            return run_deep(analyse)
        except RecursionError:
            return unreadable(path, "file is nested too deeply to analyse", config)
    except Exception as exc:
        stop = stop_behind(exc)
        if stop is not None:
            raise stop from exc
        message = (
            f"internal error while analysing the file: {type(exc).__name__}: {exc}"
            f"{_where(exc)}. Please report this at the gradlint issue tracker"
        )
        return FileResult(path=path, findings=(_engine_finding(path, "GL000", message),))


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    return f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""


def _decode(source: str | bytes) -> str:
    if isinstance(source, str):
        return source
    encoding, _ = tokenize.detect_encoding(io.BytesIO(source).readline)
    text = source.decode(encoding)
    if "\x00" in text:
        raise SyntaxError("source contains a NUL byte")
    return text.removeprefix("\ufeff")


def _decode_error_line(source: str | bytes, exc: Exception) -> int:
    if isinstance(exc, UnicodeDecodeError) and isinstance(source, bytes):
        return source.count(b"\n", 0, exc.start) + 1
    return 1  # a bad or missing coding declaration sits on line 1 or 2; position unknown


def _syntax_error(text: str, path: str, exc: cst.ParserSyntaxError) -> tuple[str, int, int]:
    """Python's own parser names the problem and its position better than libcst's does."""
    try:
        compile(text, path, "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
    except SyntaxError as error:
        if error.lineno:
            return error.msg, error.lineno, max(error.offset or 1, 1)
    except (ValueError, RecursionError, MemoryError):
        pass  # fall back to libcst's report below
    return exc.message, exc.raw_line, exc.raw_column + 1


def _run_rules(
    module: cst.Module,
    path: str,
    config: Config,
    rules: Sequence[type[Rule]],
    source: str | None = None,
) -> tuple[list[Finding], TorchIndex, list[Deferred]]:
    wrapper = cst.MetadataWrapper(module, unsafe_skip_copy=True)
    index = TorchIndex(module, source)
    instances = [
        rule(
            RuleContext(
                path=path,
                module=module,
                wrapper=wrapper,
                index=index,
                options=options_for(rule, config),
                severity=severity_for(rule, config),
            )
        )
        for rule in rules
    ]
    crashes: list[Finding] = []

    def crashed(rule: Rule, reason: str) -> None:
        message = (
            f"internal error in rule {rule.CODE} ({rule.name()}); it was skipped for this file: "
            f"{reason}. Please report this at the gradlint issue tracker"
        )
        crashes.append(_engine_finding(path, "GL000", message))

    dispatcher = Dispatcher(instances, crashed)
    dispatcher.walk(module)
    kept = [rule for rule in instances if rule not in dispatcher.crashed]
    findings = [f for rule in kept for f in rule.findings]
    return findings + crashes, index, [item for rule in kept for item in rule.deferred]


def _engine_finding(path: str, code: str, message: str, line: int = 1, column: int = 1) -> Finding:
    return Finding(
        path=path,
        line=line,
        column=column,
        end_line=line,
        end_column=column,
        code=code,
        name=ENGINE_CODES[code],
        severity=Severity.ERROR,
        message=message,
    )


def unreadable(
    path: str, message: str, config: Config, line: int = 1, column: int = 1
) -> FileResult:
    if not is_selected("GL001", ENGINE_CODES["GL001"], config):
        return FileResult(path=path)
    return FileResult(path=path, findings=(_engine_finding(path, "GL001", message, line, column),))


def _finish(
    path: str,
    text: str,
    findings: list[Finding],
    config: Config,
    noqa: dict[int, frozenset[str]],
    summary: FileSummary,
) -> FileResult:
    findings = keep_unsuppressed(findings, noqa, config)
    lines = tuple(text.splitlines()) if findings else ()
    return FileResult(path=path, findings=tuple(findings), source_lines=lines, summary=summary)
