"""Which model an expression builds, and whether that model holds a recurrent layer."""

from __future__ import annotations

import re
from dataclasses import dataclass

import libcst as cst

from gradlint.semantics import tables
from gradlint.semantics.index import PerFile, TorchIndex
from gradlint.semantics.names import dotted_name
from gradlint.semantics.nodes import findall

_CACHE: PerFile[dict[str, str | None]] = PerFile("recurrent._CACHE")


def unwrap(value: cst.BaseExpression) -> cst.BaseExpression:
    """`Net(...).to(device).train()` -> `Net(...)`: these methods return the same module."""
    while (
        isinstance(value, cst.Call)
        and isinstance(value.func, cst.Attribute)
        and value.func.attr.value in tables.MODEL_PASS_THROUGH_METHODS
        and isinstance(value.func.value, cst.Call)
    ):
        value = value.func.value
    return value


def is_model_call(index: TorchIndex, value: cst.BaseExpression) -> bool:
    """`Net(...)` for a local nn.Module class, or a torch layer with weights."""
    value = unwrap(value)
    name = index.call_name(value)
    if name in tables.WEIGHT_LAYERS or name == tables.SEQUENTIAL:
        return True
    return local_class(index, value) is not None


def rnn_in_expr(index: TorchIndex, value: cst.BaseExpression) -> str | None:
    """`LSTM` for `nn.LSTM(...)`, for `Seq2Seq(...).to(dev)` holding one, for a Sequential."""
    value = unwrap(value)
    name = index.call_name(value)
    if name in tables.RNN_LAYERS:
        return _short(name)
    if name == tables.SEQUENTIAL:
        return _rnn_inside(index, value, frozenset())
    local = local_class(index, value)
    return rnn_in_class(index, local) if local is not None else None


def rnn_in_class(index: TorchIndex, name: str, seen: frozenset[str] = frozenset()) -> str | None:
    """The first RNN layer a local nn.Module class builds (in __init__, a Sequential, a local
    submodule or a local base class); None when it builds none that this file shows."""
    cache = _CACHE.setdefault(index, {})
    if name in cache:
        return cache[name]
    info = index.module_classes.get(name)
    if info is None or name in seen:
        return None  # not a local nn.Module, or a recursive definition
    found = _rnn_inside(index, info.node, seen | {name})
    for base in info.node.bases:
        if found is None and isinstance(base.value, cst.Name):
            found = rnn_in_class(index, base.value.value, seen | {name})
    cache[name] = found
    return found


def _rnn_inside(index: TorchIndex, node: cst.CSTNode, seen: frozenset[str]) -> str | None:
    for call in findall(node, cst.Call):
        name = index.call_name(call)
        if name in tables.RNN_LAYERS:
            return _short(name)
        local = local_class(index, call)
        if local is not None:
            inner = rnn_in_class(index, local, seen)
            if inner:
                return inner
    return None


def local_class(index: TorchIndex, value: cst.CSTNode) -> str | None:
    """`Net` for a call `Net(...)` of an nn.Module class defined in this file (never torch's:
    an imported `LSTM` resolves through imports, a local `class LSTM` is looked up here)."""
    if isinstance(value, cst.Call) and isinstance(value.func, cst.Name):
        if value.func.value in index.module_classes and index.qualified(value.func) is None:
            return value.func.value
    return None


def _short(name: str | None) -> str:
    return (name or "").rsplit(".", 1)[-1]


# -- how long the recurrence runs ----------------------------------------------------------

SHORT_SEQUENCE = 20  # time steps (or message-passing rounds) through which nothing can explode

_SEQUENCE_LENGTH = re.compile(
    r"(max_?)?(seq|sequence|src|tgt|input|context|sent|sentence)?_?(len|length)"
    r"|(max_?)?(seq|sequence|window|block|context|bptt|chunk)(_?(size|len|length|t))?"
    r"|(n|num)_?(steps|time_?steps?)|time_?steps?|look_?back|unroll(_?steps)?"
    r"|t?_?horizon|truncated_?(len|length)"
    r"|(n|num)_?(hops|rounds|episodes|message_?passing(_?steps)?|mp_?steps|prop(agation)?_?steps)"
    r"|episodes"
)
# a literal toy sequence: `x_data = [1, 0, 2, 3, 3]` ("hello" as character indices)
_LITERAL_DATA = re.compile(r"(x|input|inputs|seq|sequence)_?(data|seq|ids)?")
_LENGTH_TOKENS = re.compile(
    r"len|bptt|window|block|chunk|steps|horizon|hops|rounds|episodes|look_?back|unroll|_data",
    re.IGNORECASE,
)
_GATED = frozenset({"torch.nn.LSTM", "torch.nn.GRU", "torch.nn.LSTMCell", "torch.nn.GRUCell"})


