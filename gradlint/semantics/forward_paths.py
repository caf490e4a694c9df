"""Follow the data through a module's `forward()` and find its longest saturating path.

Each local variable carries the saturating activations (sigmoid, tanh, ...) applied on the
way to it since the last normalization. A residual add keeps the shorter of its two paths
(the gradient takes the identity path); a product with a gate (a tensor that came straight
out of a sigmoid, as in LSTM/GRU cells) follows the other operand, so gates are not stacks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import libcst as cst

from gradlint.semantics import layers, tables
from gradlint.semantics.index import ModuleClass, TorchIndex, self_attribute
from gradlint.semantics.names import child_blocks

MAX_UNROLL = 64


@dataclass(frozen=True)
class SaturatingPath:
    activations: tuple[str, ...]
    node: cst.CSTNode | None  # where the last activation is applied

    @property
    def depth(self) -> float:
        """Sigmoids count 1, tanh-like activations 1/2 (`tables.saturation_weight`)."""
        return tables.saturation_depth(self.activations)


_EMPTY = SaturatingPath((), None)


def _longer(a: SaturatingPath | None, b: SaturatingPath | None) -> SaturatingPath | None:
    if a is None or b is None:
        return a or b
    return a if a.depth >= b.depth else b


def _shorter(a: SaturatingPath | None, b: SaturatingPath | None) -> SaturatingPath | None:
    if a is None or b is None:
        return a or b
    return a if a.depth <= b.depth else b


def deepest_saturating_path(index: TorchIndex, owner: ModuleClass) -> SaturatingPath | None:
    forward = owner.forward
    if forward is None:
        return None
    flow = _Flow(index, owner)
    for param in forward.params.params:
        if param.name.value != "self":
            flow.env[param.name.value] = _EMPTY
    flow.run(forward.body.body if isinstance(forward.body, cst.IndentedBlock) else [])
    return flow.deepest


class _Flow:
    def __init__(self, index: TorchIndex, owner: ModuleClass) -> None:
        self.index = index
        self.owner = owner
        self.env: dict[str, SaturatingPath] = {}
        self.gates: set[str] = set()
        self.loop_layers: dict[str, list[layers.Layer]] = {}
        self.deepest: SaturatingPath | None = None

    # -- statements ---------------------------------------------------------------------

    def run(self, statements: Sequence[cst.CSTNode]) -> None:
        for statement in statements:
            if isinstance(statement, cst.SimpleStatementLine):
                for small in statement.body:
                    self._small(small)
            elif isinstance(statement, cst.For):
                self._loop(statement)
            elif isinstance(statement, cst.If):
                self._branches(statement)
            elif isinstance(statement, (cst.FunctionDef, cst.ClassDef)):
                continue  # nested definitions run elsewhere, if at all
            elif isinstance(statement, cst.BaseCompoundStatement):
                for block in child_blocks(statement):
                    self.run(block)

    def _small(self, node: cst.CSTNode) -> None:
        if isinstance(node, cst.Assign):
            path = self.flow(node.value)
            for target in node.targets:
                self._bind(target.target, path, node.value)
        elif isinstance(node, cst.AnnAssign) and node.value is not None:
            self._bind(node.target, self.flow(node.value), node.value)
        elif isinstance(node, cst.AugAssign) and isinstance(node.target, cst.Name):
            old = self.env.get(node.target.value)
            new = self.flow(node.value)
            if isinstance(node.operator, (cst.AddAssign, cst.SubtractAssign)):
                self.env[node.target.value] = _shorter(old, new) or _EMPTY
            else:
                self.env[node.target.value] = _longer(old, new) or _EMPTY
        elif isinstance(node, (cst.Return, cst.Expr)) and node.value is not None:
            self.flow(node.value)

    def _bind(
        self, target: cst.BaseExpression, path: SaturatingPath | None, value: cst.CSTNode
    ) -> None:
        if isinstance(target, cst.Name):
            if path is None:
                self.env.pop(target.value, None)
            else:
                self.env[target.value] = path
            if self._is_gate_expression(value):
                self.gates.add(target.value)
            else:
                self.gates.discard(target.value)
        elif isinstance(target, (cst.Tuple, cst.List)):
            for element in target.elements:
                self._bind(element.value, path, value)

    def _loop(self, node: cst.For) -> None:
        repeats = 1
        attr = self_attribute(node.iter)
        if attr is not None and isinstance(node.target, cst.Name):
            stack = layers.module_list_size(self.index, self.owner.attrs.get(attr, cst.Name("_")))
            if stack is not None:
                repeats, self.loop_layers[node.target.value] = stack[0], stack[1]
        else:
            repeats = layers.range_count(node.iter, layers.module_values(self.index)) or 1
        body = node.body.body if isinstance(node.body, cst.IndentedBlock) else []
        for _ in range(min(repeats, MAX_UNROLL)):
            self.run(body)

    def _branches(self, node: cst.If) -> None:
        before = dict(self.env)
        merged: dict[str, SaturatingPath] = {}
        for block in child_blocks(node):
            self.env = dict(before)
            self.run(block)
            for name, path in self.env.items():
                merged[name] = _longer(merged.get(name), path) or path
        if node.orelse is None:  # the branch may not run at all
            for name, path in before.items():
                merged[name] = _shorter(merged.get(name), path) or path
        self.env = merged

    # -- expressions --------------------------------------------------------------------

    def flow(self, node: cst.CSTNode) -> SaturatingPath | None:
        if isinstance(node, cst.Name):
            return self.env.get(node.value)
        if isinstance(node, cst.Attribute):
            return None if self_attribute(node) is not None else self.flow(node.value)
        if isinstance(node, cst.Call):
            return self._call(node)
        if isinstance(node, cst.BinaryOperation):
            return self._binary(node)
        if isinstance(node, cst.UnaryOperation):
            return self.flow(node.expression)
        if isinstance(node, cst.Subscript):
            return self.flow(node.value)
        if isinstance(node, (cst.Tuple, cst.List)):
            return self._merge([el.value for el in node.elements])
        if isinstance(node, cst.IfExp):
            return _longer(self.flow(node.body), self.flow(node.orelse))
        return None

    def _merge(self, nodes: Sequence[cst.CSTNode]) -> SaturatingPath | None:
        result: SaturatingPath | None = None
        for node in nodes:
            result = _longer(result, self.flow(node))
        return result

    def _apply(
        self, path: SaturatingPath | None, activation: str, node: cst.CSTNode
    ) -> SaturatingPath:
        extended = SaturatingPath((*(path or _EMPTY).activations, activation), node)
        self.deepest = _longer(self.deepest, extended)
        return extended

    def _through(
        self, path: SaturatingPath | None, stack: Sequence[layers.Layer], node: cst.CSTNode
    ) -> SaturatingPath | None:
        for layer in stack:
            if layer.kind == layers.SATURATING and layer.activation:
                path = self._apply(path, layer.activation, node)
            elif layer.kind in (layers.NORM, layers.UNKNOWN, layers.RNN):
                path = _EMPTY if path is not None else None
        return path

    def _call(self, node: cst.Call) -> SaturatingPath | None:
        args = self._merge([arg.value for arg in node.args])
        name = self.index.call_name(node)
        if name in tables.SATURATING_FUNCTIONS:
            first = self.flow(node.args[0].value) if node.args else None
            return self._apply(first, tables.SATURATING_FUNCTIONS[name], node)
        if name in tables.NORM_FUNCTIONS:
            return _EMPTY if args is not None else None
        func = node.func
        if name is None and isinstance(func, cst.Attribute):
            attr = self_attribute(func)
            if attr is not None:
                return self._through(args, self._attribute_layers(attr), node)
            if func.attr.value in tables.SATURATING_METHODS:
                return self._apply(
                    self.flow(func.value), tables.SATURATING_METHODS[func.attr.value], node
                )
            return _longer(self.flow(func.value), args)
        if isinstance(func, cst.Name) and func.value in self.loop_layers:
            return self._through(args, self.loop_layers[func.value], node)
        constants = layers.module_values(self.index)
        if isinstance(func, cst.Name) and func.value in constants:
            activation = self._constant_activation(constants[func.value])
            if activation is not None:  # `ACTIVATION = torch.tanh` set up front, then applied
                first = self.flow(node.args[0].value) if node.args else None
                return self._apply(first, activation, node)
        return args

    def _constant_activation(self, value: cst.BaseExpression) -> str | None:
        """`tanh` for a file constant naming a saturating function or module instance."""
        name = self.index.qualified(value)
        if name in tables.SATURATING_FUNCTIONS:
            return tables.SATURATING_FUNCTIONS[name]
        layer = layers.classify(self.index, value) if isinstance(value, cst.Call) else None
        if layer is not None and layer.kind == layers.SATURATING:
            return layer.activation
        return None

    def _attribute_layers(self, attr: str) -> list[layers.Layer]:
        value = self.owner.attrs.get(attr)
        if value is None:
            if attr in self.owner.methods:
                return [layers.Layer(layers.UNKNOWN, self.owner.node)]  # a helper method
            return []  # not assigned in __init__: most likely a layer; pass the data through
        layer = layers.classify(self.index, value)
        if layer.kind == layers.SEQUENTIAL:
            return layers.sequence(self.index, value) or [layers.Layer(layers.UNKNOWN, value)]
        return [layer]

    def _binary(self, node: cst.BinaryOperation) -> SaturatingPath | None:
        left, right = self.flow(node.left), self.flow(node.right)
        if isinstance(node.operator, (cst.Add, cst.Subtract)):
            return _shorter(left, right)  # a residual add: the identity path wins
        if isinstance(node.operator, (cst.Multiply, cst.MatrixMultiply, cst.Divide)):
            left_gate, right_gate = self._is_gate(node.left), self._is_gate(node.right)
            if left_gate and not right_gate and right is not None:
                return right
            if right_gate and not left_gate and left is not None:
                return left
        return _longer(left, right)

    def _is_gate(self, node: cst.CSTNode) -> bool:
        if isinstance(node, cst.Name):
            return node.value in self.gates
        return self._is_gate_expression(node)

    def _is_gate_expression(self, node: cst.CSTNode) -> bool:
        if not isinstance(node, cst.Call):
            return False
        if self.index.call_name(node) in tables.SATURATING_FUNCTIONS:
            return True
        func = node.func
        if isinstance(func, cst.Attribute):
            attr = self_attribute(func)
            if attr is not None:
                stack = self._attribute_layers(attr)
                return bool(stack) and stack[-1].kind == layers.SATURATING
            return func.attr.value in tables.SATURATING_METHODS
        return False
