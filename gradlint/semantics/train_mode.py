"""Training and evaluation mode: `model.eval()` inside a training loop that never switches
the model back with `model.train()` before its next training step.

Works on the per-function event lists of `training_walk`. A local helper's events are taken
in order (`evaluate(model)` that calls `model.eval()`, `train_one_epoch(...)` that
backpropagates); an imported helper is unknown and adds nothing. Whether the mode matters at
all is read from the model: a class of this file (or, through the project phase, of another
file) holding dropout or batch norm, or a torchvision model.
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from gradlint.semantics import tables
from gradlint.semantics.index import PerFile, TorchIndex
from gradlint.semantics.names import dotted_name
from gradlint.semantics.nodes import findall
from gradlint.semantics.recurrent import local_class, unwrap
from gradlint.semantics.training import TrainingFacts, parameters_calls
from gradlint.semantics.training_walk import Event, Function, Loop, receiver, starts

# layers whose forward pass differs between training and evaluation mode
MODE_LAYERS = frozenset(
    tables.NN + name
    for name in (
        "Dropout",
        "Dropout1d",
        "Dropout2d",
        "Dropout3d",
        "AlphaDropout",
        "FeatureAlphaDropout",
        "BatchNorm1d",
        "BatchNorm2d",
        "BatchNorm3d",
        "LazyBatchNorm1d",
        "LazyBatchNorm2d",
        "LazyBatchNorm3d",
        "SyncBatchNorm",
        "Transformer",
        "TransformerEncoderLayer",
        "TransformerDecoderLayer",
    )
)
# torchvision models without dropout or batch norm at their default settings
_MODE_FREE_TORCHVISION = ("vit_",)
_DEPTH = 3  # local helpers calling local helpers, followed this many levels
_MAX_HOPS = 4  # `self.model = model`, `net = model`...: alias chains longer are unknown
_LAST_PASS_WORDS = ("last", "final", "==")  # `if epoch == epochs - 1:` evaluates once, at the end

TRAIN, EVAL, STEP = "train", "eval", "step"
_FROZEN_WORDS = ("teacher", "target", "ema", "frozen", "reference", "ref_")


@dataclass(frozen=True)
class EvalLeftOn:
    """`model.eval()` (or a helper calling it) in a loop whose next pass trains in eval mode."""

    call: cst.Call  # the `model.eval()` or `evaluate(model)` call in the loop
    model: str  # the model as the loop's function names it
    layer: str | None  # the mode-dependent layer, when this file shows it
    imported: str | None  # else the imported class the project phase may know


def eval_left_on(facts: TrainingFacts) -> list[EvalLeftOn]:
    found: list[EvalLeftOn] = []
    seen: set[int] = set()
    every = [e for events in facts.walk.events.values() for e in events]
    if not any(e.kind == "eval" or (e.kind == "train" and _is_train_false(e.call)) for e in every):
        return found  # nothing in the file switches a model to eval mode
    for function, events in facts.walk.events.items():
        if not any(e.kind == "eval" or (e.kind == "call" and e.loops) for e in events):
            continue
        loops = {id(loop): loop for e in events for loop in e.loops}
        for loop in loops.values():
            for event, model in _left_on(facts, function, events, loop):
                if id(event.call) in seen:
                    continue
                seen.add(id(event.call))
                names: list[str] = []
                layer, imported = _mode_layer(facts, model, function, names)
                trained = _trained_part(facts, names, _stepped_here(facts, function, loop))
                if trained is None:
                    continue  # a frozen teacher or target network, kept in eval on purpose
                if trained:  # only `model.fc` is trained: its own layers decide
                    layer, imported = _mode_layer(facts, trained, function, [])
                if layer or imported:
                    found.append(EvalLeftOn(event.call, model, layer, imported))
    return found


# -- the order of modes and steps in one pass ----------------------------------------------


@dataclass(frozen=True)
class _Mark:
    kind: str  # TRAIN / EVAL / STEP
    model: str | None  # for EVAL: the model as the loop's function names it


def _left_on(
    facts: TrainingFacts, function: Function, events: list[Event], loop: Loop
) -> list[tuple[Event, str]]:
    """The eval events of `loop` after which, going round the loop, a training step comes
    before any `train()`."""
    body = _body(loop)
    # the loop's body only: a `for ... else:` block runs once, after the last pass
    inside = [e for e in events if loop in e.loops and any(b is body for b in e.blocks)]
    flat = [(e, mark) for e in inside for mark in _marks(facts, e, function)]
    if not any(mark.kind == STEP for _, mark in flat):
        return []  # nothing trains in this loop
    conditional_train = any(e.kind == "train" and not _in_body(e, body) for e in inside)
    found: list[tuple[Event, str]] = []
    for i, (event, mark) in enumerate(flat):
        if mark.kind != EVAL or mark.model is None:
            continue
        if not _in_body(event, body) and (
            conditional_train or _last_pass_only(facts, function, event)
        ):
            continue  # train/eval in two branches, or an evaluation after the last epoch
        for _, later in flat[i + 1 :] + flat[:i]:
            if later.kind == TRAIN:
                break
            if later.kind == STEP:
                found.append((event, mark.model))
                break
    return found


def _body(loop: Loop) -> object:
    block = loop.body
    return block.body if isinstance(block, (cst.IndentedBlock, cst.SimpleStatementSuite)) else None


def _in_body(event: Event, body: object) -> bool:
    """The event runs in every pass of the loop: no branch or inner loop of its own."""
    return bool(event.blocks) and event.blocks[-1] is body


def _marks(facts: TrainingFacts, event: Event, function: Function, depth: int = 0) -> list[_Mark]:
    """What one event does to the mode: TRAIN, EVAL, STEP (a backward), in order."""
    if event.kind == "backward":
        # a training step: a backward that an optimizer step follows (not a Fisher or
        # saliency computation, which may run in eval mode on purpose)
        stepped = any(step.backward is event.call for step in facts.steps)
        return [_Mark(STEP, None)] if stepped else []
    if event.kind == "train":
        if _is_train_false(event.call):
            return [_Mark(EVAL, dotted_name(receiver(event.call)))]
        return [_Mark(TRAIN, None)]
    if event.kind == "eval":
        return [_Mark(EVAL, dotted_name(receiver(event.call)))]
    if event.kind != "call" or depth >= _DEPTH:
        return []
    helper = _local_function(facts, event.call)
    if helper is None:
        return []  # imported or unknown: may do anything, so it adds nothing
    inner = facts.walk.events.get(helper, [])
    result: list[_Mark] = []
    for e in inner:
        for mark in _marks(facts, e, helper, depth + 1):
            if mark.kind == EVAL:
                if e.blocks:
                    continue  # `if not training: model.eval()`: mode chosen by an argument
                mark = _Mark(EVAL, _argument_for(event.call, helper, mark.model))
            result.append(mark)
    return result


def _is_train_false(call: cst.Call) -> bool:
    return (
        len(call.args) == 1
        and isinstance(call.args[0].value, cst.Name)
        and call.args[0].value.value == "False"
    )


def _local_function(facts: TrainingFacts, call: cst.Call) -> cst.FunctionDef | None:
    """The function of this file a call runs: `evaluate(...)`, `self.validate(...)`."""
    func = call.func
    if isinstance(func, cst.Name) and facts.index.qualified(func) is None:
        return facts.index.functions.get(func.value)
    if isinstance(func, cst.Attribute) and dotted_name(func.value) == "self":
        return facts.index.functions.get(func.attr.value)
    return None


def _argument_for(call: cst.Call, helper: cst.FunctionDef, name: str | None) -> str | None:
    """The caller's expression for the helper's parameter `name` (`net` for `model`), the
    name itself for `self.model`, None when not passed in a readable way."""
    if name is None:
        return None
    root = name.split(".", 1)[0]
    if root == "self":
        return name
    params = [p.name.value for p in helper.params.params]
    if root not in params:
        return None  # a global of the helper's module
    position = params.index(root) - (1 if params and params[0] == "self" else 0)
    for i, arg in enumerate(call.args):
        if arg.star:
            return None
        if (arg.keyword is not None and arg.keyword.value == root) or (
            arg.keyword is None and i == position
        ):
            key = dotted_name(arg.value)
            return None if key is None else key + name[len(root) :]
    return None


def _last_pass_only(facts: TrainingFacts, function: Function, event: Event) -> bool:
    """The branch around the event reads like "only after the last epoch" or ends the loop."""
    block = event.blocks[-1] if event.blocks else None
    if block is None:
        return False
    scope: cst.CSTNode = function if function is not None else facts.index.module
    for node in findall(scope, cst.If):
        test = cst.ensure_type(node, cst.If)
        body = test.body.body if isinstance(test.body, cst.IndentedBlock) else test.body.body
        if body is not block:
            continue
        text = facts.index.module.code_for_node(test.test).lower()
        if any(word in text for word in _LAST_PASS_WORDS) and "%" not in text:
            return True
        return any(
            isinstance(n, (cst.Break, cst.Return))
            for n in findall(test.body, (cst.Break, cst.Return))
        )
    return False


# -- does the mode matter for this model ---------------------------------------------------


def _stepped_here(facts: TrainingFacts, function: Function, loop: Loop) -> list[cst.BaseExpression]:
    """How the optimizers stepped in this loop were built: the construction of each, or the
    last one bound before the loop; empty when the steps happen in helpers."""
    found: list[cst.BaseExpression] = []
    order: dict[int, int] | None = None
    for step in facts.steps:
        if step.function is not function or loop not in step.loops:
            continue
        if step.construction is not None:
            found.append(step.construction.call)
            continue
        key = dotted_name(step.optimizer)
        values = [v for v, _ in facts.walk.assignments.get(key or "", [])]
        if order is None:
            nodes = findall(facts.index.module, (cst.Call, cst.For, cst.While))
            order = {id(node): i for i, node in enumerate(nodes)}
        start = order.get(id(loop), 0)
        before = [v for v in values if order.get(id(v), start) < start]
        found.extend(before[-1:] or values)
    return found


def _trained_part(
    facts: TrainingFacts, names: list[str], stepped: list[cst.BaseExpression]
) -> str | None:
    """What the loop's optimizer (or, when the loop steps through helpers, any optimizer of
    this file) trains of the evaluated model: "" for the whole model (`Adam(model.parameters())`),
    the part for `SGD(model.fc.parameters())`, None for another model. With no optimizer
    built here, the whole model unless its name says it is a frozen copy."""
    owners: set[str] = set()
    candidates = stepped or [v for values in facts.walk.assignments.values() for v, _ in values]
    for value in candidates:
        name = facts.index.call_name(value)
        if not starts(name, tables.OPTIMIZER_PREFIXES) or starts(name, tables.NOT_OPTIMIZERS):
            continue
        for call in parameters_calls(value):
            key = dotted_name(receiver(call))
            if key is not None:
                owners.add(key)
    if not owners:
        frozen = any(word in name.lower() for name in names for word in _FROZEN_WORDS)
        return None if frozen else ""
    if any(name in owners for name in names):
        return ""
    parts = sorted(o for o in owners for name in names if o.startswith(name + "."))
    return parts[0] if len(parts) == 1 else None


def _mode_layer(
    facts: TrainingFacts, key: str, where: Function, names: list[str]
) -> tuple[str | None, str | None]:
    """(the mode-dependent layer the model holds, or the imported class it is built from);
    `names` receives every name the model goes by on the way."""
    index, walk = facts.index, facts.walk
    for _ in range(_MAX_HOPS):
        names.append(key)
        if key == "self" and where in walk.owner:
            return mode_layer_in_class(index, walk.owner[where]) or None, None
        root = key.split(".", 1)[0]
        if where is not None and root != "self" and root in _params(where):
            passed = _passed_by_caller(facts, where, key)
            if passed is None:
                return None, None  # a parameter no single local call fills
            key, where = passed
            continue
        pairs = walk.assignments.get(key, [])
        pairs = [p for p in pairs if p[1] is where] or pairs
        if len(pairs) != 1:
            return None, None  # never bound here, or bound in several ways
        value, where = unwrap(pairs[0][0]), pairs[0][1]
        alias = dotted_name(value)
        if alias is not None:
            key = alias
            continue
        return _value_layer(index, value)
    return None, None


def _params(function: cst.FunctionDef) -> list[str]:
    return [p.name.value for p in function.params.params]


def _passed_by_caller(
    facts: TrainingFacts, function: cst.FunctionDef, key: str
) -> tuple[str, Function] | None:
    """What the one local call of `function` passes for the parameter in `key`."""
    calls = [
        (e.call, caller)
        for caller, events in facts.walk.events.items()
        for e in events
        if e.kind == "call"
        and e.name == function.name.value
        and _local_function(facts, e.call) is function
    ]
    if len(calls) != 1:
        return None
    passed = _argument_for(calls[0][0], function, key)
    return (passed, calls[0][1]) if passed is not None else None


def _value_layer(index: TorchIndex, value: cst.BaseExpression) -> tuple[str | None, str | None]:
    name = index.call_name(value)
    if name in MODE_LAYERS:
        return _short(name), None
    if name == tables.SEQUENTIAL:
        return _layer_inside(index, value, frozenset()) or None, None
    if name is not None and name.startswith("torchvision.models."):
        short = _short(name)
        if short[:1].islower() and not short.startswith(_MODE_FREE_TORCHVISION):
            return "BatchNorm or Dropout", None  # every torchvision CNN holds one or both
        return None, None
    local = local_class(index, value)
    if local is not None:
        return mode_layer_in_class(index, local) or None, None
    built = _factory_return(index, value)
    if built is not None:
        return _value_layer(index, built)  # `def build(dim): return nn.Sequential(...)`
    if name is not None and not name.startswith(("torch", "lightning", "transformers", "timm")):
        if _short(name)[:1].isupper():
            return None, name  # a class of another file of the project
    return None, None


def _factory_return(index: TorchIndex, value: cst.BaseExpression) -> cst.BaseExpression | None:
    """What a local function called as `value` returns, when it has one `return` of a call
    (a model factory); None otherwise."""
    if not isinstance(value, cst.Call) or not isinstance(value.func, cst.Name):
        return None
    if index.qualified(value.func) is not None:
        return None  # imported, not a function of this file
    function = index.functions.get(value.func.value)
    if function is None:
        return None
    returns = [cst.ensure_type(r, cst.Return).value for r in findall(function, cst.Return)]
    if len(returns) != 1 or not isinstance(returns[0], cst.Call):
        return None
    return unwrap(returns[0]) if returns[0] is not value else None


_CACHE: PerFile[dict[str, str | None]] = PerFile("train_mode._CACHE")


def mode_layer_in_class(
    index: TorchIndex, name: str, seen: frozenset[str] = frozenset()
) -> str | None:
    """The first dropout / batch-norm layer a local nn.Module class builds (itself, in a
    Sequential, in a local submodule or base class); "" when it shows none and builds nothing
    it cannot see into; None when unknown."""
    cache = _CACHE.setdefault(index, {})
    if name in cache:
        return cache[name]
    info = index.module_classes.get(name)
    if info is None or name in seen:
        return None
    found = _layer_inside(index, info.node, seen | {name})
    for base in info.node.bases:
        if (
            found == ""
            and isinstance(base.value, cst.Name)
            and base.value.value in index.module_classes
        ):
            found = mode_layer_in_class(index, base.value.value, seen | {name})
    cache[name] = found
    return found


def _layer_inside(index: TorchIndex, node: cst.CSTNode, seen: frozenset[str]) -> str | None:
    unknown = False
    for call in findall(node, cst.Call):
        call = cst.ensure_type(call, cst.Call)
        name = index.call_name(call)
        if name in MODE_LAYERS:
            return _short(name)
        if name in tables.FUNCTIONAL_DROPOUT and _passes_training(call):
            return _short(name)
        if name is not None and name.startswith("torchvision.models."):
            return "BatchNorm or Dropout"
        local = local_class(index, call)
        if local is not None:
            inner = mode_layer_in_class(index, local, seen)
            if inner:
                return inner
            unknown = unknown or inner is None
        elif name is not None and not name.startswith("torch") and _short(name)[:1].isupper():
            unknown = True  # a submodule class from elsewhere
    return None if unknown else ""


def _passes_training(call: cst.Call) -> bool:
    return any(a.keyword is not None and a.keyword.value == "training" for a in call.args)


def _short(name: str | None) -> str:
    return (name or "").rsplit(".", 1)[-1]
