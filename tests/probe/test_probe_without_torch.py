"""The probe package must be importable, and the CLI usable, without importing torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_importing_the_probe_package_does_not_import_torch():
    code = ("import sys, gradlint.probe, gradlint.probe.cli, gradlint.probe.settings, "
            "gradlint.probe.render, gradlint.probe.crosscheck, gradlint.probe.runner\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n"
            "assert gradlint.probe.cli.probe_command.name == 'probe'\n"
            "assert gradlint.probe.cli.gradcheck_command.name == 'gradcheck'\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=60, env={"PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr


def test_missing_torch_is_one_line_with_the_extra(tmp_path):
    # A stub `torch` that cannot be found makes find_spec report it missing.
    code = ("import sys, importlib.util\n"
            "real = importlib.util.find_spec\n"
            "importlib.util.find_spec = (\n"
            "    lambda name, *a: None if name == 'torch' else real(name, *a))\n"
            "from gradlint.probe.cli import probe_command\n"
            "probe_command(['m.py:M', '--input-shape', '2,2'])\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, env={"PYTHONPATH": str(REPO)})
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("gradlint probe: error: PyTorch is not installed; install "
                                   "the extra: pip install 'gradlint[probe]'")
