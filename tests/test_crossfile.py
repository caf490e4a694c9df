"""Findings that need two files: a model defined in one, trained in another."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from gradlint.cli import cli

FIXTURE = Path(__file__).parent / "fixtures" / "crossfile"


def test_rnn_model_imported_through_a_package_reexport_is_followed(tmp_path: Path) -> None:
    tree = tmp_path / "crossfile"
    shutil.copytree(FIXTURE, tree)
    result = CliRunner().invoke(cli, ["--select", "GL104", "--no-cache", "-q", str(tree)])
    lines = result.output.splitlines()
    assert result.exit_code == 1, result.output
    assert len(lines) == 1
    assert lines[0].startswith(f"{tree.as_posix()}/train_rnn.py:14:13: GL104 ")
    assert "`Encoder` (" in lines[0] and "models/rnn.py:5" in lines[0] and "nn.GRU" in lines[0]


def test_the_same_loop_over_a_cnn_from_another_file_stays_quiet(tmp_path: Path) -> None:
    tree = tmp_path / "crossfile"
    shutil.copytree(FIXTURE, tree)
    (tree / "train_rnn.py").unlink()
    result = CliRunner().invoke(cli, ["--select", "GL104", "--no-cache", str(tree)])
    assert result.exit_code == 0, result.output


def test_noqa_silences_a_cross_file_finding(tmp_path: Path) -> None:
    tree = tmp_path / "crossfile"
    shutil.copytree(FIXTURE, tree)
    script = tree / "train_rnn.py"
    script.write_text(script.read_text().replace("optimizer.step()", "optimizer.step()  # noqa: GL104"))
    result = CliRunner().invoke(cli, ["--select", "GL104", "--no-cache", str(tree)])
    assert result.exit_code == 0, result.output


def test_linting_only_the_script_cannot_see_the_model(tmp_path: Path) -> None:
    tree = tmp_path / "crossfile"
    shutil.copytree(FIXTURE, tree)
    result = CliRunner().invoke(cli, ["--select", "GL104", "--no-cache", str(tree / "train_rnn.py")])
    assert result.exit_code == 0, result.output


def test_cross_entropy_on_a_softmax_model_from_another_file(tmp_path: Path) -> None:
    tree = tmp_path / "crossfile"
    shutil.copytree(FIXTURE, tree)
    result = CliRunner().invoke(cli, ["--select", "GL106", "--no-cache", "-q", "--format", "json", str(tree)])
    assert result.exit_code == 1, result.output
    (finding,) = json.loads(result.output)
    assert finding["path"].endswith("train_classifier.py") and finding["line"] == 13
    assert finding["severity"] == "warning"
    assert "`SoftmaxClassifier`" in finding["message"] and "models/classifier.py:6" in finding["message"]
