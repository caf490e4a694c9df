"""The default test command stays offline and fast: slow tests run only when asked."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORPUS = "tests/robustness/test_corpus.py"


def _collected(*args: str, slow: str | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "GRADLINT_SLOW_TESTS"}
    if slow is not None:
        env["GRADLINT_SLOW_TESTS"] = slow
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         *args, CORPUS],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    return done.stdout


@pytest.mark.parametrize(
    ("args", "slow", "selected"),
    [((), None, False), (("-m", "slow"), None, True), ((), "1", True)],
    ids=["default", "marker", "variable"],
)
def test_slow_tests_run_only_when_asked(args: tuple[str, ...], slow: str | None,
                                        selected: bool) -> None:
    output = _collected(*args, slow=slow)
    assert ("test_default_rules_over_real_libraries" in output) is selected, output
