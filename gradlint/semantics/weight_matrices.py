"""Tensors used as weight matrices: a module's own `self.<attr>` parameters that its methods
multiply with (`F.linear(x, self.W)`, `x @ self.W`), and the raw tensors of from-scratch models
(`W1 = torch.randn(784, 256, requires_grad=True)` ... `x @ W1`) in scripts, notebooks and
helper functions, with how each was built and whether another one consumes its product."""

from __future__ import annotations

import re
from dataclasses import dataclass

import libcst as cst

from gradlint.semantics import tables
from gradlint.semantics.index import ModuleClass, PerFile, TorchIndex, self_attribute
from gradlint.semantics.init_draws import argument, keep_values, number
from gradlint.semantics.nodes import find, findall, walk_visitor

# -- nn.Parameter tensors of a module used as weight matrices ---------------------------------

_MATRIX_FUNCTIONS = frozenset(
    {
        "linear",
        "conv1d",
        "conv2d",
        "conv3d",
        "conv_transpose1d",
        "conv_transpose2d",
        "matmul",
        "mm",
        "bmm",
        "bilinear",
        "einsum",
    }
)
_TRANSPOSES = frozenset({"t", "transpose", "permute", "T", "mT", "view", "reshape"})


def matrix_operands(info: ModuleClass) -> set[str]:
    """`self.<attr>` used as a weight matrix (F.linear/conv, matmul, `@`) outside __init__."""
    use = _MatrixUse()
    for name, method in info.methods.items():
        if name != "__init__":
            walk_visitor(method, use)
    return use.attrs


class _MatrixUse(cst.CSTVisitor):
    def __init__(self) -> None:
        self.attrs: set[str] = set()

    def add(self, node: cst.BaseExpression) -> None:
        while True:  # `self.w.t()`, `self.w.T`, `self.w.view(...)` are the same matrix
            if (
                isinstance(node, cst.Call)
                and isinstance(node.func, cst.Attribute)
                and node.func.attr.value in _TRANSPOSES
            ):
                node = node.func.value
            elif isinstance(node, cst.Attribute) and node.attr.value in _TRANSPOSES:
                node = node.value
            else:
                break
        attr = self_attribute(node)
        if attr is not None:
            self.attrs.add(attr)

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        name = func.attr.value if isinstance(func, cst.Attribute) else getattr(func, "value", None)
        if name in _MATRIX_FUNCTIONS:
            for arg in node.args:
                self.add(arg.value)

    def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
        if isinstance(node.operator, cst.MatrixMultiply):
            self.add(node.left)
            self.add(node.right)


# -- raw tensors of from-scratch models -------------------------------------------------------

# Cheap gate: a file without a matrix product and a trainable tensor holds no raw weights.
_PRODUCT = re.compile(r"@|\bmm\(|matmul\(|linear\(")
_TRAINABLE = re.compile(r"requires_grad|Parameter\(")
_PRODUCT_CALLS = frozenset({"mm", "matmul", "linear"})


@dataclass(frozen=True)
class RawWeight:
    """`W1 = torch.randn(n_in, n_hidden, requires_grad=True)`, later used in `x @ W1`."""

    name: str
    value: cst.BaseExpression  # the assigned expression, reported on
    tensor: cst.BaseExpression  # the tensor inside `nn.Parameter(...)` / `Variable(...)`
    fan_in: int | None  # the literal size the product sums over
    is_hidden: bool | None  # another raw matrix consumes its product (None: cannot tell)


_RAW: PerFile[list[RawWeight]] = PerFile("weight_matrices._RAW")


def raw_weights(index: TorchIndex) -> list[RawWeight]:
    """Every trainable tensor of the file assigned to a name and used as the weight of a
    matrix product; computed once per file, and only when the text can hold one."""
    found = _RAW.get(index)
    if found is None:
        found = _RAW[index] = _raw_weights(index) if _may_hold(index.source) else []
    return found


def _may_hold(source: str) -> bool:
    return bool(_PRODUCT.search(source)) and bool(_TRAINABLE.search(source))


