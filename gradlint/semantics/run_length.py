"""How long a training run lasts: how often the loops around an optimizer step repeat.

Counts come only from what the file itself says: `range(30)`, `range(1, EPOCHS + 1)` with a
module constant, `range(args.epochs)` with the `argparse` default, `cfg["epochs"]` from a dict
literal, a parameter's default, `while epoch < max_epochs`. Anything else (a data loader, a
value read from a YAML file) is unknown, `None`, and callers stay quiet on it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import libcst as cst

from gradlint.semantics.index import PerFile, TorchIndex
from gradlint.semantics.names import dotted_name
from gradlint.semantics.nodes import findall
from gradlint.semantics.training import TrainingFacts, TrainingStep
from gradlint.semantics.training_walk import Function, Loop

_WRAPPERS = frozenset({"tqdm", "trange", "enumerate", "list", "iter", "reversed"})
_MAX_HOPS = 4  # NAME -> OTHER_NAME -> ...: longer chains are unknown
# argparse options that ask for a learning-rate schedule (`--decay_epoch`, `--lr_milestones`)
_SCHEDULE_OPTION = re.compile(r"(decay|milestone|lr_step|step_size|schedul|warmup|lr_gamma)")


@dataclass(frozen=True)
class RunLength:
    """The loops around one optimizer step, with the count of each when the file says it."""

    counts: tuple[int | None, ...]  # outermost first, callers' loops included

    @property
    def epochs(self) -> int | None:
        """Passes of the outermost loop that holds another loop (epochs over batches)."""
        return self.counts[0] if len(self.counts) >= 2 else None

    @property
    def steps(self) -> int | None:
        """Optimizer steps, when every loop's count is known."""
        if not self.counts or any(count is None for count in self.counts):
            return None
        return math.prod(count for count in self.counts if count is not None)


def run_length(facts: TrainingFacts, step: TrainingStep) -> RunLength:
    loops = _loops_around(facts, step.function, frozenset()) + [
        (loop, step.function) for loop in step.loops
    ]
    return RunLength(tuple(loop_count(facts.index, loop, where) for loop, where in loops))


def _loops_around(
    facts: TrainingFacts, function: Function, seen: frozenset[str]
) -> list[tuple[Loop, Function]]:
    """The loops of the (first) caller chain that reaches `function`, outermost first."""
    if function is None or function.name.value in seen:
        return []
    for caller, loops in facts.walk.callers.get(function.name.value, []):
        outer = _loops_around(facts, caller, seen | {function.name.value})
        return outer + [(loop, caller) for loop in loops]
    return []


def loop_count(index: TorchIndex, loop: Loop, where: Function) -> int | None:
    if isinstance(loop, cst.While):
        test = loop.test
        if isinstance(test, cst.Comparison) and len(test.comparisons) == 1:
            target = test.comparisons[0]
            if isinstance(target.operator, (cst.LessThan, cst.LessThanEqual)):
                return resolve_int(index, target.comparator, where)
        return None
    iterable = loop.iter
    while isinstance(iterable, cst.Call) and _bare(iterable.func) in _WRAPPERS and iterable.args:
        if _bare(iterable.func) == "trange":
            break
        iterable = iterable.args[0].value
    if not isinstance(iterable, cst.Call) or _bare(iterable.func) not in ("range", "trange"):
        return None
    args = [a.value for a in iterable.args if a.keyword is None and a.star == ""]
    if not args or len(args) != len(iterable.args):
        return None
    values = [resolve_int(index, arg, where) for arg in args[:3]]
    if any(value is None for value in values):
        return None
    numbers = [v for v in values if v is not None]
    if len(numbers) == 1:
        return max(numbers[0], 0)
    start, stop, stride = numbers[0], numbers[1], numbers[2] if len(numbers) == 3 else 1
    return max(math.ceil((stop - start) / stride), 0) if stride > 0 else None


def resolve_int(
    index: TorchIndex, expr: cst.BaseExpression, where: Function, hops: int = 0
) -> int | None:
    """The integer value of `expr` when this file states it; None otherwise."""
    if hops > _MAX_HOPS:
        return None
    if isinstance(expr, cst.Integer):
        return int(expr.evaluated_value)
    if isinstance(expr, cst.Float) and float(expr.evaluated_value).is_integer():
        return int(expr.evaluated_value)  # `1e4`
    if isinstance(expr, cst.BinaryOperation):
        left = resolve_int(index, expr.left, where, hops + 1)
        right = resolve_int(index, expr.right, where, hops + 1)
        if left is None or right is None:
            return None
        operator = type(expr.operator)
        if operator is cst.Add:
            return left + right
        if operator is cst.Subtract:
            return left - right
        if operator is cst.Multiply:
            return left * right
        if operator is cst.FloorDivide and right:
            return left // right
        return None
    values = _definitions(index).get(_key(expr) or "", [])
    if isinstance(expr, cst.Name) and where is not None:
        local = _local_values(where, expr.value)
        if local is None:
            return None  # a parameter without a default: the caller decides
        values = local or values
    distinct = {resolve_int(index, value, None, hops + 1) for value in values}
    return distinct.pop() if len(distinct) == 1 else None


