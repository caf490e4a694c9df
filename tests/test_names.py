"""Snippet tests of import-alias resolution, conventions for snippets included."""

from __future__ import annotations

import libcst as cst

from gradlint.semantics.index import TorchIndex


def _resolve(source: str, expression: str) -> str | None:
    return TorchIndex(cst.parse_module(source)).qualified(cst.parse_expression(expression))


def test_imports_resolve_every_spelling() -> None:
    assert _resolve("import torch.nn as tnn\n", "tnn.Linear") == "torch.nn.Linear"
    assert _resolve("from torch.nn import Linear\n", "Linear") == "torch.nn.Linear"
    assert _resolve("from mylib import Linear\n", "Linear") == "mylib.Linear"


def test_unbound_conventional_names_mean_torch() -> None:
    cell = "model = nn.Sequential(nn.Linear(2, 2))\nopt = optim.SGD(model.parameters(), lr=1)\n"
    assert _resolve(cell, "nn.Linear") == "torch.nn.Linear"
    assert _resolve(cell, "optim.SGD") == "torch.optim.SGD"
    assert _resolve("y = F.relu(x)\n", "F.relu") == "torch.nn.functional.relu"
    assert _resolve("w = torch.zeros(3)\n", "torch.zeros") == "torch.zeros"


def test_a_name_bound_to_something_else_keeps_its_meaning() -> None:
    assert _resolve("from mylib import nn\nnet = nn.Linear(2)\n", "nn.Linear") == "mylib.nn.Linear"
    for source in (
        "nn = load()\nnet = nn.Linear(2)\n",
        "def build(nn):\n    return nn.Linear(2)\n",
        "for nn in libs:\n    nn.Linear(2)\n",
        "with open(p) as nn:\n    nn.Linear(2)\n",
        "class nn:\n    pass\nnn.Linear\n",
        "[nn.Linear for nn in libs]\n",
    ):
        assert _resolve(source, "nn.Linear") is None, source
    # named in a comment or a string only: nothing to resolve, nothing assumed
    assert "nn" not in TorchIndex(cst.parse_module("x = 'nn.Linear'  # nn.Linear\n")).names.aliases
