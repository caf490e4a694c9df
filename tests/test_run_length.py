"""How long a run lasts, as far as the file says (gradlint.semantics.run_length)."""

from __future__ import annotations

import textwrap

import libcst as cst
import pytest

from gradlint.semantics.index import TorchIndex
from gradlint.semantics.run_length import run_length, unused_schedule_options
from gradlint.semantics.training import training_facts

STEP = """
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()
"""


def lengths(source: str) -> list[tuple[int | None, int | None]]:
    facts = training_facts(TorchIndex(cst.parse_module(textwrap.dedent(source))))
    return [(run_length(facts, s).epochs, run_length(facts, s).steps) for s in facts.steps]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("EPOCHS = 30\nfor epoch in range(1, EPOCHS + 1):", (30, None)),
        ("for epoch in tqdm(range(2 * 10)):", (20, None)),
        ("cfg = {'epochs': 40}\nfor epoch in range(cfg['epochs']):", (40, None)),
        ("epoch = 0\nwhile epoch < 25:", (25, None)),
        ("for epoch in range(0, 100, 10):", (10, None)),
        ("for epoch in range(num_epochs):", (None, None)),
    ],
)
def test_epoch_counts(header: str, expected: tuple[int | None, int | None]) -> None:
    source = "import torch\noptimizer = torch.optim.SGD(m.parameters(), lr=0.1)\n" + header
    source += "\n    for x, y in loader:" + textwrap.indent(textwrap.dedent(STEP), "        ")
    assert lengths(source) == [expected]


def test_argparse_default_and_a_helper_called_from_the_epoch_loop() -> None:
    source = """
        import argparse, torch
        parser = argparse.ArgumentParser()
        parser.add_argument("--num-epochs", type=int, default=60)
        args = parser.parse_args()
        def train(model, loader, optimizer):
            for x, y in loader:
                optimizer.zero_grad()
                loss_fn(model(x), y).backward()
                optimizer.step()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for epoch in range(args.num_epochs):
            train(model, loader, optimizer)
    """
    assert lengths(source) == [(60, None)]


def test_steps_of_fully_known_loops_and_parameter_defaults() -> None:
    source = """
        import torch
        def fit(model, iters=20000):
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
            for i in range(iters):
                optimizer.zero_grad()
                model().backward()
                optimizer.step()
    """
    assert lengths(source) == [(None, 20000)]


def test_conflicting_values_are_unknown() -> None:
    source = """
        import torch
        EPOCHS = 30
        EPOCHS = 3
        optimizer = torch.optim.SGD(m.parameters(), lr=0.1)
        for epoch in range(EPOCHS):
            for x in loader:
                m(x).sum().backward()
                optimizer.step()
    """
    assert lengths(source) == [(None, None)]


def test_unused_schedule_options() -> None:
    source = """
        import argparse
        p = argparse.ArgumentParser()
        p.add_argument("--decay_epoch", type=int, default=100)
        p.add_argument("--lr-milestones", type=int, nargs="+")
        p.add_argument("--batch_size", type=int, default=1)
        args = p.parse_args()
        print(args.lr_milestones)
    """
    index = TorchIndex(cst.parse_module(textwrap.dedent(source)), textwrap.dedent(source))
    assert unused_schedule_options(index) == ["decay_epoch"]
