"""`--fix` and `--diff` end to end."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

from click.testing import CliRunner

from gradlint.cli import cli

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "bad" / "char_rnn.py"


def _copy(tmp_path: Path) -> Path:
    target = tmp_path / "char_rnn.py"
    shutil.copy(EXAMPLE, target)
    os.chmod(target, 0o644)
    return target


def test_diff_prints_the_fix_and_writes_nothing(tmp_path: Path) -> None:
    target = _copy(tmp_path)
    before = target.read_bytes()
    result = CliRunner().invoke(cli, ["--select", "GL104", "--diff", "--no-cache", str(target)])
    assert result.exit_code == 1
    assert (
        "+            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)"
        in result.output
    )
    assert target.read_bytes() == before


def test_fix_writes_the_clipping_call_and_the_finding_is_gone(tmp_path: Path) -> None:
    target = _copy(tmp_path)
    result = CliRunner().invoke(cli, ["--select", "GL104", "--fix", "--no-cache", str(target)])
    assert result.exit_code == 0, result.output
    text = target.read_text()
    assert (
        "loss.backward()\n            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)\n            optimizer.step()"
        in text
    )
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["char_rnn.py"]
    again = CliRunner().invoke(cli, ["--select", "GL104", "--diff", "--no-cache", str(target)])
    assert again.exit_code == 0 and again.output == ""


def _notebook(tmp_path: Path, cells: list[dict[str, object]], indent: int | None = 1) -> Path:
    """A notebook with a markdown cell first, then `cells`, laid out with `indent`."""
    document = {
        "cells": [{"cell_type": "markdown", "metadata": {}, "source": ["# Model"]}, *cells],
        "metadata": {"language_info": {"name": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    target = tmp_path / "train.ipynb"
    target.write_text(json.dumps(document, indent=indent, ensure_ascii=False) + "\n")
    return target


def _code(*lines: str) -> dict[str, object]:
    source = [line + "\n" for line in lines]
    source[-1] = source[-1].rstrip("\n")  # as Jupyter stores a cell: no newline at its end
    return {
        "cell_type": "code",
        "metadata": {},
        "execution_count": None,
        "outputs": [],
        "source": source,
    }


_DROPOUT_CELL = _code(
    "import torch.nn.functional as F",
    "from torch import nn",
    "class Net(nn.Module):",
    "    def __init__(self):",
    "        super().__init__()",
    "        self.fc = nn.Linear(8, 2)",
    "    def forward(self, x):",
    "        return F.dropout(self.fc(x), 0.3)",
)


def test_diff_on_a_notebook_shows_the_cell_and_writes_nothing(tmp_path: Path) -> None:
    target = _notebook(tmp_path, [_code("%matplotlib inline"), _DROPOUT_CELL])
    before = target.read_bytes()
    result = CliRunner().invoke(cli, ["--select", "GL122", "--diff", "--no-cache", str(target)])
    assert result.exit_code == 1, result.output
    assert f"--- {target.as_posix()}:cell 3\n" in result.output
    assert "+        return F.dropout(self.fc(x), 0.3, training=self.training)\n" in result.output
    assert target.read_bytes() == before


def test_fix_on_a_notebook_edits_only_that_cell_and_keeps_the_layout(tmp_path: Path) -> None:
    target = _notebook(tmp_path, [_code("%matplotlib inline"), _DROPOUT_CELL], indent=2)
    before = json.loads(target.read_text())
    result = CliRunner().invoke(cli, ["--select", "GL122", "--fix", "--no-cache", str(target)])
    assert result.exit_code == 0, result.output
    after = json.loads(target.read_text())
    assert after["cells"][:2] == before["cells"][:2] and after["metadata"] == before["metadata"]
    assert (
        after["cells"][2]["source"][-1]
        == "        return F.dropout(self.fc(x), 0.3, training=self.training)"
    )
    assert after["cells"][2]["source"][:-1] == before["cells"][2]["source"][:-1]
    # written back as it was laid out: two-space indent, newline at the end
    assert target.read_text() == json.dumps(after, indent=2, ensure_ascii=False) + "\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.ipynb"]


def test_a_fix_on_a_line_that_ipython_rewrote_is_left_alone(tmp_path: Path) -> None:
    # IPython strips the first line's indentation from the whole cell: the lines the rules saw
    # are not the lines on disk, so the fix is not applied, and the finding is still reported
    indented = _code(*("    " + line for line in _DROPOUT_CELL["source"]))  # type: ignore[attr-defined]
    indented["source"] = [line.replace("\n", "") + "\n" for line in indented["source"]]  # type: ignore[union-attr]
    target = _notebook(tmp_path, [indented])
    before = target.read_bytes()
    result = CliRunner().invoke(cli, ["--select", "GL122", "--fix", "--no-cache", str(target)])
    assert result.exit_code == 1
    assert "GL122" in result.output
    assert target.read_bytes() == before


LOSS_SUM = """\
import torch
from torch import nn

def fit(model, loader, optimizer, epochs):
    criterion = nn.CrossEntropyLoss()
    for epoch in range(epochs):
        running = 0.0
        for x, y in loader:
            optimizer.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
            running += loss
        print(f"epoch {epoch}: {running / len(loader):.3f}")
"""


def test_fix_accumulates_the_loss_as_a_number(tmp_path: Path) -> None:
    target = tmp_path / "fit.py"
    target.write_text(LOSS_SUM)
    result = CliRunner().invoke(cli, ["--select", "GL121", "--fix", "--no-cache", str(target)])
    assert result.exit_code == 0, result.output
    assert target.read_text() == LOSS_SUM.replace("running += loss\n", "running += loss.item()\n")
    again = CliRunner().invoke(cli, ["--select", "GL121", "--diff", "--no-cache", str(target)])
    assert again.exit_code == 0 and again.output == ""
