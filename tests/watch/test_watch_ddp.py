"""Under DDP (`torchrun --nproc_per_node 2`, CPU, gloo) each rank records and rank 0 reports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
from gradlint.watcher.record import read_runs  # noqa: E402

SCRIPT = Path(__file__).with_name("ddp_train.py")
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # two interpreters importing torch and a gloo rendezvous: about a minute
def test_each_rank_records_and_rank_0_reports_for_all(tmp_path):
    log, report = tmp_path / "run.jsonl", tmp_path / "report.txt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(SCRIPT), str(log), str(report)],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rank0, rank1 = read_runs(log)[-1], read_runs(tmp_path / "run.rank1.jsonl")[-1]
    assert (rank0.rank, rank1.rank) == (0, 1)
    assert [r["step"] for r in rank0.steps] == [r["step"] for r in rank1.steps] == [0, 2, 4]
    # each rank reads its own gradient before DDP averages it: different batches differ
    assert rank0.steps[0]["grad_norm"] != rank1.steps[0]["grad_norm"]
    text = report.read_text()
    assert "2 ranks" in text
    # the NaN fed to rank 1 at step 3 reaches both ranks' weights through the all-reduce
    assert "GL205 non-finite [error] NaN/Inf first at step 4 in `fc1` (ranks 0, 1)" in text
