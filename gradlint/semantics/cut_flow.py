"""Whether a cut value reaches what a `forward()`, loss method or training step returns.

`cuts_reaching_return` follows values through the local variables of one method, keeping for
each the roots (submodules, parameters, prediction arguments) it depends on with and without a
cut; a cut matters only when those roots reach no return through any other path.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import libcst as cst

from gradlint.semantics.frozen import FREEZE_WORDS, frozen_attributes
from gradlint.semantics.gradient_cuts import (
    BUILTINS_WITHOUT_GRADIENT,
    CUT_ATTRIBUTES,
    CUT_METHODS,
    MODEL_FACTORY_FRAGMENTS,
    NON_DIFFERENTIABLE_ATTRIBUTES,
    NON_DIFFERENTIABLE_FUNCTIONS,
    NON_DIFFERENTIABLE_METHODS,
    SHAPE_ARGUMENT_METHODS,
    SHAPE_KEYWORDS,
    TARGET_OPERATORS,
    TENSOR_REWRAPS,
    is_fixed_transform_name,
    is_index_name,
    is_no_grad_context,
    is_stop_gradient_name,
)
from gradlint.semantics.index import ModuleClass, TorchIndex, self_attribute
from gradlint.semantics.names import child_blocks, dotted_name
from gradlint.semantics.registration import CAPWORDS, layer_kind
from gradlint.semantics.syntax import (
    bare_name,
    compact_text,
    is_bare_method_call,
    is_string_line,
    lone_statement,
)

LOSS_METHOD_FRAGMENTS = ("loss",)
STEP_METHODS = frozenset({"forward", "training_step"})
# Arguments of a loss computation that hold the model's predictions (parameter-dependent).
PREDICTION_ARGUMENTS = frozenset(
    {
        "pred",
        "preds",
        "prediction",
        "predictions",
        "logits",
        "output",
        "outputs",
        "out",
        "y_hat",
        "yhat",
        "y_pred",
        "input",
        "inputs",
        "scores",
        "student_logits",
        "student_output",
        "predicted",
        "log_probs",
        "probs",
    }
)


def is_graph_function(info: ModuleClass, function: cst.FunctionDef) -> bool:
    """forward(), training_step() and loss methods: their return value is backpropagated."""
    name = function.name.value
    return info.methods.get(name) is function and (
        name in STEP_METHODS or any(part in name.lower() for part in LOSS_METHOD_FRAGMENTS)
    )


def is_loss_computation(info: ModuleClass, function: cst.FunctionDef) -> bool:
    """A loss method, a training step, or the forward of a loss module (`FocalLoss`)."""
    name = function.name.value
    owner = info.name.lower()
    return name != "forward" or owner.endswith(("loss", "criterion", "objective"))


@dataclass(frozen=True)
class Cut:
    node: cst.CSTNode
    operation: str  # ".detach()", "torch.no_grad()", ...
    direct: bool = False  # the returned value itself carries no gradient at all


@dataclass(frozen=True)
class Flow:
    """What a value depends on: roots (parameters, submodules) reached with and without a cut."""

    live: frozenset[str] = frozenset()
    cuts: tuple[tuple[str, Cut], ...] = ()

    def __or__(self, other: Flow) -> Flow:
        if not other.live and not other.cuts:
            return self
        seen = {root for root, _ in self.cuts}
        extra = tuple(pair for pair in other.cuts if pair[0] not in seen)
        return Flow(self.live | other.live, self.cuts + extra)


EMPTY = Flow()
_INPUT = "input:"
GIVEN = "given:"  # a module handed to __init__ (`self.unet = unet`)
SELF = "self"  # the module itself: `self(x)`, `self.encode(x)` may use any of its parameters


def cuts_reaching_return(
    index: TorchIndex, info: ModuleClass, function: cst.FunctionDef
) -> list[Cut]:
    """Cuts of parameter-dependent values that reach a `return` of `function` while the
    parameters behind them reach no return through any other path; [] when unknowable."""
    if any(is_no_grad_context(index, d.decorator) for d in function.decorators):
        return []  # an inference-only method
    if any("backward" in name for name in info.methods):
        return []  # reversible layers run forward under no_grad and write their own backward
    if _is_wrapped_in_no_grad(index, function):
        return []  # the whole method is inference-only
    may_freeze = any(word in index.source for word in FREEZE_WORDS)
    frozen = frozen_attributes(info) if may_freeze else set()  # the text check is far cheaper
    if frozen is None:
        return []  # the whole module is frozen (an EMA copy, a teacher)
    tracer = Tracer(index, info, frozen)
    loss = is_loss_computation(info, function)
    for param in function.params.params[1:]:
        name = param.name.value
        if loss and name in PREDICTION_ARGUMENTS:
            tracer.env[name] = Flow(frozenset({"arg:" + name}))
        elif not loss:
            # activations from upstream layers: they carry gradient, but not this module's
            tracer.env[name] = Flow(frozenset({_INPUT + name}))
    if isinstance(function.body, cst.IndentedBlock):
        tracer.run(function.body.body, no_grad=False)
    found: dict[cst.CSTNode, Cut] = {}
    live = tracer.returned_live
    own = any(not r.startswith(_INPUT) for r in live)
    for root, cut in tracer.returned_cuts:
        if root in live or root.startswith((_INPUT, GIVEN)):
            continue  # the same parameters reach the output another way; or an input, or a
            # module handed to __init__ that may well be frozen where it is built
        if SELF in live or (root == SELF and own):
            continue  # a method of the module (self-conditioning) runs the same parameters
        if cut.node not in found or cut.direct:
            found[cut.node] = cut
    return list(found.values())


def _is_wrapped_in_no_grad(index: TorchIndex, function: cst.FunctionDef) -> bool:
    statements = getattr(function.body, "body", ())
    body = [s for s in statements if not is_string_line(s, (cst.SimpleString,))]
    return (
        bool(body)
        and isinstance(body[0], cst.With)
        and all(is_no_grad_context(index, item.item) for item in body[0].items)
        and all(isinstance(lone_statement(s), cst.Return) for s in body[1:])
    )


@dataclass
class Tracer:
    index: TorchIndex
    info: ModuleClass
    frozen: set[str]
    env: dict[str, Flow] = field(default_factory=dict)
    returned_live: set[str] = field(default_factory=set)
    returned_cuts: list[tuple[str, Cut]] = field(default_factory=list)

    # -- statements ---------------------------------------------------------------------

    def run(self, statements: Sequence[cst.CSTNode], no_grad: bool) -> None:
        for statement in statements:
            if isinstance(statement, cst.SimpleStatementLine):
                for small in statement.body:
                    self._small(small, no_grad)
            elif isinstance(statement, (cst.FunctionDef, cst.ClassDef)):
                continue  # nested definitions run elsewhere, if at all
            elif isinstance(statement, cst.If):
                self._branches(statement, no_grad)
            elif isinstance(statement, (cst.For, cst.While)):
                if isinstance(statement, cst.For):
                    attr = self_attribute(statement.iter)
                    items = (
                        self._self_root(attr, used=True)
                        if attr is not None
                        else self.flow(statement.iter)
                    )
                    self._bind(statement.target, items, False)
                for _ in range(2):  # twice, so values carried round the loop are seen
                    self.run(statement.body.body, no_grad)
                if statement.orelse is not None:
                    self.run(statement.orelse.body.body, no_grad)
            elif isinstance(statement, cst.With):
                inner = no_grad or any(
                    is_no_grad_context(self.index, item.item) for item in statement.items
                )
                self.run(statement.body.body, inner)
            elif isinstance(statement, cst.BaseCompoundStatement):
                for block in child_blocks(statement):
                    self.run(block, no_grad)

    def _branches(self, node: cst.If, no_grad: bool) -> None:
        before = dict(self.env)
        merged = dict(before)
        for block in child_blocks(node):
            self.env = dict(before)
            self.run(block, no_grad)
            for name, value in self.env.items():
                merged[name] = merged.get(name, EMPTY) | value
        self.env = merged

    def _small(self, node: cst.CSTNode, no_grad: bool) -> None:
        if isinstance(node, cst.Assign):
            value = self._assigned(node, node.value, no_grad)
            for target in node.targets:
                self._bind(target.target, value, no_grad or _is_detach(node.value))
        elif isinstance(node, cst.AnnAssign) and node.value is not None:
            self._bind(
                node.target,
                self._assigned(node, node.value, no_grad),
                no_grad or _is_detach(node.value),
            )
        elif isinstance(node, cst.AugAssign) and isinstance(node.target, cst.Name):
            name = node.target.value
            value = self._assigned(node, node.value, no_grad)
            self.env[name] = self.env.get(name, EMPTY) | value
        elif isinstance(node, cst.Expr) and isinstance(node.value, cst.Call):
            self._mutation(node.value)
        elif isinstance(node, cst.Return) and node.value is not None:
            self._return(node.value)

    def _assigned(self, node: cst.CSTNode, value: cst.BaseExpression, no_grad: bool) -> Flow:
        flow = self.flow(value)
        return cut_of(node, "torch.no_grad()", flow) if no_grad else flow

    def _bind(self, target: cst.BaseExpression, value: Flow, stop_gradient: bool) -> None:
        if isinstance(target, cst.Name):
            name = target.value
            if is_index_name(name) or (stop_gradient and is_stop_gradient_name(name)):
                value = EMPTY  # indices, masks, targets: nothing meant to be learned
            self.env[name] = value
        elif isinstance(target, (cst.Tuple, cst.List)):
            for element in target.elements:
                self._bind(element.value, value, stop_gradient)
        elif isinstance(target, cst.Subscript) and isinstance(target.value, cst.Name):
            name = target.value.value  # `outs[i] = ...` adds to `outs`
            self.env[name] = self.env.get(name, EMPTY) | value

    def _mutation(self, call: cst.Call) -> None:
        """`outs.append(h)`: the list now holds h."""
        func = call.func
        if (
            isinstance(func, cst.Attribute)
            and isinstance(func.value, cst.Name)
            and func.attr.value in ("append", "extend", "insert", "add", "update")
        ):
            name = func.value.value
            for arg in call.args:
                self.env[name] = self.env.get(name, EMPTY) | self.flow(arg.value)

    def _return(self, value: cst.BaseExpression) -> None:
        elements: list[cst.BaseExpression] = [value]
        if isinstance(value, (cst.Tuple, cst.List)):
            elements = [e.value for e in value.elements]
        elif isinstance(value, cst.Dict):
            elements = [e.value for e in value.elements if isinstance(e, cst.DictElement)]
        for element in elements:
            flow = self.flow(element)
            self.returned_live |= flow.live
            for root, cut in flow.cuts:
                direct = not flow.live
                self.returned_cuts.append((root, Cut(cut.node, cut.operation, direct)))

    # -- expressions --------------------------------------------------------------------

    def flow(self, node: cst.BaseExpression) -> Flow:
        if isinstance(node, cst.Name):
            return self.env.get(node.value, EMPTY)
        if isinstance(node, cst.Attribute):
            return self._attribute(node)
        if isinstance(node, cst.Call):
            return self._call(node)
        if isinstance(node, cst.Subscript):
            return self.flow(node.value)  # an index carries no gradient
        if isinstance(node, cst.BinaryOperation):
            return self._binary(node)
        if isinstance(node, (cst.Comparison, cst.Lambda, cst.BaseString, cst.BaseNumber)):
            return EMPTY
        if isinstance(node, cst.IfExp):
            return self.flow(node.body) | self.flow(node.orelse)
        result = EMPTY
        for child in node.children:
            if isinstance(child, cst.BaseExpression):
                result = result | self.flow(child)
            elif isinstance(
                child,
                (cst.Element, cst.DictElement, cst.StarredElement, cst.StarredDictElement, cst.Arg),
            ):
                for grandchild in child.children:
                    if isinstance(grandchild, cst.BaseExpression):
                        result = result | self.flow(grandchild)
        return result

    def _attribute(self, node: cst.Attribute) -> Flow:
        attr = node.attr.value
        if attr in CUT_ATTRIBUTES:
            return cut_of(node, CUT_ATTRIBUTES[attr], self.flow(node.value))
        if attr in NON_DIFFERENTIABLE_ATTRIBUTES:
            return EMPTY
        if self_attribute(node) is not None:
            return self._self_root(attr, used=False)
        return self.flow(node.value)

    def _call(self, node: cst.Call) -> Flow:
        func = node.func
        name = self.index.call_name(node)
        if name in NON_DIFFERENTIABLE_FUNCTIONS:
            return EMPTY
        if name in TENSOR_REWRAPS and node.args:
            return cut_of(node, "torch.tensor(...)", self.flow(node.args[0].value))
        args = self._operands(
            [
                a.value
                for a in node.args
                if a.keyword is None or a.keyword.value not in SHAPE_KEYWORDS
            ]
        )
        if name is not None:
            return args  # a torch / imported function: its result depends on its arguments
        if isinstance(func, cst.Name) and func.value in BUILTINS_WITHOUT_GRADIENT:
            return EMPTY
        if isinstance(func, cst.Name):
            if func.value == "self":
                return Flow(frozenset({SELF})) | args
            if func.value in self.env:
                return self.env[func.value] | args  # `layer(x)` for a loop's layer
            return self.free_call(func.value) | args
        if not isinstance(func, cst.Attribute):
            return self.flow(func) | args
        method = func.attr.value
        if self_attribute(func) is not None:
            return self._self_root(method, used=True) | args  # `self.fc(x)`, `self.encode(x)`
        if method in CUT_METHODS and not node.args:
            return cut_of(node, CUT_METHODS[method], self.flow(func.value))
        if method in NON_DIFFERENTIABLE_METHODS:
            return EMPTY
        receiver = func.value
        attr = self_attribute(receiver)
        if attr is not None:
            own = self._self_root(attr, used=True)
        elif _free_base(receiver) is not None and _free_base(receiver) not in self.env:
            own = self.free_call(dotted_name(receiver) or "")  # `model.encode(x)`, `D.net(x)`
        else:
            own = self.flow(receiver)
        return own if method in SHAPE_ARGUMENT_METHODS else own | args

    def free_call(self, name: str) -> Flow:
        """What calling `name`, bound outside the traced code, depends on: nothing here (a
        helper function of the file); training steps see models in such names."""
        return EMPTY

    def _binary(self, node: cst.BinaryOperation) -> Flow:
        terms = additive_terms(node)
        if len(terms) > 1 and _is_straight_through(terms):
            result = EMPTY
            for term in terms:
                if not _is_detach(term):
                    result = result | self.flow(term)
            return result  # the straight-through estimator: the cut is the point
        if isinstance(node.operator, TARGET_OPERATORS):
            return self._operands([node.left, node.right], inputs=True)
        return self.flow(node.left) | self.flow(node.right)

    def _operands(self, operands: Sequence[cst.BaseExpression], inputs: bool = False) -> Flow:
        """Union of the operands; a detached one compared with a live one is a target (with
        `inputs`, an activation handed to forward() counts as live)."""
        flows = [self.flow(op) for op in operands]
        if len(operands) > 1 and any(
            not r.startswith(_INPUT) or inputs for flow in flows for r in flow.live
        ):
            flows = [EMPTY if _is_detach(op) else flow for op, flow in zip(operands, flows)]
        result = EMPTY
        for flow in flows:
            result = result | flow
        return result

    def _self_root(self, attr: str, used: bool) -> Flow:
        """`self.<attr>` as a source of gradient: a submodule, a parameter, a method."""
        if attr in self.frozen or is_stop_gradient_name(attr):
            return EMPTY  # frozen or stop-gradient networks are meant to be constant
        if is_fixed_transform_name(attr):
            return EMPTY  # `self.stft`, `self.mel`: feature extraction without parameters
        if attr in self.info.methods:
            return Flow(frozenset({SELF}))  # `self.model_predictions(x)`: any of its parameters
        value = self.info.attrs.get(attr)
        if value is not None:
            if used and isinstance(value, cst.Name):
                return Flow(frozenset({GIVEN + attr}))  # `self.unet = unet`: a module given in
            if not isinstance(value, cst.Call):
                return EMPTY  # `self.eps = eps`, `self.scale = dim ** -0.5`
            if not self._is_trainable(value):
                return EMPTY  # a plain tensor or a table, not a parameter
            return Flow(frozenset({attr}))
        if used or re.search(r"weight|bias|embed|token|param|codebook", attr):
            return Flow(frozenset({attr}))
        return EMPTY

    def _is_trainable(self, value: cst.Call) -> bool:
        """`nn.Linear(...)`, `nn.Parameter(...)`, `Block(...)`, `build_backbone(cfg)`."""
        if layer_kind(self.index, value) is not None:
            return True
        name = self.index.call_name(value)
        if name is not None and (name.startswith("torch.") and not name.startswith("torch.nn.")):
            return False  # torch.zeros(...), torch.tensor(...): a plain tensor
        bare = bare_name(value.func) or ""
        if CAPWORDS.match(bare):
            return True  # a class we cannot see: likely a submodule
        return any(part in bare.lower() for part in MODEL_FACTORY_FRAGMENTS)


def _free_base(node: cst.BaseExpression) -> str | None:
    """`D` for `D` or `D.net.head` (names and attributes only, not `self`), else None."""
    while isinstance(node, cst.Attribute):
        node = node.value
    if isinstance(node, cst.Name) and node.value != "self":
        return node.value
    return None


def cut_of(node: cst.CSTNode, operation: str, inner: Flow) -> Flow:
    if not inner.live:
        return inner
    known = {root for root, _ in inner.cuts}
    new = tuple((root, Cut(node, operation)) for root in sorted(inner.live) if root not in known)
    return Flow(frozenset(), inner.cuts + new)


def _is_detach(node: cst.CSTNode) -> bool:
    return is_bare_method_call(node, "detach")


def additive_terms(node: cst.BaseExpression) -> list[cst.BaseExpression]:
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, (cst.Add, cst.Subtract)):
        return additive_terms(node.left) + additive_terms(node.right)
    return [node]


def _is_straight_through(terms: list[cst.BaseExpression]) -> bool:
    """`x + (y - x).detach()`, `y_hard - y_soft.detach() + y_soft`: a term reappears detached."""
    plain = {compact_text(t) for t in terms if not _is_detach(t)}
    for term in terms:
        if _is_detach(term):
            inner = cst.ensure_type(cst.ensure_type(term, cst.Call).func, cst.Attribute).value
            if {compact_text(t) for t in additive_terms(inner)} & plain:
                return True
    return False
