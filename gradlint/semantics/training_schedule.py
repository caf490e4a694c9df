"""Where gradient clipping and learning-rate schedules run relative to the training step.

Clipping bounds an update only when it runs between a pass's `backward()` and its optimizer
`step()`; a learning-rate scheduler's `step()` belongs after the optimizer's. Both questions
read the order of events in a loop body as a cycle (the end of one pass runs into the start
of the next), from `training_walk`'s per-function event lists, and stay quiet whenever a
helper of this file, another loop or a branch of its own could change that order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import libcst as cst

from gradlint.semantics import tables
from gradlint.semantics.names import dotted_name
from gradlint.semantics.nodes import findall
from gradlint.semantics.training import TrainingFacts
from gradlint.semantics.training_walk import Event, Function, receiver, starts

_MAX_HOPS = 4  # alias chains (`self.sched = sched`) longer than this are unknown
_HELPER_DEPTH = 3  # helpers calling helpers: how deep a stepping optimizer is looked for
# Calls that measure the norm without changing any gradient.
_MEASURING = frozenset({"torch.nn.utils.get_total_norm"})
_INFINITE = frozenset({"inf", "math.inf", "np.inf", "numpy.inf", "torch.inf"})
# Methods already told apart by their event kind; their `call` events repeat the same call.
_KIND_METHODS = frozenset({"step", "backward", "manual_backward", "zero_grad", "train", "eval"})
# Parts of a called name that mean "this may backpropagate or step" (`optimizer_step(...)`).
_TRAINING_FRAGMENTS = ("backward", "optimiz")
# Things named `*sched*` that schedule something other than the learning rate.
_OTHER_SCHEDULES = (
    "noise",
    "beta",
    "temp",
    "kl",
    "teacher",
    "ema",
    "sampl",
    "weight",
    "momentum",
    "tau",
    "eps",
    "mask",
    "drop",
    "diffusion",
    "alpha",
    "sigma",
)
_PLATEAU = "ReduceLROnPlateau"
_LIGHTNING_MODULES = ("lightning.pytorch.LightningModule", "lightning.pytorch.core.LightningModule")
# Parts of names in a branch test that may single out the first pass (`if epoch > 0:`).
_PASS_COUNTERS = ("epoch", "iter", "step", "warm", "first", "start", "resume", "count", "idx")
# Inherited methods named like bookkeeping (`self.log(...)`, `self.log_metric(...)`): they
# are taken not to backpropagate nor step.
_HARMLESS_PREFIXES = ("log", "print", "save", "record", "report", "write", "_log")
# nn.Module / LightningModule methods that read the model without running backward.
_HARMLESS_METHODS = frozenset(
    {
        "parameters",
        "named_parameters",
        "modules",
        "named_modules",
        "children",
        "forward",
        "state_dict",
        "all_gather",
        "lr_schedulers",
    }
)


# -- gradient clipping ----------------------------------------------------------------------


@dataclass(frozen=True)
class IneffectiveClip:
    """A clipping call outside its pass's backward-to-step window."""

    clip: cst.Call
    other: cst.Call | None  # the `backward()` it precedes or the `step()` it follows; None
    after_step: bool  # for the backward Lightning runs after `training_step`


def ineffective_clips(facts: TrainingFacts) -> list[IneffectiveClip]:
    """Clipping calls that run before the pass's `backward()` or after its `step()`."""
    found: list[IneffectiveClip] = []
    for function, events in facts.walk.events.items():
        automatic = _is_automatic_training_step(facts, function, events)
        for i, event in enumerate(events):
            if event.kind != "clip" or not _changes_gradients(facts, event.call):
                continue
            if automatic:
                found.append(IneffectiveClip(event.call, None, after_step=False))
                continue
            hit = _misplaced_clip(facts, function, events, i)
            if hit is not None:
                found.append(hit)
    return found


def _is_automatic_training_step(
    facts: TrainingFacts, function: Function, events: list[Event]
) -> bool:
    """`training_step` of a LightningModule left to automatic optimization: Lightning runs
    `backward()` after it returns, so everything in it runs before the backward."""
    if function is None or function.name.value != "training_step":
        return False
    cls = facts.index.classes.get(facts.walk.owner.get(function, ""))
    if cls is None or not any(
        (facts.index.qualified(base.value) or "").startswith(_LIGHTNING_MODULES)
        for base in cls.bases
    ):
        return False  # not a LightningModule of this file (a subclass of one elsewhere)
    if any(
        e.kind in ("backward", "step")
        or (e.kind == "call" and (e.name == "optimizers" or _may_train(facts, e)))
        for e in events
    ):
        return False  # manual optimization (or a helper that may run it): read as usual
    return not any(
        isinstance(node, cst.Assign)
        and any(dotted_name(t.target) == "self.automatic_optimization" for t in node.targets)
        for node in findall(cls, cst.Assign)
    )


