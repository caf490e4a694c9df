"""`gradlint watch-report` reads a log without torch; the watch package imports without torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from gradlint.cli import cli

REPO = Path(__file__).resolve().parents[2]


def test_importing_gradlint_and_the_watch_reader_does_not_import_torch():
    code = (
        "import sys, gradlint, gradlint.watcher, gradlint.watcher.cli, gradlint.watcher.plot\n"
        "assert callable(gradlint.watch)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=60, env={"PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="module")
def exploded_log(tmp_path_factory):
    pytest.importorskip("torch")
    from .models import Mlp, train

    def jump(step, model, optimizer, x):
        if step == 11:
            for group in optimizer.param_groups:
                group["lr"] = 50.0

    log = tmp_path_factory.mktemp("watch") / "run.jsonl"
    watch, _ = train(Mlp(), 24, every=4, log=log, fault=jump)
    return log, watch


def test_the_report_recomputes_the_live_verdicts(exploded_log):
    log, watch = exploded_log
    result = CliRunner().invoke(cli, ["watch-report", str(log)])
    assert result.exit_code == 1, result.output
    for episode in watch.episodes:
        assert f"{episode.code} {episode.name}" in result.output
        assert episode.headline in result.output
    assert watch.episodes and all(e.start > 11 for e in watch.episodes)


def test_json_report_and_heatmap(exploded_log, tmp_path):
    pytest.importorskip("matplotlib")
    log, watch = exploded_log
    png = tmp_path / "flow.png"
    result = CliRunner().invoke(cli, ["watch-report", str(log), "--format", "json",
                                      "--plot", str(png)])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    data = json.loads(result.stdout)
    assert [v["code"] for v in data["verdicts"]] == [e.code for e in watch.episodes]
    assert data["steps"] == 24 and data["every"] == 4
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_healthy_log_exits_0(tmp_path):
    log = tmp_path / "ok.jsonl"
    header = {"record": "run", "schema": 1, "location": {"path": "m.py", "line": 1},
              "every": 1, "rank": 0, "world_size": 1}
    step = {"record": "step", "step": 0, "grad_norm": 1.0, "layers": [], "activations": []}
    log.write_text(json.dumps(header) + "\n" + json.dumps(step) + "\n")
    result = CliRunner().invoke(cli, ["watch-report", str(log)])
    assert result.exit_code == 0, result.output
    assert "no runtime findings" in result.output


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no watch records"),
        ('{"record": "step", "step": 0}\n', "record before the run header"),
        ('{"record": "run", "schema": 99}\n', "log schema 99 is not 1"),
        ('not json\n{"record": "run", "schema": 1}\n', ":1: not a JSON record"),
    ],
)
def test_a_bad_log_is_one_line_and_exit_2(tmp_path, text, message):
    log = tmp_path / "bad.jsonl"
    log.write_text(text)
    result = CliRunner().invoke(cli, ["watch-report", str(log)])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr
    assert result.stderr.startswith(f"gradlint watch-report: error: {log}")


def test_a_missing_log_is_exit_2(tmp_path):
    result = CliRunner().invoke(cli, ["watch-report", str(tmp_path / "nope.jsonl")])
    assert result.exit_code == 2 and "cannot read" in result.stderr
