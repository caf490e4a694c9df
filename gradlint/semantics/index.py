"""Per-file PyTorch facts that several rules need, built once and lazily."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from itertools import chain
from typing import Any, Generic, TypeVar

import libcst as cst

from gradlint.semantics import tables
from gradlint.semantics.names import ImportMap, child_blocks, dotted_name


@dataclass
class ModuleClass:
    """An `nn.Module` subclass defined in this file."""

    name: str
    node: cst.ClassDef
    # `self.<attr> = <value>` in __init__, in source order
    attrs: dict[str, cst.BaseExpression] = field(default_factory=dict)
    methods: dict[str, cst.FunctionDef] = field(default_factory=dict)

    @property
    def forward(self) -> cst.FunctionDef | None:
        return self.methods.get("forward")


V = TypeVar("V")


class PerFile(Generic[V]):
    """A cache slot kept on each file's TorchIndex, so that it dies with the file's tree.

    (A WeakKeyDictionary keyed by the index would leak: the cached facts refer back to it.)
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def get(self, index: TorchIndex) -> V | None:
        value: V | None = index.memo.get(self.name)
        return value

    def __setitem__(self, index: TorchIndex, value: V) -> None:
        index.memo[self.name] = value

    def setdefault(self, index: TorchIndex, default: V) -> V:
        value: V = index.memo.setdefault(self.name, default)
        return value


class TorchIndex:
    """Facts about one file: its imports, its nn.Module classes, its functions."""

    def __init__(self, module: cst.Module, source: str | None = None) -> None:
        self.module = module
        # the file's text, for cheap "could this file contain X at all" checks
        self.source = source if source is not None else module.code
        self.memo: dict[str, Any] = {}  # per-file facts other modules build lazily (PerFile)
        self.names = ImportMap(module, self.source)

    def qualified(self, node: cst.BaseExpression) -> str | None:
        """The qualified name an expression refers to (`nn.Linear` -> `torch.nn.Linear`)."""
        return self.names.resolve(node)

    def call_name(self, node: cst.CSTNode) -> str | None:
        """Qualified name of the callee when `node` is a call, else None."""
        if isinstance(node, cst.Call):
            return self.qualified(node.func)
        return None

    @cached_property
    def has_torch(self) -> bool:
        return any(
            target == "torch" or target.startswith(("torch.", "lightning"))
            for target in self.names.aliases.values()
        )

    @cached_property
    def classes(self) -> dict[str, cst.ClassDef]:
        """Every class defined anywhere in the file, by name."""
        found: dict[str, cst.ClassDef] = {}
        for statement in walk_statements(self.module.body):
            if isinstance(statement, cst.ClassDef):
                found.setdefault(statement.name.value, statement)
        return found

    @cached_property
    def functions(self) -> dict[str, cst.FunctionDef]:
        """Every function or method defined in the file, by bare name (first wins)."""
        found: dict[str, cst.FunctionDef] = {}
        for statement in walk_statements(self.module.body):
            if isinstance(statement, cst.FunctionDef):
                found.setdefault(statement.name.value, statement)
        return found

    @cached_property
    def module_classes(self) -> dict[str, ModuleClass]:
        """nn.Module subclasses, including subclasses of local nn.Module subclasses."""
        result: dict[str, ModuleClass] = {}
        changed = True
        while changed:  # local inheritance chains resolve in a few rounds
            changed = False
            for name, node in self.classes.items():
                if name in result:
                    continue
                if any(self._is_module_base(base.value, result) for base in node.bases):
                    result[name] = _describe_class(node)
                    changed = True
        return result

    def _is_module_base(self, base: cst.BaseExpression, known: dict[str, ModuleClass]) -> bool:
        qualified = self.qualified(base)
        if qualified is not None:
            return qualified in tables.MODULE_BASES
        text = dotted_name(base)
        return text is not None and text in known


def _describe_class(node: cst.ClassDef) -> ModuleClass:
    info = ModuleClass(name=node.name.value, node=node)
    for statement in node.body.body:
        if isinstance(statement, cst.FunctionDef):
            info.methods.setdefault(statement.name.value, statement)
    init = info.methods.get("__init__")
    if init is not None:
        for line in walk_statements(init.body.body):
            for target, value in _self_assignments(line):
                info.attrs.setdefault(target, value)
    return info


def _self_assignments(statement: cst.CSTNode) -> list[tuple[str, cst.BaseExpression]]:
    """`self.x = value` / `self.x: T = value` pairs in one simple statement line."""
    pairs: list[tuple[str, cst.BaseExpression]] = []
    if not isinstance(statement, cst.SimpleStatementLine):
        return pairs
    for small in statement.body:
        targets: list[cst.BaseExpression] = []
        value: cst.BaseExpression | None = None
        if isinstance(small, cst.Assign):
            targets = [t.target for t in small.targets]
            value = small.value
        elif isinstance(small, cst.AnnAssign) and small.value is not None:
            targets = [small.target]
            value = small.value
        for target in targets:
            attr = self_attribute(target)
            if attr is not None and value is not None:
                pairs.append((attr, value))
            elif (  # `self.a, self.b = nn.Linear(...), nn.Linear(...)`
                isinstance(target, (cst.Tuple, cst.List))
                and isinstance(value, (cst.Tuple, cst.List))
                and len(target.elements) == len(value.elements)
            ):
                for left, right in zip(target.elements, value.elements):
                    name = self_attribute(left.value)
                    if name is not None and not isinstance(left, cst.StarredElement):
                        pairs.append((name, right.value))
    return pairs


def self_attribute(node: cst.CSTNode) -> str | None:
    """`x` for the expression `self.x`, else None."""
    if (
        isinstance(node, cst.Attribute)
        and isinstance(node.value, cst.Name)
        and node.value.value == "self"
    ):
        return node.attr.value
    return None


def walk_statements(statements: Sequence[cst.CSTNode]) -> list[cst.CSTNode]:
    """All statements, depth first in source order, descending into compound bodies."""
    out: list[cst.CSTNode] = []
    stack: list[Iterator[cst.CSTNode]] = [iter(statements)]
    while stack:  # iterative: an `elif` chain nests one level per branch
        statement = next(stack[-1], None)
        if statement is None:
            stack.pop()
            continue
        out.append(statement)
        if isinstance(statement, cst.BaseCompoundStatement):
            stack.append(chain.from_iterable(child_blocks(statement)))
    return out
