"""Whether the parameters an optimizer holds are still those of the model it should train.

An optimizer copies the parameters it is given into its `param_groups` when it is built. A
layer put on the model afterwards (`model.fc = nn.Linear(512, 10)`) is missing from that list,
and an optimizer built over the wrong model of a pair (`optimizer_G = Adam(netD.parameters())`)
never reaches the other one. Order is read inside one function (or the module level) only;
whatever runs in another function, or in an `if`/`else` branch beside the optimizer, is
unknowable and stays unreported.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import libcst as cst

from gradlint.semantics.names import child_blocks, dotted_name
from gradlint.semantics.nodes import findall
from gradlint.semantics.recurrent import unwrap
from gradlint.semantics.registration import layer_kind
from gradlint.semantics.syntax import bare_name
from gradlint.semantics.training import OptimizerCall, TrainingFacts, parameters_calls
from gradlint.semantics.training_walk import Function, receiver, wraps

# words that make a name an optimizer's or a model's and say nothing of its role in a pair
_OPTIMIZER_WORDS = frozenset(
    {"optimizer", "optimiser", "optimizers", "optim", "optm", "opt", "opts", "solver", "trainer"}
)
_MODEL_WORDS = frozenset({"net", "model", "network", "self"})
_LOSS_WORDS = frozenset({"loss", "losses", "err", "error", "l", "total", "self"})
_ROLE_SYNONYMS = {
    "g": "g",
    "gen": "g",
    "generator": "g",
    "d": "d",
    "dis": "d",
    "disc": "d",
    "discriminator": "d",
    "critic": "d",
}
_OPTIMIZER_CALLS = frozenset({"sgd", "adam", "adamw", "rmsprop", "lbfgs", "adagrad"})
_PARAMETER_METHODS = frozenset({"parameters", "named_parameters", "requires_grad_"})
_TOKENS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


@dataclass(frozen=True)
class UnupdatedParameters:
    """An optimizer that never updates `missed`, and why."""

    node: cst.CSTNode  # where to report: the replacing assignment or the optimizer's build
    optimizer: str
    missed: str  # `model.fc`, `netG`
    reason: str


@dataclass(frozen=True)
class _Entry:
    """A statement of one function in source order, with the statement lists around it."""

    node: cst.CSTNode  # a small statement, a compound statement's header, or a nested def
    blocks: tuple[object, ...]


def unupdated_parameters(facts: TrainingFacts) -> list[UnupdatedParameters]:
    """Optimizers built before a layer of their model is replaced, and optimizers built over
    the other model of a named pair (`optimizer_G` over `netD`)."""
    built = _constructions(facts)
    found: list[UnupdatedParameters] = []
    for function in dict.fromkeys(b[2] for b in built):  # source order, each once
        if _is_module_init(facts, function):
            continue  # building the model's own layers, not replacing them
        entries = _entries(_body(facts, function))
        for key, call, where in built:
            if where is function:
                found += _replaced_after(facts, entries, key, call)
    found += _swapped_pairs(facts, built)
    return found


# -- (a) a layer replaced after the optimizer was built -------------------------------------------


def _replaced_after(
    facts: TrainingFacts, entries: list[_Entry], key: str, built: OptimizerCall
) -> list[UnupdatedParameters]:
    start = next((i for i, e in enumerate(entries) if _holds(e.node, built.call)), None)
    if start is None:
        return []
    owners = _owners(entries[:start], built)
    if not owners:
        return []  # `Adam(params)`, `get_params(model)`: what it holds is unknown
    code = facts.index.module.code_for_node
    for i in range(start + 1, len(entries)):
        entry = entries[i]
        replaced = _replacement(facts, entry.node)
        if replaced is None or "." not in replaced[1] and "[" not in replaced[1]:
            if _rebinds(entry.node, [key, *owners]):
                return []  # `model = resnet18()`, `from torch import optim`: another object
            continue
        target, text = replaced
        base = _base_name(target)
        owner = next((o for o in owners if base == o or base.startswith(o + ".")), None)
        if owner is None:
            continue  # another model's layer
        if not _ordered(entries[start], entry):
            continue  # beside the optimizer in another branch: the order is unknowable
        later = entries[i + 1 :]
        if _rebuilt_or_extended(later, key) or _touches_new_parameters(later, text, code):
            continue  # rebuilt, `add_param_group(...)`, frozen or given its own optimizer
        if not (key.startswith("self.") or _mentioned(later, key) or _global_use(facts, key)):
            continue  # the stale optimizer is never used after the replacement
        params = code(built.params) if built.params is not None else owner
        reason = f"it was built over `{_short(params)}` before `{text}` was replaced"
        return [UnupdatedParameters(entry.node, key, text, reason)]
    return []


def _replacement(facts: TrainingFacts, node: cst.CSTNode) -> tuple[cst.BaseExpression, str] | None:
    """(target, its text) for `model.fc = nn.Linear(...)`, `m.classifier[6] = Linear(...)` or
    `model.scale = nn.Parameter(...)`: a new parameter object the optimizer never saw."""
    if not isinstance(node, cst.Assign) or len(node.targets) != 1:
        return None
    target = node.targets[0].target
    if not isinstance(target, (cst.Attribute, cst.Subscript)) or _base_name(target) == "":
        return None
    if layer_kind(facts.index, unwrap(node.value)) not in ("layers", "parameters"):
        return None  # `nn.Identity()`, `nn.Dropout()`, a value of unknown kind: nothing lost
    return target, facts.index.module.code_for_node(target)


def _base_name(target: cst.BaseExpression) -> str:
    """`model.classifier` for `model.classifier[6]`; "" when not rooted on a plain name."""
    while isinstance(target, cst.Subscript):
        target = target.value
    return dotted_name(target) or ""


def _owners(before: list[_Entry], built: OptimizerCall) -> list[str]:
    """Models whose `parameters()` the optimizer holds; follows `params = model.parameters()`
    written earlier in the same function."""
    if built.params is None:
        return []
    params: cst.BaseExpression = built.params
    alias = dotted_name(params)
    if alias is not None:
        values = [
            e.node.value
            for e in before
            if isinstance(e.node, cst.Assign)
            and any(dotted_name(t.target) == alias for t in e.node.targets)
        ]
        if len(values) != 1:
            return []  # never assigned here, or rebuilt along the way
        params = values[0]
    owners = [dotted_name(receiver(call)) for call in parameters_calls(params)]
    return [o for o in owners if o is not None]


def _ordered(first: _Entry, then: _Entry) -> bool:
    """`then` (later in the source) runs after `first` whenever both run: one statement list
    holds the other, so neither sits in an `else` of the other's `if`."""
    short, long = sorted((first.blocks, then.blocks), key=len)
    return all(a is b for a, b in zip(short, long))


