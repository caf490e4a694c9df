from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from gradlint.cli import cli

BAD = "from torch import nn\nnet = nn.Sequential(" + "nn.Linear(4, 4), nn.Sigmoid(), " * 4 + ")\n"


@pytest.fixture
def lint(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Run the CLI from inside tmp_path with the cache off; returns click's Result."""
    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> Result:
        return CliRunner().invoke(cli, ["--no-cache", *args], catch_exceptions=False)

    return run