def _misplaced_clip(
    facts: TrainingFacts, function: Function, events: list[Event], i: int
) -> IneffectiveClip | None:
    clip = events[i]
    before, after = _pass_around(events, i)
    nxt = _first_decisive(facts, function, clip, after)
    if nxt is None or nxt.kind != "backward":
        return None  # a step comes first (the clip works), or the order is unknown
    prev = _first_decisive(facts, function, clip, list(reversed(before)))
    if prev is None:
        return IneffectiveClip(clip.call, nxt.call, after_step=False)
    if prev.kind == "step" and _step_kind(facts, prev, function) == "optimizer":
        return IneffectiveClip(clip.call, prev.call, after_step=True)
    return None  # between two backward() calls, or unknown


def _pass_around(events: list[Event], i: int) -> tuple[list[Event], list[Event]]:
    """(events before `events[i]` in its pass, events after it up to the same point of the
    next pass). The pass is the body of its innermost loop, or its whole function."""
    event = events[i]
    region = [e for e in events if _inside(e, event.loops)]
    at = next(k for k, e in enumerate(region) if e is event)
    before, after = region[:at], region[at + 1 :]
    if event.loops:
        after = after + before  # the next pass starts over at the top of the loop body
    return before, after


def _first_decisive(
    facts: TrainingFacts, function: Function, anchor: Event, events: Sequence[Event]
) -> Event | None:
    """The first `backward()` or optimizer `step()` in `events` that runs in the same pass as
    `anchor`; None at the end, or when a helper, another loop or a branch hides the order."""
    for event in events:
        if event.kind == "call":
            if _may_train(facts, event):
                return None  # a helper that may backpropagate or step
            continue
        if event.kind not in ("backward", "step"):
            continue
        if event.kind == "step" and _step_kind(facts, event, function) == "other":
            continue  # `scheduler.step()`, `env.step(action)`
        if not _same_loops(event, anchor) or not _same_pass(event, anchor):
            return None  # in another loop, or in a branch of its own: unknowable
        return event
    return None


def _changes_gradients(facts: TrainingFacts, call: cst.Call) -> bool:
    """Clipping proper: not `get_total_norm`, not `clip_grad_norm_(params, inf)` (a way to
    read the total norm for logging)."""
    if facts.index.call_name(call) in _MEASURING:
        return False
    if any(
        a.keyword is not None and "clip" in a.keyword.value and dotted_name(a.value) == "False"
        for a in call.args
    ):
        return False  # a project's own `clip_grad_norm_(..., clip_grad=False)`: measures only
    bound = next(
        (a.value for a in call.args if a.keyword is not None and a.keyword.value != "parameters"),
        call.args[1].value if len(call.args) > 1 and call.args[1].keyword is None else None,
    )
    return bound is None or not _is_infinite(bound)


def _is_infinite(node: cst.BaseExpression) -> bool:
    if isinstance(node, cst.Call) and isinstance(node.func, cst.Name) and node.args:
        value = node.args[0].value
        return (
            node.func.value == "float"
            and isinstance(value, cst.SimpleString)
            and "inf" in value.value.lower()
        )
    if isinstance(node, (cst.Float, cst.Integer)):
        return float(node.value.replace("_", "")) >= 1e6
    return dotted_name(node) in _INFINITE


# -- learning-rate schedules ----------------------------------------------------------------


@dataclass(frozen=True)
class EarlySchedulerStep:
    """A scheduler `step()` that runs before the first optimizer step of training."""

    scheduler_step: cst.Call
    optimizer_step: cst.Call  # the step, or the call of the helper that runs it
    helper: str | None  # that helper's name


def early_scheduler_steps(facts: TrainingFacts) -> list[EarlySchedulerStep]:
    """`scheduler.step()` calls that run, in the first pass, before any optimizer step."""
    found: list[EarlySchedulerStep] = []
    for function, events in facts.walk.events.items():
        for i, event in enumerate(events):
            if event.kind != "step" or event.call.args:
                continue  # `scheduler.step(val_loss)`, `scheduler.step(epoch)`: set, not advanced
            if not _is_lr_scheduler(facts, receiver(event.call), function):
                continue
            hit = _early(facts, function, events, i)
            if hit is not None:
                found.append(hit)
    return found