def _raw_weights(index: TorchIndex) -> list[RawWeight]:
    module = index.module
    assigned: dict[str, list[tuple[cst.Name, cst.BaseExpression]]] = {}
    lists: dict[str, list[str]] = {}  # `params = [W1, b1, W2, b2]`
    updated: set[str] = set()  # `W -= lr * W.grad`, `p.data.add_(-lr * p.grad)`, optimizers
    loops: list[tuple[str, str]] = []  # (loop variable, iterated name)
    uses: list[tuple[cst.Name, str]] = []  # (operand, `right` for x @ W / `left` for W @ x)
    pairs: list[tuple[cst.BaseExpression, cst.BaseExpression]] = []  # the sides of each `@`
    changed: set[str] = set()  # redrawn or rescaled in place: `W.data.normal_()`, `W *= 0.01`
    nodes = findall(module, (cst.Assign, cst.AugAssign, cst.Call, cst.BinaryOperation, cst.For))
    for node in nodes:
        if isinstance(node, cst.Assign):
            for target in node.targets:
                if isinstance(target.target, cst.Name):
                    assigned.setdefault(target.target.value, []).append((target.target, node.value))
                    lists.setdefault(target.target.value, []).extend(_names(node.value) or [])
        elif isinstance(node, cst.For):
            if isinstance(node.target, cst.Name) and isinstance(node.iter, cst.Name):
                loops.append((node.target.value, node.iter.value))
        elif isinstance(node, cst.BinaryOperation):
            if isinstance(node.operator, cst.MatrixMultiply):
                uses.extend(_operand(node.left, "left"))
                uses.extend(_operand(node.right, "right"))
                pairs.append((node.left, node.right))
        elif isinstance(node, cst.AugAssign):
            (updated if _reads_grad(node.value) else changed).add(_tensor_name(node.target) or "")
        elif isinstance(node, cst.Call):
            _call(index, node, lists, updated, changed, uses)
    for variable, iterated in loops:
        if variable in updated:  # `for p in params: p.data -= lr * p.grad`
            updated.update(lists.get(iterated, []))
    if not uses:
        return []
    # in data-flow order: `relu(x @ W1) @ W2` uses W1 first, as the text reads
    position = {id(name): i for i, name in enumerate(findall(module, cst.Name))}
    uses.sort(key=lambda use: position.get(id(use[0]), 0))
    for name in changed:
        assigned.pop(name, None)
    governing: dict[int, cst.BaseExpression] = {}  # use -> the assignment it reads
    for operand, _ in uses:
        before = [
            value
            for target, value in assigned.get(operand.value, [])
            if position.get(id(target), 0) < position.get(id(operand), 0)
        ]
        if before:  # a script or notebook may build the same name again further down
            governing[id(operand)] = before[-1]
    for left, right in pairs:  # `one_hot(x) @ W` picks a row of W: a lookup sums nothing
        if _is_one_hot(index, governing.get(id(left), left)):
            governing.pop(id(right), None)
    return _collect(index, governing, updated, uses)


def _call(
    index: TorchIndex,
    node: cst.Call,
    lists: dict[str, list[str]],
    updated: set[str],
    changed: set[str],
    uses: list[tuple[cst.Name, str]],
) -> None:
    func = node.func
    method = func.attr.value if isinstance(func, cst.Attribute) else None
    name = index.call_name(node) or ""
    if (
        isinstance(func, cst.Attribute)
        and method
        and method.endswith("_")
        and method != "requires_grad_"
    ):
        reads_grad = any(_reads_grad(arg.value) for arg in node.args)
        (updated if reads_grad else changed).add(_tensor_name(func.value) or "")
    if name.startswith(tables.INIT) and node.args:
        changed.add(_tensor_name(node.args[0].value) or "")
    if name.startswith("torch.optim.") and node.args:
        first = node.args[0].value
        updated.update(_names(first) or [])
        if isinstance(first, cst.Name):
            updated.update(lists.get(first.value, []))
    if not name and method in _PRODUCT_CALLS and node.args:  # `x.mm(W)`, `x.matmul(W)`
        uses.extend(_operand(node.args[0].value, "right"))
    short = name.rsplit(".", 1)[-1]
    if short in _PRODUCT_CALLS and name in ("torch." + short, tables.F + short):
        weight = argument(node, 1, "weight" if short == "linear" else "other")
        if weight is not None:  # F.linear(x, W) multiplies by W transposed
            uses.extend(_operand(weight, "left" if short == "linear" else "right"))


def _reads_grad(node: cst.BaseExpression) -> bool:
    if isinstance(node, cst.Attribute) and node.attr.value == "grad":
        return True
    return any(attr.attr.value == "grad" for attr in find(node, cst.Attribute))


