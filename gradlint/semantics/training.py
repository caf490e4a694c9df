"""Training steps (`loss.backward()` ... `optimizer.step()`) and the facts around them.

Built once per file from one statement walk (`training_walk`) and memoised on the file's
`TorchIndex`, so every rule that asks shares it. Names that cannot be resolved in this file
give `None` ("cannot know"), and callers stay quiet on it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import libcst as cst

from gradlint.semantics import recurrent, tables
from gradlint.semantics.index import PerFile, TorchIndex
from gradlint.semantics.names import dotted_name
from gradlint.semantics.nodes import findall
from gradlint.semantics.training_walk import (
    Event,
    FileWalk,
    Function,
    Loop,
    mentions_epoch,
    receiver,
    starts,
    walk_training,
)

_PARAMS_METHODS = frozenset({"parameters", "named_parameters"})
_MAX_HOPS = 4  # `self.opt = opt`, `opt = optimizer`...: alias chains longer than this are unknown


@dataclass(frozen=True)
class OptimizerCall:
    """`torch.optim.Adam(model.parameters(), lr=1e-3)`: where an optimizer is built."""

    call: cst.Call
    name: str  # qualified, e.g. torch.optim.Adam
    params: cst.BaseExpression | None
    lr: cst.BaseExpression | None  # keyword `lr` or the second positional argument
    function: Function
    in_loop: bool  # rebuilt on every pass of a loop (often with a new lr)


@dataclass(frozen=True)
class TrainingStep:
    """A `backward()` followed, later in the same function, by an optimizer `step()`."""

    backward: cst.Call
    step: cst.Call
    optimizer: cst.BaseExpression
    construction: OptimizerCall | None
    loops: tuple[Loop, ...]  # around the step inside its function, outermost first
    epoch_loop: bool  # one of those loops names an epoch in its variable or iterable
    clipped: bool  # a clipping call sits between backward and step
    function: Function


@dataclass
class TrainingFacts:
    """Everything about training that one file says; see `training_facts`."""

    index: TorchIndex
    walk: FileWalk
    steps: list[TrainingStep] = field(default_factory=list)

    @property
    def clipping_elsewhere(self) -> bool:
        """Trainer(gradient_clip_val=...), a clamping grad hook, max_grad_norm=..."""
        return self.walk.clipping_elsewhere

    @property
    def has_lr_schedule(self) -> bool:
        return self.walk.has_lr_schedule

    # -- optimizers -----------------------------------------------------------------------

    def optimizer(
        self, expr: cst.BaseExpression, where: Function
    ) -> tuple[bool, OptimizerCall | None]:
        """(is an optimizer, its construction when known) for an expression like `opt`."""
        key = dotted_name(expr)
        if key is None:
            return False, None  # `self.optimizers()[0]`: not a plain name
        for _ in range(_MAX_HOPS):
            pairs = self._pairs(key, where)
            if any(starts(self.index.call_name(v), tables.SCHEDULER_PREFIXES) for v, _ in pairs):
                return False, None  # a scheduler: `scheduler.step()` is no optimizer step
            built = [b for v, f in pairs if (b := self._construction(v, f)) is not None]
            if built:
                return True, built[0] if len(built) == 1 else None
            alias = dotted_name(pairs[0][0]) if len(pairs) == 1 else None
            if alias is None:
                break
            key, where = alias, pairs[0][1]  # `self.optimizer = optimizer`: follow the alias
        return _optimizer_like(key), None

    def _pairs(self, key: str, where: Function) -> list[tuple[cst.BaseExpression, Function]]:
        """What `key` is assigned, preferring assignments in the function `where`."""
        pairs = self.walk.assignments.get(key, [])
        return [p for p in pairs if p[1] is where] or pairs

    def construction(self, value: cst.BaseExpression, function: Function) -> OptimizerCall | None:
        """The optimizer an assigned value builds (`torch.optim.SGD(...)`), or None."""
        return self._construction(value, function)

    def _construction(self, call: cst.BaseExpression, function: Function) -> OptimizerCall | None:
        name = self.index.call_name(call)
        if not isinstance(call, cst.Call) or name is None:
            return None
        if name not in tables.EXTRA_OPTIMIZERS and (
            not starts(name, tables.OPTIMIZER_PREFIXES) or starts(name, tables.NOT_OPTIMIZERS)
        ):
            return None  # not an optimizer class
        positional = [a.value for a in call.args if a.keyword is None and a.star == ""]
        keywords = {a.keyword.value: a.value for a in call.args if a.keyword is not None}
        params = keywords.get("params", positional[0] if positional else None)
        second = positional[1] if len(positional) > 1 else None
        lr = keywords.get("lr", None if name in tables.OPTIMIZER_FACTORIES else second)
        return OptimizerCall(call, name, params, lr, function, call in self.walk.looped)

    # -- models ---------------------------------------------------------------------------

    def rnn_layer(self, step: TrainingStep) -> str | None:
        """The RNN layer (`LSTM`) in the model this step trains; None when none or unknown."""
        resolved = self._params_rnn(step.construction) if step.construction else None
        if resolved is not None:
            return resolved or None
        owner = self.walk.owner.get(step.function) if step.function is not None else None
        if owner in self.index.module_classes:  # Lightning manual optimization: trains `self`
            return recurrent.rnn_in_class(self.index, owner)
        if not self.walk.instantiated:
            return None  # no model built in this file
        found = [recurrent.rnn_in_expr(self.index, call) for call in self.walk.instantiated]
        return found[0] if all(found) else None

    def _params_rnn(self, built: OptimizerCall) -> str | None:
        """RNN name, "" when the parameters' owners are known to hold none, None if unknown."""
        if built.params is None:
            return None
        owners = [receiver(c) for c in parameters_calls(built.params)]
        if not owners and dotted_name(built.params) is not None:
            owners = [built.params]  # `create_optimizer_v2(model, ...)`, `Adam(params)`
        verdicts = [self._owner_rnn(o, built.function) for o in owners]
        if any(verdicts):
            return next(v for v in verdicts if v)
        return "" if verdicts and all(v == "" for v in verdicts) else None

    def _owner_rnn(self, owner: cst.BaseExpression, where: Function) -> str | None:
        key = dotted_name(owner)
        for _ in range(_MAX_HOPS):
            if key is None:
                return None  # `get_model().parameters()`: unknowable
            if key == "self" and where in self.walk.owner:
                return recurrent.rnn_in_class(self.index, self.walk.owner[where]) or ""
            pairs = self._pairs(key, where)
            if not pairs:
                # `model.head.parameters()`: only part of a model; a parameter name: unknown
                return self._attribute_rnn(key, where) if "." in key else None
            alias = dotted_name(pairs[0][0]) if len(pairs) == 1 else None
            if alias is None:
                values = [v for v, _ in pairs]
                verdicts = [recurrent.rnn_in_expr(self.index, v) for v in values]
                if any(verdicts):
                    return next(v for v in verdicts if v)
                known = all(recurrent.is_model_call(self.index, v) for v in values)
                return "" if known else None
            key, where = alias, pairs[0][1]  # `self.model = model`: follow the alias
        return None

    def imported_model(self, step: TrainingStep) -> str | None:
        """The imported class (`models.rnn.Encoder`, `.rnn.Encoder`) whose instance this step
        trains, when the model is built from a class of another file; None otherwise."""
        built = step.construction
        if built is None or built.params is None:
            return None
        for call in parameters_calls(built.params):
            key = dotted_name(receiver(call))
            where = built.function
            for _ in range(_MAX_HOPS):
                pairs = self._pairs(key, where) if key is not None else []
                if len(pairs) != 1:
                    break  # unknown, or assigned in several places
                value, where = recurrent.unwrap(pairs[0][0]), pairs[0][1]
                name = self.index.call_name(value)
                if name is not None and not name.startswith(("torch.", "lightning")):
                    return name
                key = dotted_name(value)
        return None

    def _attribute_rnn(self, key: str, where: Function) -> str:
        """The RNN in `model.encoder` when `model` is a local class; "" (quiet) otherwise."""
        base, attr = key.rsplit(".", 1)
        names = (
            [self.walk.owner.get(where)]
            if base == "self" and where is not None
            else [recurrent.local_class(self.index, v) for v, _ in self._pairs(base, where)]
        )
        info = self.index.module_classes.get(names[0] or "") if len(names) == 1 else None
        value = info.attrs.get(attr) if info is not None else None
        return (recurrent.rnn_in_expr(self.index, value) or "") if value is not None else ""

    # -- loops ----------------------------------------------------------------------------

    def is_multi_epoch(self, step: TrainingStep) -> bool:
        """The step repeats over epochs: two nested loops, or a loop over epochs, here or in
        a caller of its function in this file."""
        depth, epoch = self._context(step.function, frozenset())
        return epoch or step.epoch_loop or depth + len(step.loops) >= 2

    def _context(self, function: Function, seen: frozenset[str]) -> tuple[int, bool]:
        if function is None or function.name.value in seen:
            return 0, False
        best = (0, False)
        for caller, loops in self.walk.callers.get(function.name.value, []):
            depth, epoch = self._context(caller, seen | {function.name.value})
            here = (depth + len(loops), epoch or any(mentions_epoch(loop) for loop in loops))
            best = (max(best[0], here[0]), best[1] or here[1])
        return best

    def pair_steps(self, function: Function, events: list[Event]) -> None:
        """Each optimizer step with the nearest `backward()` before it in the same function."""
        backward: int | None = None
        for i, event in enumerate(events):
            if event.kind == "backward":
                backward = i
            if event.kind != "step" or backward is None:
                continue
            found = self.stepped_optimizer(event.call, function)
            if found is None:
                continue  # `scheduler.step()`, `env.step(action)`: not an optimizer
            expr, built = found
            clipped = any(
                e.kind == "clip" or (e.kind == "call" and e.name in self.walk.clipping_functions)
                for e in events[backward + 1 : i]
            )
            epoch = any(mentions_epoch(loop) for loop in event.loops)
            self.steps.append(
                TrainingStep(
                    events[backward].call,
                    event.call,
                    expr,
                    built,
                    event.loops,
                    epoch,
                    clipped,
                    function,
                )
            )

    def stepped_optimizer(
        self, call: cst.Call, function: Function
    ) -> tuple[cst.BaseExpression, OptimizerCall | None] | None:
        owner = receiver(call)
        is_optimizer, built = self.optimizer(owner, function)
        if is_optimizer:
            return owner, built
        args = [a.value for a in call.args if a.keyword is None and a.star == ""]
        if len(args) == 1:  # AMP: `scaler.step(optimizer)`
            is_optimizer, built = self.optimizer(args[0], function)
            if is_optimizer:
                return args[0], built
        return None


def training_facts(index: TorchIndex) -> TrainingFacts:
    """The training facts of the file behind `index`, built on first use."""
    facts = _CACHE.get(index)
    if facts is None:
        facts = TrainingFacts(index, walk_training(index))
        for function, events in facts.walk.events.items():
            facts.pair_steps(function, events)
        _CACHE[index] = facts
    return facts


_CACHE: PerFile[TrainingFacts] = PerFile("training._CACHE")


def _optimizer_like(key: str) -> bool:
    """An unresolvable `opt`, `optimizer_g`, `self.optim`: named like an optimizer."""
    last = key.rsplit(".", 1)[-1].lower()
    if "sched" in last:
        return False
    return "optim" in last or re.fullmatch(r"(\w*_)?opts?(_\w*|\d*|[a-z])?", last) is not None


def parameters_calls(node: cst.CSTNode) -> list[cst.Call]:
    """The `model.parameters()` / `self.x.named_parameters()` calls in an optimizer's params."""
    return [
        call
        for call in findall(node, cst.Call)
        if isinstance(call, cst.Call)
        and isinstance(call.func, cst.Attribute)
        and call.func.attr.value in _PARAMS_METHODS
    ]
