"""Snippet tests of the shared layer helpers."""

from __future__ import annotations

import libcst as cst

from gradlint.semantics import layers
from gradlint.semantics.index import TorchIndex
from gradlint.semantics.nodes import find


def _sequentials(source: str) -> tuple[TorchIndex, list[cst.Call]]:
    module = cst.parse_module(source)
    index = TorchIndex(module)
    calls = [c for c in find(module, cst.Call) if index.call_name(c) == "torch.nn.Sequential"]
    return index, calls


def test_outer_sequence_flattens_nested_literals_once() -> None:
    index, (outer, inner) = _sequentials(
        "from torch import nn\n"
        "net = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Tanh(), nn.Linear(2, 2)))\n"
    )
    stack = layers.outer_sequence(index, outer)
    assert [layer.kind for layer in stack or []] == ["dense", "saturating", "dense"]
    assert layers.outer_sequence(index, inner) is None  # judged with the outer one
    assert layers.outer_sequence(index, outer) is stack  # shared, not rebuilt


def test_outer_sequence_with_another_spelling_and_unknowable_contents() -> None:
    index, (call,) = _sequentials("import torch.nn as tnn\nnet = tnn.Sequential(*layers)\n")
    assert layers.outer_sequence(index, call) is None  # `*layers`: built elsewhere
    other, _ = _sequentials("from mylib import Sequential\nnet = Sequential()\n")
    assert layers.outer_sequence(other, cst.parse_expression("Sequential()")) is None


def test_range_count_reads_constants_set_once_at_the_top() -> None:
    index = TorchIndex(
        cst.parse_module(
            "import torch.nn as tnn\nN = 6\nM = 2\nM = 3\ndef f():\n    K = 4\n    return K\n"
        )
    )
    constants = layers.module_values(index)
    assert set(constants) == {"N"}  # M is reassigned, K is local
    assert layers.range_count(cst.parse_expression("range(1, N)"), constants) == 5
    assert layers.range_count(cst.parse_expression("range(M)"), constants) is None


def test_grown_list_reads_one_pass_of_a_list_built_in_a_loop() -> None:
    index = TorchIndex(
        cst.parse_module(
            "from torch.nn import Linear, Tanh\n"
            "def build(sizes, norm):\n"
            "    parts = []\n"
            "    for a, b in zip(sizes, sizes[1:]):\n"
            "        parts.append(Linear(a, b))\n"
            "        parts.append(Tanh())\n"
            "    parts.append(Linear(sizes[-1], 1))\n"
            "    other = make_layers()\n"
            "    return parts, other\n"
        )
    )
    build = index.functions["build"]
    kinds = [layer.kind for layer in layers.grown_list(index, build, "parts") or []]
    assert kinds == [layers.DENSE, layers.SATURATING, layers.DENSE]
    assert layers.grown_list(index, build, "other") is None  # built by a call: unknowable