def _rebinds(node: cst.CSTNode, names: list[str]) -> bool:
    """`model = Net()` for `model` or `model.fc`, an import binding one of the names; not
    `model = model.to(device)` nor `model = nn.DataParallel(model)` (the same parameters)."""
    if isinstance(node, (cst.Import, cst.ImportFrom)):
        return any(n in _imported_names(node) for n in names)
    if not isinstance(node, cst.Assign):
        return False
    for target in node.targets:
        key = dotted_name(target.target)
        if key is None or wraps(node.value, key):
            continue
        if any(n == key or n.startswith(key + ".") for n in names):
            return True
    return False


def _imported_names(node: cst.Import | cst.ImportFrom) -> set[str]:
    if isinstance(node.names, cst.ImportStar):
        return set()
    bound = [alias.asname.name if alias.asname else alias.name for alias in node.names]
    return {dotted_name(b) or "" for b in bound if isinstance(b, (cst.Name, cst.Attribute))}


def _rebuilt_or_extended(later: list[_Entry], key: str) -> bool:
    for entry in later:
        if isinstance(entry.node, (cst.Assign, cst.AnnAssign)):
            targets = (
                [t.target for t in entry.node.targets]
                if isinstance(entry.node, cst.Assign)
                else [entry.node.target]
            )
            if any(dotted_name(t) == key for t in targets):
                return True
        for call in findall(entry.node, cst.Call):
            func = cst.ensure_type(call, cst.Call).func
            if (
                isinstance(func, cst.Attribute)
                and func.attr.value == "add_param_group"
                and dotted_name(func.value) == key
            ):
                return True
    return False


