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
from gradlint.semantics.names import dotted_name
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
    """A model call whose output is looked up after the walk: `model(x)`, `self(x)`,
    `self.decode(z)`; `element` picks one item of a tuple it returns (`validity, label = D(x)`)."""

    key: str  # `model`, `self.net`; "" for a method of `cls` (`self(x)`, `self.decode(z)`)
    function: Function
    cls: str | None  # the class whose method makes the call
    method: str = "forward"
    element: int | None = None


@dataclass(frozen=True)
class Outputs:
    """A tuple of values (`return validity, label`)."""

    elements: tuple[Value, ...]


@dataclass(frozen=True)
class Param:
    """A parameter of a function: what it holds depends on each call site."""

    function: cst.FunctionDef
    position: int  # among the positional parameters, `self` not counted


Value = Union[Output, Ref, Outputs, Param, None]


def element_of(value: Value, element: int) -> Value:
    """Item `element` of a tuple value; indexing a tensor keeps what its values are."""
    if isinstance(value, Outputs):
        count = len(value.elements)
        return value.elements[element] if -count <= element < count else None
    if isinstance(value, Ref):
        return Ref(value.key, value.function, value.cls, value.method, element)
    if isinstance(value, Output):
        return value
    return None


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
        key = dotted_name(last.node)
        if key is not None:  # `nn.Sequential(features, self.classifier)`: built elsewhere
            return Ref(key, None, None)
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

    def resolve(self, value: Value) -> Output | None:
        """The output a value is, when the file shows it; None for tuples and unknowns."""
        found = self._resolve(value, frozenset())
        return found if isinstance(found, Output) else None

    def _resolve(self, value: Value, seen: frozenset[str]) -> Output | Outputs | None:
        if isinstance(value, Ref) and value.element is not None:
            whole = self._resolve(Ref(value.key, value.function, value.cls, value.method), seen)
            return self._resolve(element_of(whole, value.element), seen)
        if isinstance(value, Outputs):
            return value
        if not isinstance(value, Ref):
            return value if isinstance(value, Output) else None
        if value.key == "":
            return self._class_output(value.cls, value.method, seen)
        pairs = self.assignments.get(value.key, [])
        pairs = [p for p in pairs if p[1] is value.function] or pairs
        if not pairs and "." in value.key and value.key not in seen:
            return self._member(value.key, seen | {value.key})
        if not pairs and value.function is not None and value.key not in seen:
            return self._annotated(value.function, value.key)  # `model: BaseModel`
        if not pairs or value.key in seen:
            return None  # a parameter or a model built elsewhere
        seen = seen | {value.key}
        built = [module_value(self.index, v, v) for v, _ in pairs]
        if all(isinstance(v, cst.Call) for v, _ in pairs) and not any(built):
            head = self._replaced_head(value.key, seen)  # `models.resnet50()` and the like
            return head if head is not None else self._imported(pairs)
        return _same([self._resolve(b, seen) for b in built], None)

    def _member(self, key: str, seen: frozenset[str]) -> Output | Outputs | None:
        """`model.discriminator(x)` / `model.decode(z)`: a layer or method of a local model."""
        owner, member = key.rsplit(".", 1)
        names = {local_class(self.index, unwrap(v)) for v, _ in self.assignments.get(owner, [])}
        if len(names) != 1 or (name := names.pop()) is None:
            return None  # not one local nn.Module class
        info = self.index.module_classes[name]
        if member in info.attrs:
            layer = info.attrs[member]
            got = self._resolve(module_value(self.index, layer, layer), seen)
            return Output(got.kind, got.node, got.model or key) if isinstance(got, Output) else got
        if member in info.methods:
            return self._class_output(name, member, seen)
        return None

    def _annotated(self, function: cst.FunctionDef, name: str) -> Output | None:
        """A parameter annotated with a model class (`def compute_loss(self, model: BaseModel,
        inputs)`): what a class of this file returns, or the imported class, which the
        project phase knows."""
        for param in (*function.params.params, *function.params.kwonly_params):
            if param.name.value != name or param.annotation is None:
                continue
            annotation = param.annotation.annotation
            local = dotted_name(annotation)
            if local in self.index.module_classes:  # `model: Net` with Net defined here
                found = self._class_output(local, "forward", frozenset({name}))
                return found if isinstance(found, Output) else None
            qualified = self.index.qualified(annotation)
            last = (qualified or "").rsplit(".", 1)[-1]
            if qualified is None or qualified.startswith(("torch", "lightning", "typing")):
                return None  # a torch type says nothing about what the model returns
            return Output(IMPORTED, annotation, qualified) if last[:1].isupper() else None
        return None

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
        output = self._resolve(Ref(heads[0], None, None), seen)
        if not isinstance(output, Output):
            return None
        return Output(output.kind, output.node, heads[0])

    def _class_output(
        self, name: str | None, method: str, seen: frozenset[str]
    ) -> Output | Outputs | None:
        """What `method` of the local module class `name` returns, when every return agrees."""
        info = self.index.module_classes.get(name or "")
        function = info.methods.get(method) if info is not None else None
        if info is None or function is None or f"{info.name}.{method}" in seen:
            return None
        seen = seen | {f"{info.name}.{method}"}
        got = [self._resolve(r, seen) for r in self.returns.get(function, [])]
        tuples = [g.elements for g in got if isinstance(g, Outputs)]
        if got and len(tuples) == len(got):
            if len({len(t) for t in tuples}) != 1:
                return None  # tuples of different lengths
            columns = zip(*tuples)
            return Outputs(
                tuple(_same([self._resolve(v, seen) for v in c], info.name) for c in columns)
            )
        # e.g. softmax only when not training: the loss sees logits
        return _same(got, info.name)


def _same(got: list[Output | Outputs | None], model: str | None) -> Output | Outputs | None:
    """The one output all of `got` agree on (named after `model` when given), else None."""
    outputs = [g for g in got if isinstance(g, Output)]
    if not got or len(outputs) != len(got):
        return got[0] if len(got) == 1 and isinstance(got[0], Outputs) else None
    first = outputs[0]
    if any(g.kind != first.kind for g in outputs):
        return None
    return Output(first.kind, first.node, model or first.model) if model else first


def is_kind(value: Value, kind: str) -> bool:
    return isinstance(value, Output) and value.kind == kind


def _is_dropout(index: TorchIndex, layer: layers.Layer) -> bool:
    name = index.call_name(layer.node) or ""
    return name.startswith(NN + "Dropout") or name in (NN + "AlphaDropout", NN + "Identity")
