"""`gradlint lsp` over stdio, driven by pygls' own language client (a real LSP client)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pygls", reason="the lsp extra (pygls) is not installed")
from lsprotocol import types  # noqa: E402  (after the skip: lsprotocol comes with pygls)
from pygls.lsp.client import LanguageClient  # noqa: E402

TIMEOUT = 60
MODELS = """\
import torch
from torch import nn


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(32, 32, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rnn(x)[0]
"""
TRAIN = """\
import torch

from models import Encoder


def train(loader) -> None:
    model = Encoder()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for x, y in loader:
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
"""
SIGMOIDS = """\
from torch import nn

model = nn.Sequential(
    nn.Linear(8, 8), nn.Sigmoid(),
    nn.Linear(8, 8), nn.Sigmoid(),
    nn.Linear(8, 8), nn.Sigmoid(),
    nn.Linear(8, 8), nn.Sigmoid(),
)
"""

Session = Callable[["Editor"], Awaitable[None]]


class Editor:
    """A pygls client talking to `gradlint lsp`, collecting every diagnostics notification."""

    def __init__(self) -> None:
        self.client = LanguageClient("test-editor", "1")
        self.published: list[types.PublishDiagnosticsParams] = []
        self.arrived = asyncio.Event()

        @self.client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def on_diagnostics(params: types.PublishDiagnosticsParams) -> None:
            self.published.append(params)
            self.arrived.set()

    def open(self, path: Path, text: str) -> None:
        self.client.text_document_did_open(types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=path.as_uri(), language_id="python", version=1, text=text)))

    def change(self, path: Path, version: int, text: str) -> None:
        self.client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=path.as_uri(), version=version),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)]))

    async def diagnostics(self, path: Path, version: int | None = None) -> list[Any]:
        """The first diagnostics published for `path` (at `version`, when given)."""
        async def wait() -> list[Any]:
            while True:
                for params in self.published:
                    if params.uri == path.as_uri() and version in (None, params.version):
                        return list(params.diagnostics)
                self.arrived.clear()
                await self.arrived.wait()

        return await asyncio.wait_for(wait(), TIMEOUT)


def run_editor(cwd: Path, session: Session) -> Editor:
    async def main() -> Editor:
        editor = Editor()
        await editor.client.start_io(sys.executable, "-m", "gradlint", "lsp", cwd=str(cwd))
        try:
            await asyncio.wait_for(editor.client.initialize_async(types.InitializeParams(
                capabilities=types.ClientCapabilities(), root_uri=cwd.as_uri())), TIMEOUT)
            editor.client.initialized(types.InitializedParams())
            await session(editor)
            await asyncio.wait_for(editor.client.shutdown_async(None), TIMEOUT)
            editor.client.exit(None)
        finally:
            await editor.client.stop()
        return editor

    return asyncio.run(main())


def test_editor_shows_a_finding_that_needs_the_imported_model(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.gradlint]\nselect = ['GL104']\n")
    (tmp_path / "models.py").write_text(MODELS)
    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    found: list[Any] = []

    async def session(editor: Editor) -> None:
        editor.open(script, TRAIN)  # only the buffer is sent; models.py stays on disk
        found.extend(await editor.diagnostics(script))

    run_editor(tmp_path, session)
    (diagnostic,) = found
    assert diagnostic.code == "GL104"
    assert diagnostic.range.start == types.Position(line=11, character=8)
    assert "`Encoder` (" in diagnostic.message and "models.py:5" in diagnostic.message


def test_editor_uses_the_buffers_configuration_and_its_excludes(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "vendor").mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        "[tool.gradlint]\nselect = ['GL101']\nseverity = { GL101 = 'error' }\n"
        "extend-exclude = ['vendor']\n"
    )
    inside, vendored = project / "net.py", project / "vendor" / "net.py"
    found: dict[str, list[Any]] = {}

    async def session(editor: Editor) -> None:
        editor.open(inside, SIGMOIDS)
        editor.open(vendored, SIGMOIDS)
        found["inside"] = await editor.diagnostics(inside)
        found["vendored"] = await editor.diagnostics(vendored)

    run_editor(tmp_path, session)  # the server starts outside the project
    assert [(d.code, d.severity) for d in found["inside"]] == [
        ("GL101", types.DiagnosticSeverity.Error)  # the project's severity override applies
    ]
    assert found["vendored"] == []


def test_rapid_edits_to_a_large_buffer_are_linted_once_at_the_latest_text(tmp_path: Path) -> None:
    """An editor sends a change per keystroke; linting each in turn would queue minutes of
    work on a large file. The server lints the latest text and drops what it superseded."""
    script = tmp_path / "net.py"
    filler = "".join(f"value_{i} = {i}\n" for i in range(3000))
    edits = 25
    published: list[types.PublishDiagnosticsParams] = []

    async def session(editor: Editor) -> None:
        editor.open(script, filler)
        await editor.diagnostics(script, version=1)
        for version in range(2, edits + 2):
            text = filler + (SIGMOIDS if version == edits + 1 else f"# edit {version}\n")
            editor.change(script, version, text)
        final = await editor.diagnostics(script, version=edits + 1)
        assert [d.code for d in final] == ["GL101"]
        await asyncio.sleep(1.0)  # anything still queued would arrive now
        published.extend(editor.published)

    run_editor(tmp_path, session)
    versions = [p.version for p in published]
    assert versions[0] == 1 and versions[-1] == edits + 1
    assert len(versions) <= 3, versions  # not one lint per edit
