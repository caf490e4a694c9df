"""Fixtures for the watch tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # torch built without NumPy warns once at import; that is the environment, not our code.
    config.addinivalue_line("filterwarnings", "ignore:Failed to initialize NumPy:UserWarning")


@pytest.fixture(autouse=True)
def single_thread_torch(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tiny models gain nothing from threads, and on a loaded 2-core machine OpenMP's
    spinning threads make them many times slower; child processes inherit the setting."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    try:
        import torch
    except ImportError:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)  # models are built before the loop seeds: same init whatever ran before
    yield
    torch.set_num_threads(threads)
