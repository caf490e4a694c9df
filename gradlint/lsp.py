"""`gradlint lsp`: a Language Server that publishes findings as diagnostics.

It lints the editor's buffer (not the file on disk) on open, change and save, with the
configuration found from the file's folder, and clears the diagnostics on close. Files the
configuration excludes get no diagnostics. Models the buffer imports from other files of the
project are read from disk, as `gradlint check` does for a file named alone, so cross-file
findings show. Linting runs on one worker thread and edits are coalesced: a change waits
`DEBOUNCE_SECONDS` for the next one, and edits made while a lint runs only mark the buffer
stale, so a large buffer is linted once more, at its latest text, not once per keystroke.
pygls is an
optional extra (`pip install "gradlint[lsp]"`); without it gradlint imports and runs as
usual and only this command says what to install. Notebooks opened as `.ipynb` text are
not linted here (editors send notebooks through a separate protocol); lint them with the CLI.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from gradlint import __version__
from gradlint.config import Config, ConfigError, find_config_file, load_config
from gradlint.discovery import is_excluded_within
from gradlint.engine import lint_source
from gradlint.findings import Finding, Severity
from gradlint.notebook import is_notebook
from gradlint.output.sarif import HELP_URI
from gradlint.registry import ENGINE_CODES, selected_rules
from gradlint.runner import project_phase

NAME = "gradlint"
_SEVERITY = {Severity.ERROR: 1, Severity.WARNING: 2, Severity.INFO: 3}  # LSP DiagnosticSeverity
DEBOUNCE_SECONDS = 0.3
_LOG = logging.getLogger(__name__)


_INSTALL = 'the language server needs pygls: pip install "gradlint[lsp]"'


class MissingExtra(ImportError):
    """pygls is not installed."""


def _server_class() -> Any:
    for module in ("pygls.lsp.server", "pygls.server"):  # pygls 2, then pygls 1
        try:
            return importlib.import_module(module).LanguageServer
        except (ImportError, AttributeError):
            continue
    raise MissingExtra(_INSTALL)


def path_of(uri: str) -> Path:
    parsed = urlparse(uri)
    return Path(unquote(parsed.path)) if parsed.scheme == "file" else Path(parsed.path or uri)


def _config_for(path: Path) -> Config:
    start = path.parent if path.parent.is_dir() else Path(".")
    return load_config(find_config_file(start))


def diagnostics(source: str, uri: str) -> list[dict[str, Any]]:
    """LSP `Diagnostic` objects (as JSON-ready dicts) for one buffer."""
    path = path_of(uri)
    if is_notebook(path) or path.suffix not in (".py", ".pyi", ""):
        return []  # not Python text
    try:
        config = _config_for(path)
        if is_excluded_within(path, config):
            return []  # a walk of the project would not lint it either
        rules = selected_rules(config)
        result = lint_source(source, path.as_posix(), config, rules)
        (result,) = project_phase([result], config, rules)  # follows the buffer's imports
    except ConfigError as exc:  # show it where the user looks, instead of failing silently
        return [_diagnostic_at(0, 0, 0, 1, 1, "config-error", str(exc))]
    lines = source.splitlines()
    return [_diagnostic(f, lines) for f in result.findings]


def _utf16(line: str, column: int) -> int:
    """LSP counts UTF-16 code units by default; gradlint counts code points from 1."""
    prefix = line[: max(column - 1, 0)]
    return len(prefix.encode("utf-16-le")) // 2 + max(column - 1 - len(prefix), 0)


def _diagnostic(f: Finding, lines: list[str]) -> dict[str, Any]:
    def text(number: int) -> str:
        return lines[number - 1] if 0 < number <= len(lines) else ""

    start = _utf16(text(f.line), f.column)
    end = _utf16(text(f.end_line), f.end_column)
    if f.end_line == f.line and end <= start:
        end = start + 1  # an empty range is invisible in most editors
    diagnostic = _diagnostic_at(
        f.line - 1,
        start,
        f.end_line - 1,
        end,
        _SEVERITY[f.severity],
        f.code,
        " ".join(f.message.split()),
    )
    if f.code.startswith("GL1") or f.code in ENGINE_CODES:  # the codes with a page
        diagnostic["codeDescription"] = {"href": HELP_URI.format(code=f.code)}
    if f.hint:
        diagnostic["data"] = {"hint": f.hint, "name": f.name}
    return diagnostic


def _diagnostic_at(
    line: int, column: int, end_line: int, end_column: int, severity: int, code: str, message: str
) -> dict[str, Any]:
    return {
        "range": {
            "start": {"line": line, "character": column},
            "end": {"line": end_line, "character": end_column},
        },
        "severity": severity,
        "code": code,
        "source": NAME,
        "message": message,
    }


Publish = Callable[[str, "list[dict[str, Any]]", "int | None"], None]
Job = tuple[asyncio.AbstractEventLoop, str, str, "int | None"]  # loop, uri, text, version


class Scheduler:
    """Lints buffers on one worker thread, at most one lint per buffer at a time.

    `update` records a buffer's latest text and starts its lint after `delay` seconds unless
    another update comes first; an update during a lint marks the buffer stale, and when
    that lint ends its result is dropped and the latest text is linted instead. Runs on the
    server's event loop; only `lint` runs on the worker, a daemon thread, so a long lint
    never keeps the server alive after the editor says exit.
    """

    def __init__(
        self, lint: Callable[[str, str], list[dict[str, Any]]], publish: Publish
    ) -> None:
        self.lint = lint
        self.publish = publish
        self.jobs: queue.SimpleQueue[Job] = queue.SimpleQueue()
        self.worker: threading.Thread | None = None
        self.texts: dict[str, tuple[str, int | None]] = {}
        self.timers: dict[str, asyncio.TimerHandle] = {}
        self.running: set[str] = set()
        self.stale: set[str] = set()

    def update(self, uri: str, text: str, version: int | None, delay: float) -> None:
        self.texts[uri] = (text, version)
        self._cancel(uri)
        self.timers[uri] = asyncio.get_running_loop().call_later(delay, self._start, uri)

    def close(self, uri: str) -> None:
        self.texts.pop(uri, None)
        self._cancel(uri)
        self.stale.discard(uri)
        self.publish(uri, [], None)

    def _cancel(self, uri: str) -> None:
        timer = self.timers.pop(uri, None)
        if timer is not None:
            timer.cancel()

    def _start(self, uri: str) -> None:
        self.timers.pop(uri, None)
        if uri not in self.texts:
            return  # closed meanwhile
        if uri in self.running:
            self.stale.add(uri)  # linted again, at its latest text, when this lint ends
            return
        self.running.add(uri)
        text, version = self.texts[uri]
        if self.worker is None:
            self.worker = threading.Thread(target=self._work, name="gradlint-lint", daemon=True)
            self.worker.start()
        self.jobs.put((asyncio.get_running_loop(), uri, text, version))

    def _work(self) -> None:
        while True:
            loop, uri, text, version = self.jobs.get()
            try:
                items, error = self.lint(text, uri), None
            except Exception as exc:  # the server boundary: reported in _done, never raised
                items, error = [], exc
            try:
                loop.call_soon_threadsafe(self._done, uri, version, items, error)
            except RuntimeError:
                return  # the event loop is closed: the server is shutting down

    def _done(
        self, uri: str, version: int | None, items: list[dict[str, Any]], error: Exception | None
    ) -> None:
        self.running.discard(uri)
        if uri in self.stale:
            self.stale.discard(uri)
            self._start(uri)  # this result is already out of date
            return
        if uri not in self.texts:
            return  # closed meanwhile
        if error is not None:  # log it and keep serving the other buffers
            _LOG.error("gradlint could not lint %s: %s: %s", uri, type(error).__name__, error)
            return
        self.publish(uri, items, version)


def create_server() -> Any:
    """The pygls server (pygls 1.x or 2.x); raises MissingExtra without pygls."""
    try:
        from lsprotocol import types
    except ImportError as exc:
        raise MissingExtra(_INSTALL) from exc
    server_class = _server_class()
    full = types.TextDocumentSyncKind.Full  # small files: the whole text on every change
    server = server_class(NAME, __version__, text_document_sync_kind=full)
    converter = server.protocol._converter  # lsprotocol's cattrs converter for its own types

    def publish(uri: str, items: list[dict[str, Any]], version: int | None = None) -> None:
        found = [converter.structure(item, types.Diagnostic) for item in items]
        if hasattr(server, "text_document_publish_diagnostics"):
            params = types.PublishDiagnosticsParams(uri=uri, diagnostics=found, version=version)
            server.text_document_publish_diagnostics(params)
        else:
            server.publish_diagnostics(uri, found, version=version)  # pygls 1

    def document(uri: str) -> Any:
        workspace = server.workspace
        getter = getattr(workspace, "get_text_document", None) or workspace.get_document
        return getter(uri)

    scheduler = Scheduler(lambda text, uri: diagnostics(text, uri), publish)

    def lint(uri: str, delay: float) -> None:
        doc = document(uri)
        scheduler.update(uri, doc.source, getattr(doc, "version", None), delay)

    def did_open(params: types.DidOpenTextDocumentParams) -> None:
        lint(params.text_document.uri, 0)

    def did_change(params: types.DidChangeTextDocumentParams) -> None:
        lint(params.text_document.uri, DEBOUNCE_SECONDS)

    def did_save(params: types.DidSaveTextDocumentParams) -> None:
        lint(params.text_document.uri, 0)

    def did_close(params: types.DidCloseTextDocumentParams) -> None:
        scheduler.close(params.text_document.uri)

    # registered by call, not as decorators: the server class is only known at runtime
    server.feature(types.TEXT_DOCUMENT_DID_OPEN)(did_open)
    server.feature(types.TEXT_DOCUMENT_DID_CHANGE)(did_change)
    server.feature(types.TEXT_DOCUMENT_DID_SAVE)(did_save)
    server.feature(types.TEXT_DOCUMENT_DID_CLOSE)(did_close)
    return server


def serve() -> None:
    """Run the server over standard input and output until the client says exit."""
    create_server().start_io()
