"""Snippet tests of what registers a layer and what arrives holding layers."""

from __future__ import annotations

import libcst as cst

from gradlint.semantics import registration
from gradlint.semantics.index import TorchIndex


def _index(source: str) -> TorchIndex:
    return TorchIndex(cst.parse_module(source))


def _last_call(index: TorchIndex) -> cst.Call:
    """The value of the file's last line (`h = init_(nn.Linear(4, 1))` -> the outer call)."""
    line = cst.ensure_type(index.module.body[-1], cst.SimpleStatementLine)
    return cst.ensure_type(cst.ensure_type(line.body[0], cst.Assign).value, cst.Call)


def test_init_helpers_hand_back_the_layer_they_are_given() -> None:
    index = _index(
        "from torch import nn\n"
        "def layer_init(layer, std=1.0):\n"
        "    nn.init.orthogonal_(layer.weight, std)\n"
        "    return layer\n"
        "head = layer_init(nn.Linear(4, 1))\n"
    )
    assert registration.layer_kind(index, _last_call(index)) == "layers"
    imported = _index(
        "import torch.nn as tnn\nfrom util import init_\nh = init_(tnn.Conv2d(3, 8, 1))\n"
    )
    assert registration.layer_kind(imported, _last_call(imported)) == "layers"


def test_helpers_returning_something_else_are_not_layers() -> None:
    index = _index(
        "from torch import nn\n"
        "def describe(layer):\n"
        "    return str(layer)\n"
        "info = describe(nn.Linear(4, 1))\n"
    )
    assert registration.layer_kind(index, _last_call(index)) is None
    unknown = _index("from torch import nn\nfrom util import wrap\nh = wrap(nn.Linear(4, 1))\n")
    assert registration.layer_kind(unknown, _last_call(unknown)) is None  # cannot know


def _init(index: TorchIndex) -> cst.FunctionDef:
    return index.functions["__init__"]


def test_module_collection_params_read_annotations() -> None:
    index = _index(
        "from typing import List, Optional, Tuple\n"
        "import torch.nn as nn\n"
        "class M(nn.Module):\n"
        "    def __init__(self, a: Optional[List[nn.Module]], b: Tuple[nn.Linear, ...],\n"
        "                 c: List[int], d, *rest: nn.Module):\n"
        "        super().__init__()\n"
    )
    found = registration.module_collection_params(index, _init(index))
    assert found == {"a": "list", "b": "tuple", "rest": "tuple"}
    other = _index(
        "from torch.nn import Module, ReLU\n"
        "class M(Module):\n"
        "    def __init__(self, a: list[Module], b: list[ReLU], c: 'List[Module]'):\n"
        "        pass\n"
    )
    # parameter-free modules lose nothing; a string annotation is not read
    assert registration.module_collection_params(other, _init(other)) == {"a": "list"}


def test_params_given_layer_lists_follow_calls_in_the_file() -> None:
    index = _index(
        "from torch import nn\n"
        "class Stack(nn.Module):\n"
        "    def __init__(self, blocks, head, scale=1.0):\n"
        "        super().__init__()\n"
        "        self.blocks = blocks\n"
        "blocks = [nn.Linear(4, 4) for _ in range(3)]\n"
        "a = Stack(blocks, nn.Linear(4, 2))\n"
        "b = Stack(nn.ModuleList(blocks), head=[nn.Linear(4, 2)], scale=[0.5])\n"
        "c = Stack(*parts)\n"
    )
    found = registration.params_given_layer_lists(index, "Stack", _init(index))
    assert found == {"blocks": "list", "head": "list"}
