"""Snippet tests of the shared init semantics: layer guards, constant tensors, raw weights."""

from __future__ import annotations

import libcst as cst

from gradlint.semantics import init_draws, layer_guards, weight_matrices
from gradlint.semantics.index import TorchIndex


def _index(source: str) -> TorchIndex:
    return TorchIndex(cst.parse_module(source))


def _guards(source: str, test: str) -> layer_guards.Guards:
    index = _index(source)
    local = {"classname": cst.parse_expression("m.__class__.__name__")}
    return layer_guards.layer_guards(index, cst.parse_expression(test), local)


def test_class_name_tests_pick_torch_layers() -> None:
    found = _guards("import torch.nn as nn\n", "classname.find('Conv') != -1")
    assert "torch.nn.Conv2d" in found["m"] and "torch.nn.Linear" not in found["m"]
    either = _guards("", "classname.find('Conv') != -1 or classname.find('Linear') != -1")
    assert "torch.nn.Linear" in either["m"] and "torch.nn.Conv1d" in either["m"]
    assert _guards("", "type(m).__name__ == 'Linear'") == {"m": frozenset({"torch.nn.Linear"})}
    assert _guards("", "classname.find('MyBlock') != -1") == {"m": frozenset({"?"})}
    assert _guards("", "name.find('Conv') != -1") == {}  # not a class name: unknowable


def test_type_tests_in_two_spellings() -> None:
    assert _guards("from torch import nn\n", "type(m) == nn.Linear") == {
        "m": frozenset({"torch.nn.Linear"})
    }
    assert _guards("from torch.nn import Linear, Conv2d\n", "type(m) in (Linear, Conv2d)") == {
        "m": frozenset({"torch.nn.Linear", "torch.nn.Conv2d"})
    }


def test_constant_tensors() -> None:
    index = _index("import torch\nfrom torch import nn\n")

    def constant(text: str) -> init_draws.ConstantTensor | None:
        return init_draws.constant_tensor(index, cst.parse_expression(text))

    assert constant("nn.Parameter(torch.zeros(8, 4))") == init_draws.ConstantTensor(0.0, 2)
    assert constant("torch.full((8, 4), 0.5).cuda()") == init_draws.ConstantTensor(0.5, 2)
    assert constant("torch.tensor([[0.5, 0.5], [0.5, 0.5]])") == init_draws.ConstantTensor(0.5, 2)
    assert constant("torch.ones(3, 3) * 0.1") is not None
    assert constant("torch.tensor([[0.5, 0.1], [0.5, 0.5]])") is None
    assert constant("torch.randn(3, 3)") is None
    assert constant("torch.zeros(*shape)") is None  # unknowable


def test_raw_weights_need_a_product_and_an_update() -> None:
    script = (
        "import torch\n"
        "W1 = torch.randn(784, 256, requires_grad=True)\n"
        "W2 = torch.randn(256, 10, requires_grad=True)\n"
        "out = torch.relu(x @ W1) @ W2\n"
        "opt = torch.optim.SGD([W1, W2], lr=0.1)\n"
    )
    found = weight_matrices.raw_weights(_index(script))
    assert [(w.name, w.fan_in, w.is_hidden) for w in found] == [
        ("W1", 784, True),
        ("W2", 256, False),
    ]
    untrained = script.replace("opt = torch.optim.SGD([W1, W2], lr=0.1)\n", "")
    assert weight_matrices.raw_weights(_index(untrained)) == []
    # the assignment a use reads is the last one above it, as a script or notebook runs
    rebound = script.replace("out =", "W1 = load()\nout =")
    assert [w.name for w in weight_matrices.raw_weights(_index(rebound))] == ["W2"]
    redone = script.replace("out =", "W2 = torch.randn(256, 10) * 0.01\nout =")
    assert [w.name for w in weight_matrices.raw_weights(_index(redone))] == ["W1", "W2"]