def unused_schedule_options(index: TorchIndex) -> list[str]:
    """`--decay_epoch`-style argparse options that nothing reads back (`args.decay_epoch`)."""
    text = index.source or ""
    unused = []
    for option in _argparse_options(index):
        if _SCHEDULE_OPTION.search(option) and not re.search(rf"\.{option}\b", text):
            unused.append(option)
    return unused


def _key(expr: cst.BaseExpression) -> str | None:
    """`EPOCHS`, `args.epochs` -> `.epochs`, `cfg["epochs"]` -> `["epochs"]`."""
    if isinstance(expr, cst.Name):
        return expr.value
    if isinstance(expr, cst.Attribute) and dotted_name(expr) is not None:
        return "." + expr.attr.value
    if isinstance(expr, cst.Subscript) and len(expr.slice) == 1:
        element = expr.slice[0].slice
        if isinstance(element, cst.Index) and isinstance(element.value, cst.SimpleString):
            return f'["{element.value.evaluated_value!s}"]'
    return None


def _definitions(index: TorchIndex) -> dict[str, list[cst.BaseExpression]]:
    """Every place the file gives a countable name its value, by `_key`, built once."""
    found = _DEFINITIONS.get(index)
    if found is not None:
        return found
    found = {}
    for statement in index.module.body:  # module-level constants
        if isinstance(statement, cst.SimpleStatementLine):
            for small in statement.body:
                if isinstance(small, cst.Assign) and len(small.targets) == 1:
                    target = small.targets[0].target
                    if isinstance(target, cst.Name):
                        found.setdefault(target.value, []).append(small.value)
    if "add_argument" in (index.source or "") or "{" in (index.source or ""):
        for node in findall(index.module, (cst.Call, cst.Dict)):
            if isinstance(node, cst.Call) and _bare(node.func) == "add_argument":
                dest, default = _argparse_default(node)
                if dest is not None and default is not None:
                    found.setdefault("." + dest, []).append(default)
            elif isinstance(node, cst.Dict):
                for element in node.elements:
                    if isinstance(element, cst.DictElement) and isinstance(
                        element.key, cst.SimpleString
                    ):
                        key = f'["{element.key.evaluated_value!s}"]'
                        found.setdefault(key, []).append(element.value)
                        found.setdefault("." + str(element.key.evaluated_value), []).append(
                            element.value
                        )
    _DEFINITIONS[index] = found
    return found


_DEFINITIONS: PerFile[dict[str, list[cst.BaseExpression]]] = PerFile("run_length.definitions")


def _argparse_options(index: TorchIndex) -> list[str]:
    if "add_argument" not in (index.source or ""):
        return []
    options = []
    for node in findall(index.module, cst.Call):
        if isinstance(node, cst.Call) and _bare(node.func) == "add_argument":
            dest, _ = _argparse_default(node)
            if dest is not None:
                options.append(dest)
    return options


def _argparse_default(call: cst.Call) -> tuple[str | None, cst.BaseExpression | None]:
    names = [
        str(a.value.evaluated_value)
        for a in call.args
        if a.keyword is None and isinstance(a.value, cst.SimpleString)
    ]
    keywords = {a.keyword.value: a.value for a in call.args if a.keyword is not None}
    dest_node = keywords.get("dest")
    if isinstance(dest_node, cst.SimpleString):
        dest: str | None = str(dest_node.evaluated_value)
    else:
        long = [n for n in names if n.startswith("--")] or names
        dest = long[0].lstrip("-").replace("-", "_") if long else None
    return dest, keywords.get("default")


def _local_values(function: cst.FunctionDef, name: str) -> list[cst.BaseExpression] | None:
    """What `name` holds inside the function: its parameter default, or its assignments;
    None for a parameter without a default."""
    for param in (*function.params.params, *function.params.kwonly_params):
        if param.name.value == name:
            return [param.default] if param.default is not None else None
    values = []
    for node in findall(function.body, cst.Assign):
        if isinstance(node, cst.Assign):
            for target in node.targets:
                if isinstance(target.target, cst.Name) and target.target.value == name:
                    values.append(node.value)
    return values


def _bare(func: cst.BaseExpression) -> str | None:
    if isinstance(func, cst.Name):
        return func.value
    if isinstance(func, cst.Attribute):
        return func.attr.value
    return None
