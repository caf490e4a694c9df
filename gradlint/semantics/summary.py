"""Facts about a file's nn.Module classes that other files need (the project phase)."""

from __future__ import annotations

import re

import libcst as cst

from gradlint.project import ClassFacts
from gradlint.semantics import layers, tables
from gradlint.semantics.index import ModuleClass, TorchIndex, self_attribute
from gradlint.semantics.nodes import find
from gradlint.semantics.recurrent import rnn_in_class
from gradlint.semantics.train_mode import mode_layer_in_class

OUTPUT_MODULES = {
    tables.NN + "Softmax": "softmax",
    tables.NN + "LogSoftmax": "log_softmax",
    tables.NN + "Sigmoid": "sigmoid",
}
OUTPUT_FUNCTIONS = {
    "torch.softmax": "softmax",
    "torch.nn.functional.softmax": "softmax",
    "torch.log_softmax": "log_softmax",
    "torch.nn.functional.log_softmax": "log_softmax",
    "torch.sigmoid": "sigmoid",
    "torch.nn.functional.sigmoid": "sigmoid",
    "torch.special.expit": "sigmoid",
}
OUTPUT_METHODS = {"softmax": "softmax", "log_softmax": "log_softmax", "sigmoid": "sigmoid"}


def class_facts(index: TorchIndex, text: str) -> dict[str, ClassFacts]:
    """ClassFacts for every nn.Module class of the file whose source is `text`."""
    may_hold_rnn = any(word in text for word in ("RNN", "LSTM", "GRU"))  # cheap text check first
    may_hold_mode = any(word in text for word in ("ropout", "Norm", "Transformer", "torchvision"))
    return {
        name: ClassFacts(
            name=name,
            line=_class_line(text, name),
            rnn=rnn_in_class(index, name) if may_hold_rnn else None,
            output=output_activation(index, info),
            mode_layer=(mode_layer_in_class(index, name) or None) if may_hold_mode else None,
        )
        for name, info in index.module_classes.items()
    }


def output_activation(index: TorchIndex, info: ModuleClass) -> str | None:
    """softmax / log_softmax / sigmoid when every `return` of forward() ends in one."""
    forward = info.forward
    if forward is None:
        return None
    kinds = {
        _ends_in(index, info, ret.value) for ret in find(forward, cst.Return, into_functions=False)
    }
    if len(kinds) == 1:
        return kinds.pop()
    return None


def _ends_in(index: TorchIndex, info: ModuleClass, value: cst.BaseExpression | None) -> str | None:
    if not isinstance(value, cst.Call):
        return None
    name = index.call_name(value)
    if name in OUTPUT_FUNCTIONS:
        return OUTPUT_FUNCTIONS[name]
    func = value.func
    attr = self_attribute(func)
    if attr is not None and attr in info.attrs:
        built = info.attrs[attr]
        stack = layers.sequence(index, built)
        last = stack[-1].node if stack else built
        return OUTPUT_MODULES.get(index.call_name(last) or "")
    if name is None and isinstance(func, cst.Attribute) and attr is None:
        return OUTPUT_METHODS.get(func.attr.value)
    return None


def _class_line(text: str, name: str) -> int:
    """The line of `class <name>`; a text search costs far less than position metadata."""
    match = re.search(rf"^[ \t]*class[ \t]+{re.escape(name)}\b", text, re.MULTILINE)
    return text.count("\n", 0, match.start()) + 1 if match else 1