def _early(
    facts: TrainingFacts, function: Function, events: list[Event], i: int
) -> EarlySchedulerStep | None:
    event = events[i]
    if event.loops:
        if _guarded(event):
            return None  # behind `if epoch > 0:` or the like: may skip the first pass
    elif not _runs_per_epoch(facts, function) or event.blocks:
        return None  # once before training, or guarded: often a deliberate warm-up skip
    if any(_steps(facts, e, function) is not None for e in events[:i]):
        return None  # an optimizer may have stepped already
    region = [e for e in events[i + 1 :] if _inside(e, event.loops)]
    for later in region:
        helper = _steps(facts, later, function, known=True)
        if helper is not None:
            return EarlySchedulerStep(event.call, later.call, helper or None)
    return None


def _steps(
    facts: TrainingFacts, event: Event, function: Function, known: bool = False
) -> str | None:
    """ "" when `event` is an optimizer step; a helper's name when it is a call that steps an
    optimizer (a helper of this file, or a `train*` call handed the optimizer); else None.
    With `known`, a `step()` of something unknown (`prof.step()`) is no optimizer step."""
    if event.kind == "step":
        kind = _step_kind(facts, event, function)
        return "" if kind == "optimizer" or (kind == "unknown" and not known) else None
    if event.kind != "call" or _repeats_kind(event):
        return None
    if event.name in facts.walk.callers and _helper_steps(facts, event.name, _HELPER_DEPTH):
        return event.name
    if "train" in event.name.lower() or "epoch" in event.name.lower():
        for arg in event.call.args:
            if dotted_name(arg.value) is not None and facts.optimizer(arg.value, function)[0]:
                return event.name
    return None


def _helper_steps(facts: TrainingFacts, name: str, depth: int) -> bool:
    """A function of this file named `name` steps an optimizer, itself or through helpers."""
    candidates = [f for f in facts.walk.events if f is not None and f.name.value == name]
    if len(candidates) != 1 or depth <= 0:
        return False  # unknown, ambiguous, or too deep to follow
    function = candidates[0]
    for event in facts.walk.events[function]:
        if event.kind == "step" and facts.stepped_optimizer(event.call, function) is not None:
            return True
        if (
            event.kind == "call"
            and event.name in facts.walk.callers
            and event.name != name
            and _helper_steps(facts, event.name, depth - 1)
        ):
            return True
    return False


def _runs_per_epoch(facts: TrainingFacts, function: Function) -> bool:
    """`function` is called from a loop of this file (a per-epoch `train(epoch)`)."""
    if function is None:
        return False
    return any(loops for _, loops in facts.walk.callers.get(function.name.value, []))


def _is_lr_scheduler(facts: TrainingFacts, expr: cst.BaseExpression, where: Function) -> bool:
    """Built by `torch.optim.lr_scheduler.*` or `transformers.get_*_schedule*`, or, when it
    is built where this file cannot see, named like a learning-rate scheduler."""
    key = dotted_name(expr)
    if key is None:
        return False
    for _ in range(_MAX_HOPS):
        pairs = facts.walk.assignments.get(key, [])
        pairs = [p for p in pairs if p[1] is where] or pairs
        names = [facts.index.call_name(v) for v, _ in pairs]
        if any(starts(n, tables.SCHEDULER_PREFIXES) for n in names):
            return not any(n is not None and n.endswith(_PLATEAU) for n in names)
        if any(_built_by_local_class(facts, v) for v, _ in pairs):
            return False  # a schedule class of this file: its `step()` may be anything
        alias = dotted_name(pairs[0][0]) if len(pairs) == 1 else None
        if alias is None:
            break
        key, where = alias, pairs[0][1]
    last = key.rsplit(".", 1)[-1].lower()
    return "sched" in last and not any(part in last for part in _OTHER_SCHEDULES)


def _built_by_local_class(facts: TrainingFacts, value: cst.BaseExpression) -> bool:
    if not isinstance(value, cst.Call):
        return False
    name = dotted_name(value.func)
    return name is not None and name.rsplit(".", 1)[-1] in facts.index.classes


# -- shared ----------------------------------------------------------------------------------


