"""Snippet tests of following a variable into the function that built it."""

from __future__ import annotations

import libcst as cst

from gradlint.semantics import factories
from gradlint.semantics.index import TorchIndex


def _last_assign(source: str) -> tuple[TorchIndex, cst.Assign]:
    index = TorchIndex(cst.parse_module(source))
    line = cst.ensure_type(index.module.body[-1], cst.SimpleStatementLine)
    return index, cst.ensure_type(line.body[0], cst.Assign)


def _code(node: cst.BaseExpression) -> str:
    return cst.Module([]).code_for_node(node)


def test_unpacked_reads_the_builders_return() -> None:
    index, assign = _last_assign(
        "import torch\n"
        "from torch import nn\n"
        "def build():\n"
        "    net = nn.Linear(4, 2)\n"
        "    return net, nn.MSELoss(), torch.optim.SGD(net.parameters(), lr=0.1)\n"
        "net, loss_fn, opt = build()\n"
    )
    found = factories.unpacked(index, assign.targets[0].target, assign.value)
    assert {name: _code(value) for name, value in found.items()} == {
        "net": "nn.Linear(4, 2)",
        "loss_fn": "nn.MSELoss()",
        "opt": "torch.optim.SGD(net.parameters(), lr=0.1)",
    }


def test_single_value_and_another_spelling() -> None:
    index, assign = _last_assign(
        "import torch.nn as tnn\ndef make():\n    return tnn.GRU(8, 8)\nmodel = make()\n"
    )
    found = factories.returned_elements(index, cst.ensure_type(assign.value, cst.Call))
    assert [_code(v) for v in found or []] == ["tnn.GRU(8, 8)"]


def test_unknowable_builders_give_nothing() -> None:
    index, assign = _last_assign(
        "from torch import nn\n"
        "from zoo import build\n"
        "def pick(big):\n"
        "    if big:\n"
        "        return nn.Linear(8, 8)\n"
        "    return nn.Linear(2, 2)\n"
        "a, b = pick(True)\n"
    )
    assert factories.unpacked(index, assign.targets[0].target, assign.value) == {}
    assert factories.returned_elements(index, cst.parse_expression("build()")) is None  # type: ignore[arg-type]