def _touches_new_parameters(
    later: list[_Entry], text: str, code: Callable[[cst.CSTNode], str]
) -> bool:
    """`model.fc.parameters()`, `model.fc.requires_grad_(False)` or `LBFGS([model.scale])`
    after the replacement: the new layer is frozen, handed to an optimizer or a param group,
    or otherwise dealt with."""
    for entry in later:
        for call in findall(entry.node, cst.Call):
            call = cst.ensure_type(call, cst.Call)
            func = call.func
            if isinstance(func, cst.Attribute) and func.attr.value in _PARAMETER_METHODS:
                owner = code(func.value)
                if owner == text or owner.startswith((text + ".", text + "[")):
                    return True
            callee = (bare_name(func) or "").lower()
            direct = "freeze" in callee or "optim" in callee or callee in _OPTIMIZER_CALLS
            for arg in call.args:
                items = arg.value.elements if isinstance(arg.value, (cst.List, cst.Tuple)) else []
                values = [item.value for item in items] + ([arg.value] if direct else [])
                if any(code(value) == text for value in values):
                    return True  # `Adam([model.scale])`, `freeze(model.fc)`; not `print(...)`
    return False


def _mentioned(later: list[_Entry], key: str) -> bool:
    for entry in later:
        for node in findall(entry.node, (cst.Name, cst.Attribute)):
            if isinstance(node, (cst.Name, cst.Attribute)) and dotted_name(node) == key:
                return True
    return False


def _global_use(facts: TrainingFacts, key: str) -> bool:
    """A module-level optimizer named inside some function (a `train()` called later)."""
    if "." in key:
        return False
    for function in facts.walk.events:
        if function is not None and any(
            isinstance(n, cst.Name) and n.value == key for n in findall(function.body, cst.Name)
        ):
            return True
    return False


# -- (b) an optimizer over the other model of a named pair ----------------------------------------


def _swapped_pairs(
    facts: TrainingFacts, built: list[tuple[str, OptimizerCall, Function]]
) -> list[UnupdatedParameters]:
    """`optimizer_G = Adam(netD.parameters())` beside `optimizer_D = Adam(netD.parameters())`,
    while `netG` exists and no optimizer of the same function (or class) holds it."""
    scopes: dict[object, list[tuple[str, OptimizerCall, Function]]] = {}
    for key, call, function in built:
        cls = facts.walk.owner.get(function) if function is not None else None
        scope = cls if key.startswith("self.") and cls is not None else function
        scopes.setdefault(scope, []).append((key, call, function))
    found: list[UnupdatedParameters] = []
    for members in scopes.values():
        found += _swapped_in(facts, members)
    return found


def _swapped_in(
    facts: TrainingFacts, built: list[tuple[str, OptimizerCall, Function]]
) -> list[UnupdatedParameters]:
    single: list[tuple[str, OptimizerCall, str]] = []
    held_roles: set[str] = set()
    for key, call, _ in built:
        owners = [dotted_name(receiver(c)) for c in parameters_calls(call.params or cst.Tuple([]))]
        held_roles |= {_role(o, _MODEL_WORDS) for o in owners if o is not None}
        if len(owners) == 1 and owners[0] is not None and _is_optimizer_name(key):
            single.append((key, call, owners[0]))
    names = _model_names(facts, {function for _, _, function in built})
    found: list[UnupdatedParameters] = []
    reported: set[str] = set()
    for key, call, owner in single:
        wanted, holds = _role(key, _OPTIMIZER_WORDS), _role(owner, _MODEL_WORDS)
        if not wanted or not holds or wanted == holds or key in reported:
            continue  # no role in a name, or the roles agree
        if wanted in held_roles:
            # every model has an optimizer: only a step after the wanted model's own loss
            # (`g_loss.backward(); g_optimizer.step()` over D) says the names are swapped
            loss = _stepped_loss(facts, key, wanted, holds)
            if loss is not None:
                # one finding per swapped pair: the other half is the same mistake
                reported |= {k for k, _, o in single if _role(o, _MODEL_WORDS) == wanted}
                reported.add(key)
                reason = f"it was built over `{owner}.parameters()` yet steps `{loss}.backward()`"
                found.append(UnupdatedParameters(call.call, key, _model_of(names, wanted), reason))
            continue
        partner = next(
            (
                k
                for k, _, o in single
                if k != key and o == owner and _role(k, _OPTIMIZER_WORDS) == holds
            ),
            None,
        )
        missed = next((n for n in sorted(names) if _role(n, _MODEL_WORDS) == wanted), None)
        if partner is None or missed is None:
            continue  # no optimizer named for this model, or no model named for this one
        reported.add(key)
        reason = f"it was built over `{owner}.parameters()`, which `{partner}` already updates"
        found.append(UnupdatedParameters(call.call, key, missed, reason))
    return found


