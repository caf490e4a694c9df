"""Import-alias resolution: which qualified name does a spelling in this file refer to?

Computed once per file from its import statements. This is all PyTorch code needs: torch names
reach a file through imports, so `nn.Linear`, `tnn.Linear` and a bare `Linear` resolve to
`torch.nn.Linear` when the imports say so, and an unrelated `Linear` stays unresolved.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from itertools import chain

import libcst as cst

from gradlint.semantics.nodes import findall

# Deprecated or internal spellings that mean the same thing as a public name.
_CANONICAL_PREFIXES = {
    "pytorch_lightning": "lightning.pytorch",
    "lightning.LightningModule": "lightning.pytorch.LightningModule",
    "torch.nn.modules.activation": "torch.nn",
    "torch.nn.modules.linear": "torch.nn",
    "torch.nn.modules.conv": "torch.nn",
    "torch.nn.modules.batchnorm": "torch.nn",
    "torch.nn.modules.normalization": "torch.nn",
    "torch.nn.modules.rnn": "torch.nn",
    "torch.nn.modules.container": "torch.nn",
    "torch.nn.modules.module": "torch.nn",
    "torch.nn.modules.sparse": "torch.nn",
    "torch.nn.modules": "torch.nn",
}


# What `nn.Linear`, `F.relu`, `torch.zeros` and `optim.SGD` mean in a file that never binds them.
CONVENTIONAL = {
    "torch": "torch",
    "nn": "torch.nn",
    "F": "torch.nn.functional",
    "optim": "torch.optim",
}


def canonical(name: str) -> str:
    for prefix, replacement in _CANONICAL_PREFIXES.items():
        if name == prefix or name.startswith(prefix + "."):
            return replacement + name[len(prefix) :]
    return name


def dotted_name(node: cst.BaseExpression) -> str | None:
    """`a.b.c` as text, or None when the expression is not a plain dotted name."""
    parts: list[str] = []
    while type(node) is cst.Attribute:
        parts.append(node.attr.value)
        node = node.value
    if type(node) is not cst.Name:
        return None
    if not parts:
        return node.value
    parts.append(node.value)
    parts.reverse()
    return ".".join(parts)


def _module_text(node: cst.BaseExpression | None) -> str:
    return dotted_name(node) or "" if node is not None else ""


class ImportMap:
    """Local name -> qualified name, from every import statement in the file."""

    def __init__(self, module: cst.Module, source: str | None = None) -> None:
        self.aliases: dict[str, str] = {}
        self._resolved: dict[str, str | None] = {}  # spelling -> qualified name
        self._collect(module.body)
        if source is not None:
            self._assume_conventions(module, source)

    def _assume_conventions(self, module: cst.Module, source: str) -> None:
        """Snippets and notebook cells use `nn`, `F`, `torch`, `optim` without importing them
        (an earlier cell or the reader's session did): give each the name every PyTorch user
        means by it, unless the file binds it to something else."""
        missing = {
            name
            for name in CONVENTIONAL
            if name not in self.aliases and re.search(rf"\b{name}\.", source)
        }
        if not missing:
            return  # the common case: everything used is imported
        used = {
            node.value.value
            for node in findall(module, cst.Attribute)
            if isinstance(node, cst.Attribute) and type(node.value) is cst.Name
        }
        missing &= used
        if missing:
            for name in missing - bound_names(module):
                self.aliases[name] = CONVENTIONAL[name]

    def _collect(self, statements: Sequence[cst.CSTNode]) -> None:
        # in source order (a later import of a name wins), with an explicit stack: each
        # `elif` nests the rest of its chain, and chains of a thousand branches exist
        stack: list[Iterator[cst.CSTNode]] = [iter(statements)]
        while stack:
            statement = next(stack[-1], None)
            if statement is None:
                stack.pop()
            elif isinstance(statement, cst.SimpleStatementLine):
                stack.append(iter(statement.body))
            elif isinstance(statement, cst.Import):
                self._add_import(statement)
            elif isinstance(statement, cst.ImportFrom):
                self._add_import_from(statement)
            elif isinstance(statement, cst.BaseCompoundStatement):
                # if/try/with/def/class bodies: scripts import inside main() and try blocks
                stack.append(chain.from_iterable(child_blocks(statement)))

    def _add_import(self, node: cst.Import) -> None:
        for alias in node.names:
            full = _module_text(alias.name)
            if alias.asname is not None:
                local = _module_text(alias.asname.name)
                self.aliases[local] = full
            else:
                head = full.split(".")[0]
                self.aliases.setdefault(head, head)

    def _add_import_from(self, node: cst.ImportFrom) -> None:
        if isinstance(node.names, cst.ImportStar):
            return  # star imports: names unknowable, stay quiet
        base = "." * len(node.relative) + _module_text(node.module)
        for alias in node.names:
            imported = _module_text(alias.name)
            local = _module_text(alias.asname.name) if alias.asname is not None else imported
            joined = f"{base}.{imported}" if not base.endswith(".") else base + imported
            self.aliases[local] = joined

    def resolve(self, node: cst.BaseExpression) -> str | None:
        """The qualified name `node` refers to, or None when it is not an imported name."""
        text = node.value if type(node) is cst.Name else dotted_name(node)
        if text is None:
            return None
        try:
            return self._resolved[text]
        except KeyError:
            pass
        head, _, rest = text.partition(".")
        target = self.aliases.get(head)
        if target is not None:
            target = canonical(f"{target}.{rest}" if rest else target)
        self._resolved[text] = target
        return target


_BINDERS = (
    cst.AssignTarget,
    cst.AnnAssign,
    cst.AugAssign,
    cst.For,
    cst.CompFor,
    cst.AsName,
    cst.NamedExpr,
    cst.Param,
    cst.FunctionDef,
    cst.ClassDef,
    cst.Global,
    cst.Nonlocal,
)


def bound_names(module: cst.Module) -> set[str]:
    """Every name the file binds anywhere (assignments, loops, parameters, `as`, defs)."""
    found: set[str] = set()
    for node in findall(module, _BINDERS):
        if isinstance(node, (cst.Global, cst.Nonlocal)):
            found.update(item.name.value for item in node.names)
            continue
        if isinstance(node, (cst.Param, cst.FunctionDef, cst.ClassDef)):
            found.add(node.name.value)
        elif isinstance(node, cst.AsName):
            found.update(_names_in_target(node.name))
        else:
            found.update(_names_in_target(getattr(node, "target", cst.Ellipsis())))
    return found


def _names_in_target(node: cst.BaseExpression) -> list[str]:
    if isinstance(node, cst.Name):
        return [node.value]
    if isinstance(node, (cst.Tuple, cst.List)):
        return [name for element in node.elements for name in _names_in_target(element.value)]
    if isinstance(node, cst.StarredElement):
        return _names_in_target(node.value)
    return []  # attributes and subscripts bind no name


def child_blocks(statement: cst.CSTNode) -> Iterator[Sequence[cst.CSTNode]]:
    """The statement lists directly inside a compound statement (elif/else/except included)."""
    parts: list[object] = [getattr(statement, "body", None)]
    parts += [getattr(statement, "orelse", None), getattr(statement, "finalbody", None)]
    parts += [handler for handler in getattr(statement, "handlers", ())]
    for part in parts:
        if part is None:
            continue
        if isinstance(part, cst.If):  # an elif chain is a nested If
            yield [part]
            continue
        block = getattr(part, "body", part)
        if isinstance(block, (cst.IndentedBlock, cst.SimpleStatementSuite)):
            yield block.body
        elif isinstance(block, (list, tuple)):
            yield block