def is_sequence_length_name(name: str) -> bool:
    """`seq_len`, `SEQ_LENGTH`, `BPTT_T`, `T_horizon`, `n_hops`: a number of recurrent steps."""
    return _SEQUENCE_LENGTH.fullmatch(name.lstrip("_").lower()) is not None


@dataclass(frozen=True)
class RecurrenceLength:
    """What one file says about how many steps its recurrences run."""

    lengths: tuple[float, ...]  # every literal sequence length / round count it names
    short_loops: tuple[cst.For, ...]  # `for _ in range(<literal>)` loops of few passes

    def all_short(self, limit: float = SHORT_SEQUENCE) -> bool:
        """The file names sequence lengths and every one is at most `limit`."""
        return bool(self.lengths) and max(self.lengths) <= limit

    def stepped_briefly(self, target: str | None) -> bool:
        """`self.<target>(...)` / `<target>(...)` is called inside a short literal loop
        (a GRUCell as a graph network's node update over three rounds)."""
        if target is None:
            return False
        return any(
            _is_call_to(call, target)
            for loop in self.short_loops
            for call in findall(loop.body, cst.Call)
        )


_LENGTHS: PerFile[RecurrenceLength] = PerFile("recurrent._LENGTHS")


def recurrence_length(index: TorchIndex, limit: float = SHORT_SEQUENCE) -> RecurrenceLength:
    """The sequence lengths (`seq_len = 5`, `add_argument("--bptt", default=35)`,
    `def forward(self, x, episodes=3)`, a literal `x_data` list) and short `range` loops one
    file names; memoised per file. A cheap text test skips the walk when no such name occurs."""
    found = _LENGTHS.get(index)
    if found is not None:
        return found
    lengths: list[float] = []
    loops: list[cst.For] = []
    if _LENGTH_TOKENS.search(index.source) or "range(" in index.source:
        for node in findall(
            index.module, (cst.Assign, cst.AnnAssign, cst.Param, cst.Call, cst.For)
        ):
            _collect(node, lengths, loops, limit)
    found = RecurrenceLength(tuple(lengths), tuple(loops))
    _LENGTHS[index] = found
    return found


def rnn_targets(index: TorchIndex) -> dict[cst.Call, str | None]:
    """Each recurrent layer constructor in the file and the name it is bound to
    (`self.gru = nn.GRUCell(...)` -> "gru"), None when it is not bound to a plain name."""
    targets: dict[cst.Call, str | None] = {}
    for node in findall(index.module, cst.Assign):
        assert isinstance(node, cst.Assign)
        key = dotted_name(node.targets[0].target) if len(node.targets) == 1 else None
        for call in findall(node.value, cst.Call):
            if index.call_name(call) in tables.RNN_LAYERS:
                assert isinstance(call, cst.Call)
                targets[call] = key.rsplit(".", 1)[-1] if key and call is node.value else None
    return targets


def short_recurrence(index: TorchIndex, limit: float = SHORT_SEQUENCE) -> bool:
    """Every recurrence in this file runs only a handful of steps: the sequence lengths it
    names are all short, or each RNN layer it builds is stepped in a short literal loop."""
    length = recurrence_length(index, limit)
    if length.all_short(limit):
        return True
    if not length.short_loops:
        return False
    targets = rnn_targets(index)
    return bool(targets) and all(length.stepped_briefly(t) for t in targets.values())


