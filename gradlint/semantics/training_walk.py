"""The one walk over a file's statements that gathers what training code does.

Statements are walked (`walk_statements`-style, never every expression node), and inside each
simple statement only the calls a few levels deep are looked at. The result is raw material
for `gradlint.semantics.training`, which pairs `backward()` with optimizer `step()` calls.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Optional, Union

import libcst as cst

from gradlint.semantics import recurrent, tables
from gradlint.semantics.index import TorchIndex
from gradlint.semantics.names import child_blocks, dotted_name
from gradlint.semantics.nodes import findall

Loop = Union[cst.For, cst.While]
Function = Optional[cst.FunctionDef]

_CLIP_FUNCTIONS = tables.CLIP_FUNCTIONS | tables.MORE_CLIP_FUNCTIONS
_CLIP_METHODS = tables.CLIP_METHODS | tables.MORE_CLIP_METHODS
_MODE_METHODS = frozenset({"train", "eval"})
_CALL_DEPTH = 4  # calls nested deeper than this in one statement are not looked at


@dataclass(frozen=True)
class _Where:
    """The context of a statement: its function, the loops around it inside that function."""

    function: Function
    loops: tuple[Loop, ...]
    cls: cst.ClassDef | None  # the class whose body holds it directly
    in_module_class: bool
    # the statement lists around it inside its function, outermost first; `with` bodies are
    # left out (they always run), so two statements with the same chain run together
    blocks: tuple[object, ...] = ()


@dataclass
class Event:
    kind: str  # backward / step / clip / zero_grad / train / eval / call
    call: cst.Call
    loops: tuple[Loop, ...]
    name: str = ""  # callee's bare name, for `call`
    blocks: tuple[object, ...] = ()  # see `_Where.blocks`

    def runs_whenever(self, other: Event) -> bool:
        """This event runs in every pass that runs `other`: its statement list is `other`'s
        or one around it (no `if`, `else` or `except` branch of its own)."""
        return len(self.blocks) <= len(other.blocks) and all(
            a is b for a, b in zip(self.blocks, other.blocks)
        )


@dataclass
class FileWalk:
    """What one walk of a file found, per function (None: module level)."""

    events: dict[Function, list[Event]] = field(default_factory=lambda: {None: []})
    # dotted target (`optimizer`, `self.model`) -> assigned values and where
    assignments: dict[str, list[tuple[cst.BaseExpression, Function]]] = field(default_factory=dict)
    owner: dict[cst.FunctionDef, str] = field(default_factory=dict)  # method -> its class
    # bare callee name -> (calling function, loops around the call)
    callers: dict[str, list[tuple[Function, tuple[Loop, ...]]]] = field(default_factory=dict)
    looped: set[cst.BaseExpression] = field(default_factory=set)  # values assigned in a loop
    # local nn.Module classes and torch layers built outside any nn.Module class body
    instantiated: list[cst.BaseExpression] = field(default_factory=list)
    clipping_functions: set[str] = field(default_factory=set)  # functions that clip
    clipping_elsewhere: bool = False  # Trainer(gradient_clip_val=...), grad hooks, ...
    has_lr_schedule: bool = False


def walk_training(index: TorchIndex) -> FileWalk:
    """Walk the file behind `index` once."""
    collector = _Collector(index)
    collector.block(index.module.body, _Where(None, (), None, False))
    return collector.walk


class _Collector:
    """One walk over the file's statements (never every expression node: that would cost a
    second full traversal) gathering calls, assignments and loops per function."""

    def __init__(self, index: TorchIndex) -> None:
        self.index = index
        self.walk = FileWalk()

    def block(self, statements: Sequence[cst.CSTNode], where: _Where) -> None:
        for statement in statements:
            if isinstance(statement, cst.SimpleStatementLine):
                for small in statement.body:
                    self._small(small, where)
            elif isinstance(statement, cst.BaseSmallStatement):
                self._small(statement, where)  # `for x in y: loss.backward()`
            elif isinstance(statement, cst.FunctionDef):
                if where.cls is not None:
                    self.walk.owner[statement] = where.cls.name.value
                self.walk.events.setdefault(statement, [])
                inner = _Where(statement, (), None, where.in_module_class)
                for block in child_blocks(statement):
                    self.block(block, inner)
            elif isinstance(statement, cst.ClassDef):
                is_module = statement.name.value in self.index.module_classes
                inner = _Where(where.function, (), statement, where.in_module_class or is_module)
                for block in child_blocks(statement):
                    self.block(block, inner)
            elif isinstance(statement, (cst.For, cst.While)):
                loops = (*where.loops, statement)
                for block in child_blocks(statement):
                    looped = _Where(
                        where.function, loops, None, where.in_module_class, (*where.blocks, block)
                    )
                    self.block(block, looped)
            elif isinstance(statement, cst.With):
                for block in child_blocks(statement):
                    self.block(block, where)
            elif isinstance(statement, cst.BaseCompoundStatement):
                for block in child_blocks(statement):
                    branch = _Where(
                        where.function,
                        where.loops,
                        where.cls,
                        where.in_module_class,
                        (*where.blocks, block),
                    )
                    self.block(block, branch)

    def _small(self, small: cst.CSTNode, where: _Where) -> None:
        value: cst.BaseExpression | None = None
        if isinstance(small, (cst.Expr, cst.Return)):
            value = small.value
        elif isinstance(small, cst.Assign):
            value = small.value
            for target in small.targets:
                self._assign(target.target, small.value, where)
        elif isinstance(small, cst.AnnAssign) and small.value is not None:
            value = small.value
            self._assign(small.target, small.value, where)
        elif isinstance(small, cst.AugAssign):
            value = small.value
            if _is_lr_subscript(small.target):
                self.walk.has_lr_schedule = True  # `group["lr"] *= 0.1`: manual decay
        if value is None:
            return
        function = where.function
        if function is not None and function.name.value == "configure_optimizers":
            if _mentions_scheduler(value):
                self.walk.has_lr_schedule = True  # Lightning's {"lr_scheduler": ...}
        for call in _calls_in(value, _CALL_DEPTH):
            self._call(call, where)

    def _call(self, node: cst.Call, where: _Where) -> None:
        function, loops, blocks = where.function, where.loops, where.blocks
        events = self.walk.events[function]
        name = self.index.call_name(node)
        bare = _bare_name(node.func)
        method = isinstance(node.func, cst.Attribute)
        if method and bare in tables.BACKWARD_METHODS:
            events.append(Event("backward", node, loops, blocks=blocks))
        elif method and bare == "step":
            events.append(Event("step", node, loops, blocks=blocks))
        elif method and bare in _MODE_METHODS and _is_mode_call(node):
            events.append(Event(bare or "", node, loops, blocks=blocks))  # model.train() / .eval()
        elif method and bare == "zero_grad":
            events.append(Event("zero_grad", node, loops, blocks=blocks))
        if name in _CLIP_FUNCTIONS or bare in _CLIP_METHODS:
            events.append(Event("clip", node, loops, blocks=blocks))
            if function is not None:
                self.walk.clipping_functions.add(function.name.value)
        if bare:
            events.append(Event("call", node, loops, bare, blocks))
            if _calls_local_function(node, name):
                self.walk.callers.setdefault(bare, []).append((function, loops))
        if _configures_clipping(node, bare):
            self.walk.clipping_elsewhere = True
        if starts(name, tables.SCHEDULER_PREFIXES) or (
            bare and any(part in bare.lower() for part in tables.SCHEDULE_CALL_FRAGMENTS)
        ):
            self.walk.has_lr_schedule = True
        elif (
            isinstance(node.func, cst.Attribute)
            and bare == "step"
            and _names_scheduler(node.func.value)
        ):
            self.walk.has_lr_schedule = True  # `lr_sched.step()` built by code not seen here

    def _assign(self, target: cst.BaseExpression, value: cst.BaseExpression, where: _Where) -> None:
        if _is_lr_subscript(target):
            self.walk.has_lr_schedule = True  # `param_group["lr"] = lr`: manual schedule
        key = dotted_name(target)
        if key is None or wraps(value, key):
            return  # tuple unpacking, or `model = DDP(model)` keeping the same model
        if _names_scheduler(target):
            self.walk.has_lr_schedule = True  # `self.scheduler = build(...)`
        self.walk.assignments.setdefault(key, []).append((value, where.function))
        if where.loops:
            self.walk.looped.add(value)
        if not where.in_module_class and recurrent.is_model_call(self.index, value):
            self.walk.instantiated.append(value)


def _is_mode_call(call: cst.Call) -> bool:
    """`model.train()`, `model.train(True)`, `self.eval()`: not `trainer.train(dataset)`."""
    if not call.args:
        return True
    return (
        len(call.args) == 1
        and isinstance(call.args[0].value, cst.Name)
        and (call.args[0].value.value in ("True", "False", "mode"))
    )


def starts(name: str | None, prefixes: tuple[str, ...]) -> bool:
    return name is not None and name.startswith(prefixes)


def receiver(call: cst.Call) -> cst.BaseExpression:
    """`opt` in `opt.step()`."""
    return cst.ensure_type(call.func, cst.Attribute).value


def _bare_name(func: cst.BaseExpression) -> str | None:
    if isinstance(func, cst.Attribute):
        return func.attr.value
    if isinstance(func, cst.Name):
        return func.value
    return None


def _calls_local_function(call: cst.Call, qualified: str | None) -> bool:
    """`train(...)` or `self.train_epoch(...)`; not `model.train()` nor an imported name."""
    if isinstance(call.func, cst.Name):
        return qualified is None
    return isinstance(call.func, cst.Attribute) and _is_name(call.func.value, "self")


def _names_scheduler(expr: cst.BaseExpression) -> bool:
    """`scheduler`, `self.lr_sched`: a name that says it holds an LR schedule."""
    key = dotted_name(expr)
    return key is not None and "sched" in key.rsplit(".", 1)[-1].lower()


def wraps(value: cst.BaseExpression, key: str) -> bool:
    """`model = model.to(dev)`, `model = DDP(model)`, `opt = accelerator.prepare(opt)`."""
    if not isinstance(value, cst.Call):
        return False
    if isinstance(value.func, cst.Attribute) and dotted_name(value.func.value) == key:
        return True
    return any(dotted_name(arg.value) == key for arg in value.args)


def _is_name(node: cst.CSTNode, value: str) -> bool:
    return isinstance(node, cst.Name) and node.value == value


def _is_lr_subscript(target: cst.BaseExpression) -> bool:
    """`group["lr"]` / `group['lr']` (a single plain index, no slice)."""
    if not isinstance(target, cst.Subscript) or len(target.slice) != 1:
        return False
    index = target.slice[0].slice
    return (
        isinstance(index, cst.Index)
        and isinstance(index.value, cst.SimpleString)
        and index.value.value in ('"lr"', "'lr'")
    )


def _configures_clipping(call: cst.Call, bare: str | None) -> bool:
    """`Trainer(gradient_clip_val=1.0)`, `p.register_hook(lambda g: g.clamp(-1, 1))`."""
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value in tables.CLIP_CONFIG_KEYWORDS:
            if not _is_name(arg.value, "None") and not _is_zero(arg.value):
                return True
    if bare == "register_hook":
        names = [cst.ensure_type(n, cst.Name).value.lower() for n in findall(call, cst.Name)]
        return any("clamp" in n or "clip" in n for n in names)
    return False


def _is_zero(node: cst.CSTNode) -> bool:
    """The literal `0` (`gradient_clip_val=0` turns clipping off); `0.0` is not matched."""
    return isinstance(node, cst.Integer) and node.value == "0"


def _calls_in(expr: cst.BaseExpression, depth: int) -> Iterator[cst.Call]:
    """Calls in an expression: the call itself, its receivers and its arguments, a few
    levels deep (`scaler.scale(loss).backward()`, `Trainer(args=Args(max_grad_norm=1))`)."""
    if depth <= 0:
        return
    if isinstance(expr, cst.Call):
        yield expr
        yield from _calls_in(expr.func, depth - 1)
        for arg in expr.args:
            yield from _calls_in(arg.value, depth - 1)
    elif isinstance(expr, cst.Attribute):
        yield from _calls_in(expr.value, depth)
    elif isinstance(expr, (cst.Tuple, cst.List)):
        for element in expr.elements:
            yield from _calls_in(element.value, depth - 1)
    elif isinstance(expr, cst.Dict):
        for item in expr.elements:
            if isinstance(item, cst.DictElement):
                yield from _calls_in(item.value, depth - 1)
    elif isinstance(expr, (cst.Await, cst.UnaryOperation)):
        yield from _calls_in(expr.expression, depth)
    elif isinstance(expr, cst.BinaryOperation):
        yield from _calls_in(expr.left, depth - 1)
        yield from _calls_in(expr.right, depth - 1)


def _mentions_scheduler(node: cst.CSTNode) -> bool:
    return any(
        "schedul" in cst.ensure_type(s, cst.SimpleString).value
        for s in findall(node, cst.SimpleString)
    )


def mentions_epoch(loop: Loop) -> bool:
    header: list[cst.CSTNode] = (
        [loop.target, loop.iter] if isinstance(loop, cst.For) else [loop.test]
    )
    names = [n for part in header for n in findall(part, cst.Name)]
    return any("epoch" in cst.ensure_type(n, cst.Name).value.lower() for n in names)