def _step_kind(facts: TrainingFacts, event: Event, function: Function) -> str:
    """ "optimizer", "other" (a scheduler, `env.step(action)`) or "unknown" (`engine.step()`)."""
    if facts.stepped_optimizer(event.call, function) is not None:
        return "optimizer"
    owner = receiver(event.call)
    if _is_lr_scheduler(facts, owner, function) or event.call.args:
        return "other"
    key = dotted_name(owner)
    if key is not None and "sched" in key.rsplit(".", 1)[-1].lower():
        return "other"
    return "unknown"


def _may_train(facts: TrainingFacts, event: Event, depth: int = _HELPER_DEPTH) -> bool:
    """A call named like backward or step, or of a helper (`train(...)`, `self.update()`)
    that backpropagates or steps, or that this file does not define (an inherited method)."""
    if _repeats_kind(event):
        return False  # the same call again, already seen as a backward/step/... event
    lowered = event.name.lower()
    if any(f in lowered for f in _TRAINING_FRAGMENTS) or _names_a_step(lowered):
        return True
    if event.name not in facts.walk.callers:
        return False  # a method of some object, or an imported function
    candidates = [f for f in facts.walk.events if f is not None and f.name.value == event.name]
    if not candidates and (
        isinstance(event.call.func, cst.Name) or f"self.{event.name}" in facts.walk.assignments
    ):
        return False  # `criterion(out, y)`, `self.model(x)`: a callable object, not a function
    if len(candidates) != 1 or depth <= 0:
        harmless = event.name in _HARMLESS_METHODS or event.name.startswith(_HARMLESS_PREFIXES)
        return not harmless  # inherited, ambiguous or too deep
    return any(
        e.kind in ("backward", "step") or (e.kind == "call" and _may_train(facts, e, depth - 1))
        for e in facts.walk.events[candidates[0]]
    )


def _names_a_step(name: str) -> bool:
    """`train_step`, `step_model`, `take_step`; not `timesteps` nor `num_steps`."""
    return "time" not in name and (
        name == "step" or name.endswith("_step") or name.startswith("step_")
    )


def _repeats_kind(event: Event) -> bool:
    """`opt.step()` is walked as a `step` event and again as a `call`; the call is skipped."""
    if event.name in ("train", "eval") and len(event.call.args) > 1:
        return False  # `function.train(config, loader, model, ...)`: not `model.train()`
    return isinstance(event.call.func, cst.Attribute) and event.name in _KIND_METHODS


def _same_loops(a: Event, b: Event) -> bool:
    return len(a.loops) == len(b.loops) and all(x is y for x, y in zip(a.loops, b.loops))


def _inside(event: Event, loops: tuple[object, ...]) -> bool:
    return len(event.loops) >= len(loops) and all(a is b for a, b in zip(event.loops, loops))


def _same_pass(a: Event, b: Event) -> bool:
    """One of the two runs whenever the other does (no sibling branches)."""
    return a.runs_whenever(b) or b.runs_whenever(a)


def _guarded(event: Event) -> bool:
    """Some branch between the innermost loop's body and `event` may skip the first pass."""
    loop = event.loops[-1]
    body = getattr(getattr(loop, "body", None), "body", None)
    inner = [i for i, block in enumerate(event.blocks) if block is body]
    if not inner:
        return True  # the loop's `else`: not looked into
    return any(_counts_passes(block, loop) for block in event.blocks[inner[-1] + 1 :])


def _counts_passes(block: object, loop: cst.CSTNode) -> bool:
    """`block` is a branch whose test may tell the first pass from the others: it reads a
    number or a name like `epoch`, `step`, `iter`, `warmup` (`if phase == "train":` does
    not). A block that is not an `if` branch (an `else`, a `try`) counts as such."""
    branch = next(
        (
            node
            for node in findall(loop, cst.If)
            if isinstance(node, cst.If) and getattr(node.body, "body", None) is block
        ),
        None,
    )
    if branch is None:
        return True  # an `else`, `try` or `with` around it: not looked into
    if findall(branch.test, cst.Integer) or findall(branch.test, cst.Float):
        return True
    names = [cst.ensure_type(n, cst.Name).value.lower() for n in findall(branch.test, cst.Name)]
    names += [
        cst.ensure_type(a, cst.Attribute).attr.value.lower()
        for a in findall(branch.test, cst.Attribute)
    ]
    return any(part in name for name in names for part in _PASS_COUNTERS)