def chosen_among_gated(index: TorchIndex, call: cst.CSTNode) -> bool:
    """`nn.RNN(...)` built in one branch of a choice whose other branch builds an LSTM/GRU
    (`if rnn_type == "LSTM": ... else: nn.RNN(...)`, `nn.LSTM if cell == "lstm" else nn.RNN`,
    `{"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[cell]`): a baseline the user selects."""
    for node in findall(index.module, (cst.If, cst.IfExp, cst.Dict)):
        if isinstance(node, cst.Dict):
            names = {
                index.call_name(e.value)
                if isinstance(e.value, cst.Call)
                else index.qualified(e.value)
                for e in node.elements
                if isinstance(e, cst.DictElement)
            }
            if names & _GATED and _inside(call, node):
                return True
            continue
        assert isinstance(node, (cst.If, cst.IfExp))
        if node.orelse is None:
            continue
        sides: list[cst.CSTNode] = [node.body, node.orelse]
        for mine, other in (sides, sides[::-1]):
            if _inside(call, mine) and _builds_gated(index, other):
                return True
    return False


def _builds_gated(index: TorchIndex, node: cst.CSTNode) -> bool:
    for sub in findall(node, (cst.Call, cst.Attribute)):
        if isinstance(sub, cst.Call) and index.call_name(sub) in _GATED:
            return True
        if isinstance(sub, cst.Attribute) and index.qualified(sub) in _GATED:
            return True  # `cls = nn.LSTM`
    return False


def _inside(node: cst.CSTNode, container: cst.CSTNode) -> bool:
    return any(sub is node for sub in findall(container, type(node)))


def _collect(node: cst.CSTNode, lengths: list[float], loops: list[cst.For], limit: float) -> None:
    if isinstance(node, cst.Assign):
        for target in node.targets:
            key = dotted_name(target.target)
            if key is not None:
                _length(key.rsplit(".", 1)[-1], node.value, lengths)
    elif isinstance(node, cst.AnnAssign):
        key = dotted_name(node.target)
        if key is not None and node.value is not None:
            _length(key.rsplit(".", 1)[-1], node.value, lengths)
    elif isinstance(node, cst.Param):
        if node.default is not None:
            _length(node.name.value, node.default, lengths)
    elif isinstance(node, cst.Call):
        keywords = {a.keyword.value: a.value for a in node.args if a.keyword is not None}
        for keyword, value in keywords.items():
            _length(keyword, value, lengths)  # `EchoData(truncated_length=20)`
        first = node.args[0].value if node.args else None
        if isinstance(first, cst.SimpleString) and "default" in keywords:
            option = str(first.evaluated_value).lstrip("-").replace("-", "_")
            _length(option, keywords["default"], lengths)  # add_argument("--bptt", default=35)
    elif isinstance(node, cst.For):
        it = node.iter
        if isinstance(it, cst.Call) and isinstance(it.func, cst.Name) and it.func.value == "range":
            bounds = [_number(a.value) for a in it.args]
            if bounds and all(b is not None for b in bounds[:2]):
                span = bounds[0] if len(bounds) == 1 else (bounds[1] or 0) - (bounds[0] or 0)
                if span is not None and span <= limit:
                    loops.append(node)


def _length(name: str, value: cst.BaseExpression, lengths: list[float]) -> None:
    if is_sequence_length_name(name):
        number = _number(value)
        if number is not None:
            lengths.append(number)
    elif _LITERAL_DATA.fullmatch(name.lower()) and isinstance(value, cst.List):
        items = value.elements
        inner = items[0].value if len(items) == 1 else None
        if isinstance(inner, cst.List):
            items = inner.elements  # `[[1, 0, 2, 2, 3]]`: one batch of one sequence
        if items and all(isinstance(e.value, cst.Integer) for e in items):
            lengths.append(float(len(items)))


def _number(expr: cst.BaseExpression | None) -> float | None:
    if isinstance(expr, (cst.Integer, cst.Float)):
        try:
            return float(expr.evaluated_value)
        except (TypeError, ValueError):
            return None
    return None


def _is_call_to(node: cst.CSTNode, name: str) -> bool:
    """`name(...)` or `<anything>.name(...)`."""
    if not isinstance(node, cst.Call):
        return False
    func = node.func
    if isinstance(func, cst.Attribute):
        return func.attr.value == name
    return isinstance(func, cst.Name) and func.value == name