def _collect(
    index: TorchIndex,
    governing: dict[int, cst.BaseExpression],
    trained: set[str],
    uses: list[tuple[cst.Name, str]],
) -> list[RawWeight]:
    sides: dict[str, set[str]] = {}
    order: list[str] = []
    values: dict[str, cst.BaseExpression] = {}
    for operand, side in uses:
        name = operand.value
        value = governing.get(id(operand))
        if value is None or name not in trained:
            continue  # not a tensor built here and updated by the gradient
        if _tensor(index, value) is None:
            continue  # not built by a torch call here
        values[name] = value  # the one the last use reads
        sides.setdefault(name, set()).add(side)
        if name in order:
            order.remove(name)
        order.append(name)  # ordered by last use, in source order
    right_only = all(sides[name] == {"right"} for name in order)
    found: list[RawWeight] = []
    for name in order:
        value = values[name]
        tensor = _tensor(index, value)
        assert tensor is not None
        only = next(iter(sides[name])) if len(sides[name]) == 1 else None
        hidden = (name != order[-1]) if right_only and len(order) > 1 else None
        found.append(RawWeight(name, value, tensor, _fan_in(index, tensor, only), hidden))
    return found


_WRAPPERS = frozenset({tables.PARAMETER, "torch.autograd.Variable"})


def _tensor(index: TorchIndex, value: cst.BaseExpression) -> cst.BaseExpression | None:
    """The tensor expression, inside `nn.Parameter(...)` / `Variable(...)` and `.cuda()`."""
    value = keep_values(value)
    if isinstance(value, cst.Call) and index.call_name(value) in _WRAPPERS and value.args:
        value = keep_values(value.args[0].value)
    if isinstance(value, cst.Call) and (index.call_name(value) or "").startswith("torch."):
        return value
    if isinstance(value, cst.BinaryOperation):
        return value
    return None


def _operand(node: cst.BaseExpression, side: str) -> list[tuple[cst.Name, str]]:
    while True:  # `W.t()`, `W.T` are the same matrix, multiplied from the other side
        if (
            isinstance(node, cst.Call)
            and isinstance(node.func, cst.Attribute)
            and node.func.attr.value in ("t", "transpose")
        ):
            node, side = node.func.value, "left" if side == "right" else "right"
        elif isinstance(node, cst.Attribute) and node.attr.value in ("T", "mT"):
            node, side = node.value, "left" if side == "right" else "right"
        else:
            break
    return [(node, side)] if isinstance(node, cst.Name) else []


def _fan_in(index: TorchIndex, tensor: cst.BaseExpression, side: str | None) -> int | None:
    """The size a product with this matrix sums over: rows for `x @ W`, columns for `W @ x`."""
    dims = _dims(index, tensor)
    if side is None or dims is None or len(dims) != 2:
        return None
    size = dims[0] if side == "right" else dims[1]
    return int(size) if size is not None else None


def _dims(index: TorchIndex, tensor: cst.BaseExpression) -> list[float | None] | None:
    """The sizes a factory call is given (`torch.randn(784, 256)`), None where not literal."""
    if isinstance(tensor, cst.BinaryOperation):
        tensor = tensor.left
    if not isinstance(tensor, cst.Call):
        return None
    dims = [arg.value for arg in tensor.args if arg.keyword is None]
    if len(dims) == 1 and isinstance(dims[0], (cst.Tuple, cst.List)):
        dims = [element.value for element in dims[0].elements]
    return [_size(index, dim) for dim in dims]


def _size(index: TorchIndex, node: cst.BaseExpression) -> float | None:
    value = number(index, node)
    if value is None and isinstance(node, cst.Name):
        for statement in index.module.body:  # `HIDDEN = 8` at module level
            if isinstance(statement, cst.SimpleStatementLine):
                for small in statement.body:
                    if (
                        isinstance(small, cst.Assign)
                        and len(small.targets) == 1
                        and isinstance(small.targets[0].target, cst.Name)
                        and small.targets[0].target.value == node.value
                    ):
                        value = number(index, small.value)
    return value


def _tensor_name(node: cst.BaseExpression) -> str | None:
    """`W` for `W` and `W.data`."""
    if isinstance(node, cst.Attribute) and node.attr.value == "data":
        node = node.value
    return node.value if isinstance(node, cst.Name) else None


def _is_one_hot(index: TorchIndex, node: cst.BaseExpression) -> bool:
    node = keep_values(node)
    return isinstance(node, cst.Call) and index.call_name(node) == tables.F + "one_hot"


def _names(node: cst.BaseExpression) -> list[str] | None:
    if not isinstance(node, (cst.List, cst.Tuple)):
        return None
    return [el.value.value for el in node.elements if isinstance(el.value, cst.Name)]
