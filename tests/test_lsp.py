"""`gradlint lsp` driven over stdio by a minimal LSP client speaking real JSON-RPC."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

import pytest

from gradlint.lsp import diagnostics

BAD = """\
from torch import nn

model = nn.Sequential(
    nn.Linear(8, 8), nn.Sigmoid(),
    nn.Linear(8, 8), nn.Sigmoid(),
    nn.Linear(8, 8), nn.Sigmoid(),
    nn.Linear(8, 8), nn.Sigmoid(),
)
"""
GOOD = BAD.replace("Sigmoid", "ReLU")
TIMEOUT = 30


class Client:
    """Content-Length framed JSON-RPC over a subprocess's stdin/stdout."""

    def __init__(self, cwd: Path) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gradlint", "lsp"], cwd=cwd, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        self.messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self.next_id = 0
        assert self.process.stdout is not None
        threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True).start()

    def _read(self, stream: IO[bytes]) -> None:
        while True:
            headers: dict[str, str] = {}
            while True:
                line = stream.readline()
                if not line:
                    return
                if line in (b"\r\n", b"\n"):
                    break
                name, _, value = line.decode("ascii").partition(":")
                headers[name.strip().lower()] = value.strip()
            body = stream.read(int(headers["content-length"]))
            self.messages.put(json.loads(body))

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode("utf-8")
        assert self.process.stdin is not None
        self.process.stdin.write(f"Content-Length: {len(body)}\r\n\r\n".encode("ascii") + body)
        self.process.stdin.flush()

    def request(self, method: str, params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.send({"id": self.next_id, "method": method, "params": params})
        return self.wait(lambda m: m.get("id") == self.next_id and "method" not in m)

    def notify(self, method: str, params: Any) -> None:
        self.send({"method": method, "params": params})

    def wait(self, wanted: Any) -> dict[str, Any]:
        while True:
            try:
                message = self.messages.get(timeout=TIMEOUT)
            except queue.Empty:
                self.process.kill()
                _, err = self.process.communicate()
                pytest.fail(f"no answer from the server; stderr:\n{err.decode(errors='replace')}")
            if wanted(message):
                return message

    def diagnostics(self, uri: str) -> list[dict[str, Any]]:
        message = self.wait(lambda m: m.get("method") == "textDocument/publishDiagnostics"
                            and m["params"]["uri"] == uri)
        return list(message["params"]["diagnostics"])


def test_server_publishes_diagnostics_over_stdio(tmp_path: Path) -> None:
    pytest.importorskip("pygls", reason="the lsp extra (pygls) is not installed")
    path = tmp_path / "net.py"
    path.write_text(BAD, encoding="utf-8")
    uri = path.as_uri()
    client = Client(tmp_path)
    try:
        reply = client.request(
            "initialize",
            {"processId": os.getpid(), "rootUri": tmp_path.as_uri(), "capabilities": {}},
        )
        assert reply["result"]["serverInfo"]["name"] == "gradlint"
        assert reply["result"]["capabilities"]["textDocumentSync"]["change"] == 1  # full text
        client.notify("initialized", {})
        client.notify("textDocument/didOpen", {"textDocument": {
            "uri": uri, "languageId": "python", "version": 1, "text": BAD}})
        (found,) = client.diagnostics(uri)
        assert found["code"] == "GL101"
        assert found["source"] == "gradlint"
        assert found["severity"] == 2  # warning
        assert found["range"]["start"] == {"line": 2, "character": 8}
        assert found["range"]["end"]["line"] == 7
        assert found["message"].startswith("4 saturating activations (sigmoid) are stacked")
        assert found["codeDescription"]["href"].endswith("docs/rules/GL101.md")

        client.notify("textDocument/didChange", {
            "textDocument": {"uri": uri, "version": 2},
            "contentChanges": [{"text": GOOD}]})
        assert client.diagnostics(uri) == []

        client.notify("textDocument/didChange", {
            "textDocument": {"uri": uri, "version": 3},
            "contentChanges": [{"text": BAD}]})
        assert [d["code"] for d in client.diagnostics(uri)] == ["GL101"]
        client.notify("textDocument/didSave", {"textDocument": {"uri": uri}})
        assert [d["code"] for d in client.diagnostics(uri)] == ["GL101"]
        client.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
        assert client.diagnostics(uri) == []

        assert client.request("shutdown", None)["result"] is None
        client.notify("exit", None)
        assert client.process.wait(timeout=TIMEOUT) == 0
    finally:
        if client.process.poll() is None:
            client.process.kill()
            client.process.wait()
        for stream in (client.process.stdin, client.process.stdout, client.process.stderr):
            if stream is not None:
                stream.close()
    assert path.read_text(encoding="utf-8") == BAD  # the buffer is linted, not the file


def test_diagnostics_count_utf16_code_units() -> None:
    source = 'from torch import nn\ns = "😀"; m = nn.Sequential(' + "nn.Sigmoid(), " * 4 + ")\n"
    (found,) = diagnostics(source, "file:///tmp/emoji.py")
    # the emoji is one code point but two UTF-16 code units
    column = source.splitlines()[1].index("nn.Seq")
    assert found["range"]["start"] == {"line": 1, "character": column + 1}


def test_config_error_is_shown_as_a_diagnostic(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.gradlint]\nbogus = 1\n", encoding="utf-8")
    (found,) = diagnostics(BAD, (tmp_path / "net.py").as_uri())
    assert found["code"] == "config-error" and "bogus" in found["message"]


def test_notebooks_and_other_files_get_no_diagnostics() -> None:
    assert diagnostics("{}", "file:///tmp/a.ipynb") == []
    assert diagnostics(BAD, "file:///tmp/notes.md") == []


def test_gradlint_imports_without_pygls() -> None:
    code = ("import sys; sys.modules['pygls'] = None; sys.modules['lsprotocol'] = None\n"
            "import gradlint, gradlint.cli, gradlint.lsp\n"
            "from click.testing import CliRunner\n"
            "r = CliRunner().invoke(gradlint.cli.cli, ['lsp'])\n"
            "print(r.exit_code, r.output)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("2 ")
    assert 'pip install "gradlint[lsp]"' in out.stdout