def _stepped_loss(facts: TrainingFacts, key: str, role: str, other: str) -> str | None:
    """`optimizer_G.step()` right after `loss_G.backward()` / `errG.backward()` /
    `generator_adv_loss.backward()` somewhere: a loss named for `role`, not for `other`."""
    for step in facts.steps:
        if dotted_name(step.optimizer) != key:
            continue
        loss = (
            dotted_name(receiver(step.backward))
            if isinstance(step.backward.func, cst.Attribute)
            else None
        )
        words = set(_role(loss, _LOSS_WORDS).split("_")) if loss is not None else set()
        if role in words and other not in words:
            return loss
    return None


def _model_of(names: set[str], role: str) -> str:
    return next((n for n in sorted(names) if _role(n, _MODEL_WORDS) == role), role.upper())


def _role(name: str, noise: frozenset[str]) -> str:
    """`g` for optimizer_G, g_optimizer, optimizerG, netG, generator; `d_b` for D_B."""
    last = name.rsplit(".", 1)[-1]
    words = [w.lower() for w in _TOKENS.findall(last)]
    kept = [_ROLE_SYNONYMS.get(w, w) for w in words if w not in noise]
    return "_".join(kept)


def _is_optimizer_name(key: str) -> bool:
    words = {w.lower() for w in _TOKENS.findall(key.rsplit(".", 1)[-1])}
    return bool(words & _OPTIMIZER_WORDS)


def _model_names(facts: TrainingFacts, functions: set[Function]) -> set[str]:
    """Names of models the optimizers' functions (and the module level) can see: assigned
    there or taken as arguments; optimizer and scheduler names left out."""
    names = {
        key
        for key, pairs in facts.walk.assignments.items()
        if any(where is None or where in functions for _, where in pairs)
    }
    for function in functions:
        if function is not None:
            names |= {p.name.value for p in function.params.params}
    return {n for n in names if not _is_optimizer_name(n) and "sched" not in n.lower()}


# -- statements in order --------------------------------------------------------------------------


def _constructions(facts: TrainingFacts) -> list[tuple[str, OptimizerCall, Function]]:
    """(target, construction, function) for every `opt = torch.optim.X(...)` in the file."""
    found: list[tuple[str, OptimizerCall, Function]] = []
    for key, pairs in facts.walk.assignments.items():
        for value, function in pairs:
            built = facts.construction(value, function)
            if built is not None:
                found.append((key, built, function))
    return found


def _is_module_init(facts: TrainingFacts, function: Function) -> bool:
    return (
        function is not None
        and function.name.value == "__init__"
        and facts.walk.owner.get(function) in facts.index.module_classes
    )


def _body(facts: TrainingFacts, function: Function) -> Sequence[cst.CSTNode]:
    if function is None:
        return facts.index.module.body
    return next(child_blocks(function), [])


def _entries(statements: Sequence[cst.CSTNode]) -> list[_Entry]:
    out: list[_Entry] = []
    _collect(statements, (), out)
    return out


def _collect(
    statements: Sequence[cst.CSTNode], blocks: tuple[object, ...], out: list[_Entry]
) -> None:
    for statement in statements:
        if isinstance(statement, cst.SimpleStatementLine):
            out += [_Entry(small, blocks) for small in statement.body]
        elif isinstance(statement, cst.BaseSmallStatement):
            out.append(_Entry(statement, blocks))
        elif isinstance(statement, (cst.FunctionDef, cst.ClassDef)):
            out.append(_Entry(statement, blocks))  # its own scope; searched as a whole
        elif isinstance(statement, cst.With):
            out += [_Entry(item.item, blocks) for item in statement.items]
            for block in child_blocks(statement):
                _collect(block, blocks, out)  # a `with` body always runs
        elif isinstance(statement, cst.BaseCompoundStatement):
            out += [_Entry(header, blocks) for header in _headers(statement)]
            for block in child_blocks(statement):
                _collect(block, (*blocks, block), out)


def _headers(statement: cst.BaseCompoundStatement) -> Iterator[cst.BaseExpression]:
    if isinstance(statement, (cst.If, cst.While)):
        yield statement.test
    elif isinstance(statement, cst.For):
        yield statement.iter


def _holds(node: cst.CSTNode, call: cst.Call) -> bool:
    return isinstance(node, (cst.Assign, cst.AnnAssign)) and node.value is call


def _short(text: str) -> str:
    """One line, at most 60 characters, of a parameters expression."""
    line = " ".join(text.split())
    return line if len(line) <= 60 else line[:57] + "..."
