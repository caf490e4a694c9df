"""What a model's output is, as far as a loss is concerned: softmax, log-softmax or sigmoid
probabilities, or raw logits; and which activation ends what each model's forward returns.

A model call (`model(x)`, `self(x)`, `self.net(x)`) is recorded as a `Ref` while the file is
walked and resolved afterwards by `Resolver`, once every assignment and every `return` of the
file is known: through local nn.Module classes, `nn.Sequential` containers (the last layer
that is not dropout) and the replaced heads of torchvision/timm classifiers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import libcst as cst

from gradlint.semantics import layers, tables
from gradlint.semantics.index import TorchIndex
from gradlint.semantics.recurrent import local_class, unwrap

NN, F = tables.NN, tables.F

# what a tensor is, as far as a loss is concerned
SOFTMAX, LOG_SOFTMAX, SIGMOID, LOGITS = "softmax", "log_softmax", "sigmoid", "logits"
IMPORTED = "imported"  # the output of a class from another file: `model` names it

OUTPUT_FUNCTIONS: dict[str, str] = {
    "torch.softmax": SOFTMAX,
    "torch.special.softmax": SOFTMAX,
    F + "softmax": SOFTMAX,
    "torch.log_softmax": LOG_SOFTMAX,
    "torch.special.log_softmax": LOG_SOFTMAX,
    F + "log_softmax": LOG_SOFTMAX,
    **{name: SIGMOID for name, kind in tables.SATURATING_FUNCTIONS.items() if kind == "sigmoid"},
}
OUTPUT_METHODS: dict[str, str] = {
    "softmax": SOFTMAX,
    "log_softmax": LOG_SOFTMAX,
    "sigmoid": SIGMOID,
    "sigmoid_": SIGMOID,
}
OUTPUT_MODULES: dict[str, str] = {
    NN + "Softmax": SOFTMAX,
    NN + "LogSoftmax": LOG_SOFTMAX,
    NN + "Sigmoid": SIGMOID,
}
LOG_FUNCTIONS = frozenset({"torch.log", "torch.special.log"})
# tensor methods that reshape or cast but keep what the values mean
KEEPING_METHODS = frozenset(
    {
        "view",
        "reshape",
        "squeeze",
        "unsqueeze",
        "flatten",
        "permute",
        "transpose",
        "contiguous",
        "float",
        "double",
        "half",
        "to",
        "type_as",
        "view_as",
        "reshape_as",
        "t",
        "clamp",
        "clip",
    }
)
# the attribute holding the last layer of torchvision / timm classifiers
HEAD_ATTRIBUTES = ("fc", "classifier", "head")


@dataclass(frozen=True)
class Output:
    """What a tensor is: softmax/log_softmax/sigmoid probabilities or raw logits."""

    kind: str
    node: cst.CSTNode  # where the activation (or the final layer) is applied
    model: str | None = None  # the model it came out of: a local class or "nn.Sequential"


Function = Optional[cst.FunctionDef]


@dataclass(frozen=True)
class Ref:
    """A model call whose output is looked up after the walk: `model(x)` or `self(x)`."""

    key: str  # `model`, `self.net`; "" for `self(x)`
    function: Function
    cls: str | None  # the class whose method makes the call


Value = Union[Output, Ref, None]

# (value, function it is assigned in) for every dotted name assigned in the file
Assignments = dict[str, list[tuple[cst.BaseExpression, Function]]]


def module_value(index: TorchIndex, built: cst.BaseExpression, call: cst.CSTNode) -> Value:
    """What calling the module that `built` constructs returns (`call`: where it is called)."""
    built = unwrap(built)
    name = index.call_name(built)
    if name in OUTPUT_MODULES:
        return Output(OUTPUT_MODULES[name], call)
    if name in tables.DENSE_LAYERS:
        return Output(LOGITS, call)
    if name == tables.SEQUENTIAL:
        stack = layers.sequence(index, built) or []
        last = next((layer for layer in reversed(stack) if not _is_dropout(index, layer)), None)
        if last is None or not isinstance(last.node, cst.BaseExpression):
            return None
        value = module_value(index, last.node, call)
        if isinstance(value, Output):
            return Output(value.kind, last.node, value.model or "nn.Sequential")
        return value
    local = local_class(index, built)
    return Ref("", None, local) if local is not None else None


class Resolver:
    """Turns model calls into what the model's forward returns, once the walk is done."""

    def __init__(
        self,
        index: TorchIndex,
        assignments: Assignments,
        returns: dict[cst.FunctionDef, list[Value]],
    ) -> None:
        self.index = index
        self.assignments = assignments
        self.returns = returns

    def resolve(self, value: Value, seen: frozenset[str] = frozenset()) -> Output | None:
        if not isinstance(value, Ref):
            return value
        if value.key == "":
            return self._class_output(value.cls, seen)
        pairs = self.assignments.get(value.key, [])
        pairs = [p for p in pairs if p[1] is value.function] or pairs
        if not pairs or value.key in seen:
            return None  # a parameter or a model built elsewhere
        seen = seen | {value.key}
        built = [module_value(self.index, v, v) for v, _ in pairs]
        if all(isinstance(v, cst.Call) for v, _ in pairs) and not any(built):
            head = self._replaced_head(value.key, seen)  # `models.resnet50()` and the like
            return head if head is not None else self._imported(pairs)
        got = [self.resolve(b, seen) for b in built]
        first = got[0]
        if first is None or any(g is None or g.kind != first.kind for g in got):
            return None
        return first

    def _imported(self, pairs: list[tuple[cst.BaseExpression, Function]]) -> Output | None:
        """`model = Net()` with `Net` imported from another module: the project phase knows
        what its forward returns (`Output.model` holds the name as the imports spell it)."""
        if len(pairs) != 1:
            return None
        value = unwrap(pairs[0][0])
        name = self.index.call_name(value)
        if name is None or name.startswith(("torch", "lightning")):
            return None
        return Output(IMPORTED, value, name)

    def _replaced_head(self, key: str, seen: frozenset[str]) -> Output | None:
        """`model = models.resnet50(); model.fc = nn.Sequential(..., nn.Softmax(1))`: the
        replaced head is the last layer of torchvision and timm classifiers."""
        heads = [f"{key}.{h}" for h in HEAD_ATTRIBUTES if f"{key}.{h}" in self.assignments]
        if len(heads) != 1:
            return None
        output = self.resolve(Ref(heads[0], None, None), seen)
        return Output(output.kind, output.node, heads[0]) if output else None

    def _class_output(self, name: str | None, seen: frozenset[str]) -> Output | None:
        info = self.index.module_classes.get(name or "")
        if info is None or info.forward is None or info.name in seen:
            return None
        returns = self.returns.get(info.forward, [])
        got = [self.resolve(r, seen | {info.name}) for r in returns]
        if not got or any(g is None for g in got):
            return None
        kinds = {g.kind for g in got if g is not None}
        first = got[0]
        if len(kinds) != 1 or first is None:
            return None  # e.g. softmax only when not training: the loss sees logits
        return Output(first.kind, first.node, info.name)


def is_kind(value: Value, kind: str) -> bool:
    return isinstance(value, Output) and value.kind == kind


def _is_dropout(index: TorchIndex, layer: layers.Layer) -> bool:
    name = index.call_name(layer.node) or ""
    return name.startswith(NN + "Dropout") or name in (NN + "AlphaDropout", NN + "Identity")
