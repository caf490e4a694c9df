"""`--fix` and `--diff` end to end."""

from __future__ import annotations

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
    assert "+            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)" in result.output
    assert target.read_bytes() == before


def test_fix_writes_the_clipping_call_and_the_finding_is_gone(tmp_path: Path) -> None:
    target = _copy(tmp_path)
    result = CliRunner().invoke(cli, ["--select", "GL104", "--fix", "--no-cache", str(target)])
    assert result.exit_code == 0, result.output
    text = target.read_text()
    assert "loss.backward()\n            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)\n            optimizer.step()" in text
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["char_rnn.py"]
    again = CliRunner().invoke(cli, ["--select", "GL104", "--diff", "--no-cache", str(target)])
    assert again.exit_code == 0 and again.output == ""


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
