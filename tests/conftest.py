"""Slow tests (real libraries downloaded from PyPI, pre-commit building its own environment)
run only when asked: `python -m pytest -m slow`, or set GRADLINT_SLOW_TESTS=1 to run them
together with the rest."""

from __future__ import annotations

import os

import pytest

SLOW_VARIABLE = "GRADLINT_SLOW_TESTS"


def pytest_configure(config: pytest.Config) -> None:
    if not config.option.markexpr and os.environ.get(SLOW_VARIABLE) != "1":
        config.option.markexpr = "not slow"
