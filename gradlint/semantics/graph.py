"""The autograd graph: operations that cut it, hand-written backward passes, layer containers.

Three facts several rules need:

* which operations return a value that autograd no longer connects to the parameters
  (`.detach()`, `.data`, `.item()`, `torch.no_grad()` ...), and whether such a cut value reaches
  what a `forward()` or a loss method returns (`cuts_reaching_return`);
* which classes are `torch.autograd.Function` subclasses, and which calls check them
  numerically (`gradcheck`);
* what a plain Python list/dict of layers holds, as opposed to an `nn.ModuleList`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath

import libcst as cst

from gradlint.semantics import tables
from gradlint.semantics.index import ModuleClass, PerFile, TorchIndex, self_attribute
from gradlint.semantics.names import child_blocks, dotted_name
from gradlint.semantics.nodes import findall

# -- operations that cut the graph ---------------------------------------------------------

# Tensor methods whose result is no longer connected to the graph (name -> how it is shown).
CUT_METHODS: dict[str, str] = {
    "detach": ".detach()",
    "detach_": ".detach_()",
    "item": ".item()",
    "numpy": ".numpy()",
    "tolist": ".tolist()",
}
CUT_ATTRIBUTES: dict[str, str] = {"data": ".data"}
NO_GRAD_CONTEXTS = frozenset(
    {
        "torch.no_grad",
        "torch.inference_mode",
        "torch.autograd.no_grad",
        "torch.autograd.grad_mode.no_grad",
        "torch.autograd.inference_mode",
        "torch.autograd.grad_mode.inference_mode",
    }
)
GRAD_SWITCH = "torch.set_grad_enabled"  # a cut only with a literal False
# `torch.tensor(t)` copies a tensor into a new leaf (PyTorch warns: use t.clone().detach()).
TENSOR_REWRAPS = frozenset({"torch.tensor"})

# Results that carry no gradient whatever their input (indices, shapes, masks, new tensors).
NON_DIFFERENTIABLE_METHODS = frozenset(
    {
        "argmax",
        "argmin",
        "argsort",
        "size",
        "dim",
        "numel",
        "long",
        "int",
        "bool",
        "byte",
        "eq",
        "ne",
        "gt",
        "lt",
        "ge",
        "le",
        "nonzero",
        "sign",
        "isnan",
        "isinf",
        "isfinite",
        "any",
        "all",
        "new_zeros",
        "new_ones",
        "new_full",
        "new_empty",
        "new_tensor",
        "zero_",
        "get_device",
        "is_contiguous",
        "stride",
        "data_ptr",
        "bincount",
        "unique",
    }
)
NON_DIFFERENTIABLE_ATTRIBUTES = frozenset(
    {
        "shape",
        "dtype",
        "device",
        "ndim",
        "is_cuda",
        "requires_grad",
        "grad_fn",
        "is_leaf",
        "training",
        "layout",
    }
)
NON_DIFFERENTIABLE_FUNCTIONS = frozenset(
    {
        "torch." + name
        for name in (
            "argmax",
            "argmin",
            "argsort",
            "zeros",
            "ones",
            "empty",
            "full",
            "arange",
            "eye",
            "linspace",
            "logspace",
            "rand",
            "randn",
            "randint",
            "randperm",
            "zeros_like",
            "ones_like",
            "empty_like",
            "full_like",
            "rand_like",
            "randn_like",
            "randint_like",
            "bucketize",
            "searchsorted",
            "multinomial",
            "isnan",
            "isinf",
            "isfinite",
            "eq",
            "ne",
            "gt",
            "lt",
            "ge",
            "le",
            "nonzero",
            "bernoulli",
            "tril_indices",
            "triu_indices",
            "count_nonzero",
            "bincount",
            "unique",
            "numel",
        )
    }
)
BUILTINS_WITHOUT_GRADIENT = frozenset(
    {
        "int",
        "float",
        "len",
        "range",
        "bool",
        "round",
        "isinstance",
        "str",
        "print",
        "hasattr",
        "type",
    }
)
# Operators where a detached operand is the target the other side is pulled towards
# (`z.detach() - h`, `p * z.detach()`): the commitment-loss / BYOL stop-gradient.
TARGET_OPERATORS = (cst.Subtract, cst.Multiply, cst.Divide, cst.MatrixMultiply)
# Lower-case factories that return a trainable network (`self.backbone = build_backbone(cfg)`).
MODEL_FACTORY_FRAGMENTS = (
    "build",
    "create",
    "make",
    "model",
    "net",
    "encoder",
    "decoder",
    "backbone",
    "layer",
    "head",
    "block",
)
# Methods whose arguments are shapes or dimensions: only the receiver carries gradient.
SHAPE_ARGUMENT_METHODS = frozenset(
    {
        "view",
        "reshape",
        "expand",
        "repeat",
        "permute",
        "transpose",
        "flatten",
        "unflatten",
        "narrow",
        "split",
        "chunk",
        "roll",
        "unsqueeze",
        "squeeze",
        "to",
        "type",
        "cuda",
        "contiguous",
        "view_as",
        "expand_as",
        "reshape_as",
        "type_as",
        "repeat_interleave",
        "movedim",
        "flip",
        "tile",
        "unbind",
        "softmax",
        "log_softmax",
        "sum",
        "mean",
        "norm",
        "max",
        "min",
        "topk",
        "sort",
        "cumsum",
        "gather",
        "index_select",
        "masked_fill",
    }
)
SHAPE_KEYWORDS = frozenset(
    {
        "dim",
        "size",
        "shape",
        "dtype",
        "device",
        "out",
        "scale_factor",
        "mode",
        "keepdim",
        "index",
        "mask",
        "k",
        "dims",
        "align_corners",
        "reduction",
        "ignore_index",
    }
)

# Names of networks whose output is meant to be a constant (EMA / momentum / teacher /
# target networks in BYOL, MoCo, DINO, DQN, RLHF reference models) and of values that are
# targets rather than predictions: detaching them is the stop-gradient idiom.
STOP_GRADIENT_TOKENS = frozenset(
    {
        "target",
        "targets",
        "teacher",
        "ema",
        "momentum",
        "shadow",
        "frozen",
        "tgt",
        "ref",
        "reference",
        "old",
        "avg",
        "average",
        "label",
        "labels",
        "pseudo",
        "gt",
        "prior",
        "k",
    }
)
_INDEX_NAME = re.compile(
    r"(^|_)(idx|idxs|index|indices|indexes|ind|inds|ids|mask|masks|perm|order|argmax|"
    r"position|positions|pos|lengths?|counts?|shape|size|sizes|coords?|coordinates|grid)(_|\d|$)"
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
FREEZE_METHODS = frozenset({"requires_grad_", "eval", "train"})


def is_stop_gradient_name(name: str) -> bool:
    """`self.target_net`, `teacher`, `encoder_k`, `ema_model`, `labels`: meant to be constant."""
    tokens = [t for t in re.split(r"[_.\d]+", name.lower()) if t]
    if "key" in tokens and ("encoder" in tokens or "enc" in tokens):
        return True
    return any(token in STOP_GRADIENT_TOKENS for token in tokens)


def is_index_name(name: str) -> bool:
    """A variable named like indices, masks or sizes: it carries no gradient to lose."""
    return _INDEX_NAME.search(name.lower()) is not None


def is_no_grad_context(index: TorchIndex, expr: cst.BaseExpression) -> bool:
    """`torch.no_grad()`, `torch.inference_mode()`, `torch.set_grad_enabled(False)`."""
    name = index.call_name(expr)
    if name in NO_GRAD_CONTEXTS:
        return True
    if name == GRAD_SWITCH and isinstance(expr, cst.Call) and expr.args:
        return _is_name(expr.args[0].value, "False")
    return False


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
class _Flow:
    """What a value depends on: roots (parameters, submodules) reached with and without a cut."""

    live: frozenset[str] = frozenset()
    cuts: tuple[tuple[str, Cut], ...] = ()

    def __or__(self, other: _Flow) -> _Flow:
        if not other.live and not other.cuts:
            return self
        seen = {root for root, _ in self.cuts}
        extra = tuple(pair for pair in other.cuts if pair[0] not in seen)
        return _Flow(self.live | other.live, self.cuts + extra)


_EMPTY = _Flow()
_INPUT = "input:"


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
    words = ("requires_grad", "eval", "freeze", "Freeze")
    may_freeze = any(word in index.source for word in words)
    frozen = frozen_attributes(info) if may_freeze else set()  # the text check is far cheaper
    if frozen is None:
        return []  # the whole module is frozen (an EMA copy, a teacher)
    tracer = _Tracer(index, info, frozen)
    loss = is_loss_computation(info, function)
    for param in function.params.params[1:]:
        name = param.name.value
        if loss and name in PREDICTION_ARGUMENTS:
            tracer.env[name] = _Flow(frozenset({"arg:" + name}))
        elif not loss:
            # activations from upstream layers: they carry gradient, but not this module's
            tracer.env[name] = _Flow(frozenset({_INPUT + name}))
    if isinstance(function.body, cst.IndentedBlock):
        tracer.run(function.body.body, no_grad=False)
    found: dict[cst.CSTNode, Cut] = {}
    for root, cut in tracer.returned_cuts:
        if root in tracer.returned_live or root.startswith(_INPUT):
            continue  # the same parameters reach the output another way; or an input
        if cut.node not in found or cut.direct:
            found[cut.node] = cut
    return list(found.values())


def _is_wrapped_in_no_grad(index: TorchIndex, function: cst.FunctionDef) -> bool:
    statements = getattr(function.body, "body", ())
    body = [s for s in statements if not _is_string_line(s, (cst.SimpleString,))]
    return (
        bool(body)
        and isinstance(body[0], cst.With)
        and all(is_no_grad_context(index, item.item) for item in body[0].items)
        and all(isinstance(_lone_statement(s), cst.Return) for s in body[1:])
    )


def _is_name(node: cst.CSTNode, value: str) -> bool:
    return isinstance(node, cst.Name) and node.value == value


def _lone_statement(statement: cst.CSTNode) -> cst.BaseSmallStatement | None:
    """The only statement on a simple line (`return x`, but not `y = 1; return x`)."""
    if isinstance(statement, cst.SimpleStatementLine) and len(statement.body) == 1:
        return statement.body[0]
    return None


def _is_string_line(statement: cst.CSTNode, kinds: tuple[type[cst.CSTNode], ...]) -> bool:
    """A line holding nothing but a string literal (a docstring)."""
    lone = _lone_statement(statement)
    return isinstance(lone, cst.Expr) and isinstance(lone.value, kinds)


def _is_bare_method_call(node: cst.CSTNode, method: str) -> bool:
    """`<anything>.method()` with no arguments at all."""
    return (
        isinstance(node, cst.Call)
        and isinstance(node.func, cst.Attribute)
        and node.func.attr.value == method
        and not node.args
    )


@dataclass
class _Tracer:
    index: TorchIndex
    info: ModuleClass
    frozen: set[str]
    env: dict[str, _Flow] = field(default_factory=dict)
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
                merged[name] = merged.get(name, _EMPTY) | value
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
            self.env[name] = self.env.get(name, _EMPTY) | value
        elif isinstance(node, cst.Expr) and isinstance(node.value, cst.Call):
            self._mutation(node.value)
        elif isinstance(node, cst.Return) and node.value is not None:
            self._return(node.value)

    def _assigned(self, node: cst.CSTNode, value: cst.BaseExpression, no_grad: bool) -> _Flow:
        flow = self.flow(value)
        return _cut(node, "torch.no_grad()", flow) if no_grad else flow

    def _bind(self, target: cst.BaseExpression, value: _Flow, stop_gradient: bool) -> None:
        if isinstance(target, cst.Name):
            name = target.value
            if is_index_name(name) or (stop_gradient and is_stop_gradient_name(name)):
                value = _EMPTY  # indices, masks, targets: nothing meant to be learned
            self.env[name] = value
        elif isinstance(target, (cst.Tuple, cst.List)):
            for element in target.elements:
                self._bind(element.value, value, stop_gradient)
        elif isinstance(target, cst.Subscript) and isinstance(target.value, cst.Name):
            name = target.value.value  # `outs[i] = ...` adds to `outs`
            self.env[name] = self.env.get(name, _EMPTY) | value

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
                self.env[name] = self.env.get(name, _EMPTY) | self.flow(arg.value)

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

    def flow(self, node: cst.BaseExpression) -> _Flow:
        if isinstance(node, cst.Name):
            return self.env.get(node.value, _EMPTY)
        if isinstance(node, cst.Attribute):
            return self._attribute(node)
        if isinstance(node, cst.Call):
            return self._call(node)
        if isinstance(node, cst.Subscript):
            return self.flow(node.value)  # an index carries no gradient
        if isinstance(node, cst.BinaryOperation):
            return self._binary(node)
        if isinstance(node, (cst.Comparison, cst.Lambda, cst.BaseString, cst.BaseNumber)):
            return _EMPTY
        if isinstance(node, cst.IfExp):
            return self.flow(node.body) | self.flow(node.orelse)
        result = _EMPTY
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

    def _attribute(self, node: cst.Attribute) -> _Flow:
        attr = node.attr.value
        if attr in CUT_ATTRIBUTES:
            return _cut(node, CUT_ATTRIBUTES[attr], self.flow(node.value))
        if attr in NON_DIFFERENTIABLE_ATTRIBUTES:
            return _EMPTY
        if self_attribute(node) is not None:
            return self._self_root(attr, used=False)
        return self.flow(node.value)

    def _call(self, node: cst.Call) -> _Flow:
        func = node.func
        name = self.index.call_name(node)
        if name in NON_DIFFERENTIABLE_FUNCTIONS:
            return _EMPTY
        if name in TENSOR_REWRAPS and node.args:
            return _cut(node, "torch.tensor(...)", self.flow(node.args[0].value))
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
            return _EMPTY
        if isinstance(func, cst.Name):
            if func.value == "self":
                return self._self_root("self", used=True) | args
            return self.env.get(func.value, _EMPTY) | args  # `layer(x)` for a loop's layer
        if not isinstance(func, cst.Attribute):
            return self.flow(func) | args
        method = func.attr.value
        if self_attribute(func) is not None:
            return self._self_root(method, used=True) | args  # `self.fc(x)`, `self.encode(x)`
        if method in CUT_METHODS and not node.args:
            return _cut(node, CUT_METHODS[method], self.flow(func.value))
        if method in NON_DIFFERENTIABLE_METHODS:
            return _EMPTY
        receiver = func.value
        attr = self_attribute(receiver)
        own = self._self_root(attr, used=True) if attr is not None else self.flow(receiver)
        return own if method in SHAPE_ARGUMENT_METHODS else own | args

    def _binary(self, node: cst.BinaryOperation) -> _Flow:
        terms = _additive_terms(node)
        if len(terms) > 1 and _is_straight_through(terms):
            result = _EMPTY
            for term in terms:
                if not _is_detach(term):
                    result = result | self.flow(term)
            return result  # the straight-through estimator: the cut is the point
        if isinstance(node.operator, TARGET_OPERATORS):
            return self._operands([node.left, node.right], inputs=True)
        return self.flow(node.left) | self.flow(node.right)

    def _operands(self, operands: Sequence[cst.BaseExpression], inputs: bool = False) -> _Flow:
        """Union of the operands; a detached one compared with a live one is a target (with
        `inputs`, an activation handed to forward() counts as live)."""
        flows = [self.flow(op) for op in operands]
        if len(operands) > 1 and any(
            not r.startswith(_INPUT) or inputs for flow in flows for r in flow.live
        ):
            flows = [_EMPTY if _is_detach(op) else flow for op, flow in zip(operands, flows)]
        result = _EMPTY
        for flow in flows:
            result = result | flow
        return result

    def _self_root(self, attr: str, used: bool) -> _Flow:
        """`self.<attr>` as a source of gradient: a submodule, a parameter, a method."""
        if attr in self.frozen or is_stop_gradient_name(attr):
            return _EMPTY  # frozen or stop-gradient networks are meant to be constant
        value = self.info.attrs.get(attr)
        if value is not None:
            if not isinstance(value, cst.Call):
                return _EMPTY  # `self.eps = eps`, `self.scale = dim ** -0.5`
            if not self._is_trainable(value):
                return _EMPTY  # a plain tensor or a table, not a parameter
            return _Flow(frozenset({attr}))
        if used or re.search(r"weight|bias|embed|token|param|codebook", attr):
            return _Flow(frozenset({attr}))
        return _EMPTY

    def _is_trainable(self, value: cst.Call) -> bool:
        """`nn.Linear(...)`, `nn.Parameter(...)`, `Block(...)`, `build_backbone(cfg)`."""
        if layer_kind(self.index, value) is not None:
            return True
        name = self.index.call_name(value)
        if name is not None and (name.startswith("torch.") and not name.startswith("torch.nn.")):
            return False  # torch.zeros(...), torch.tensor(...): a plain tensor
        bare = _bare(value.func) or ""
        if _CAPWORDS.match(bare):
            return True  # a class we cannot see: likely a submodule
        return any(part in bare.lower() for part in MODEL_FACTORY_FRAGMENTS)


def _cut(node: cst.CSTNode, operation: str, inner: _Flow) -> _Flow:
    if not inner.live:
        return inner
    known = {root for root, _ in inner.cuts}
    new = tuple((root, Cut(node, operation)) for root in sorted(inner.live) if root not in known)
    return _Flow(frozenset(), inner.cuts + new)


def _is_detach(node: cst.CSTNode) -> bool:
    return _is_bare_method_call(node, "detach")


def _additive_terms(node: cst.BaseExpression) -> list[cst.BaseExpression]:
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, (cst.Add, cst.Subtract)):
        return _additive_terms(node.left) + _additive_terms(node.right)
    return [node]


def _text(node: cst.CSTNode) -> str:
    code = cst.Module([]).code_for_node(node)
    return re.sub(r"\s+", "", code).strip("()")


def _is_straight_through(terms: list[cst.BaseExpression]) -> bool:
    """`x + (y - x).detach()`, `y_hard - y_soft.detach() + y_soft`: a term reappears detached."""
    plain = {_text(t) for t in terms if not _is_detach(t)}
    for term in terms:
        if _is_detach(term):
            inner = cst.ensure_type(cst.ensure_type(term, cst.Call).func, cst.Attribute).value
            if {_text(t) for t in _additive_terms(inner)} & plain:
                return True
    return False


def frozen_attributes(info: ModuleClass) -> set[str] | None:
    """Submodules frozen in the class (`self.backbone.requires_grad_(False)`, `.eval()`,
    `p.requires_grad = False` over `self.x.parameters()`); None when `self` itself is."""
    frozen: set[str] = set()
    for call in findall(info.node, cst.Call):
        call = cst.ensure_type(call, cst.Call)
        func = call.func
        if not isinstance(func, (cst.Attribute, cst.Name)):
            continue
        bare = _bare(func) or ""
        if isinstance(func, cst.Attribute) and bare in FREEZE_METHODS:
            off = bool(call.args) and _is_name(call.args[0].value, "False")
            if bare != "eval" and not off:
                continue
            owner = _self_root_name(func.value)
            if owner == "self":
                return None
            if owner is not None:
                frozen.add(owner)
        elif "freeze" in bare.lower():
            for arg in call.args:
                owner = _self_root_name(arg.value)
                if owner is not None and owner != "self":
                    frozen.add(owner)
    for loop in findall(info.node, cst.For):
        loop = cst.ensure_type(loop, cst.For)
        if not any(_turns_off_requires_grad(a) for a in findall(loop.body, cst.Assign)):
            continue
        for call in findall(loop.iter, cst.Call):
            func = cst.ensure_type(call, cst.Call).func
            if isinstance(func, cst.Attribute) and "parameters" in func.attr.value:
                owner = _self_root_name(func.value)
                if owner == "self":
                    return None
                if owner is not None:
                    frozen.add(owner)
    return frozen


def _turns_off_requires_grad(node: cst.CSTNode) -> bool:
    """`p.requires_grad = False` (a single target; `a = b = False` is left alone)."""
    if not isinstance(node, cst.Assign) or len(node.targets) != 1:
        return False
    target = node.targets[0].target
    return (
        isinstance(target, cst.Attribute)
        and target.attr.value == "requires_grad"
        and _is_name(node.value, "False")
    )


def _self_root_name(node: cst.BaseExpression) -> str | None:
    """`x` for `self.x.y.z`, `self` for `self`, else None."""
    text = dotted_name(node)
    if text is None or not (text == "self" or text.startswith("self.")):
        return None
    parts = text.split(".")
    return parts[1] if len(parts) > 1 else "self"


# -- hand-written backward passes ------------------------------------------------------------

AUTOGRAD_FUNCTION_BASES = frozenset(
    {
        "torch.autograd.Function",
        "torch.autograd.function.Function",
        "torch.autograd.function.InplaceFunction",
    }
)
GRADCHECK_NAMES = frozenset({"gradcheck", "gradgradcheck"})


def autograd_functions(index: TorchIndex) -> dict[str, cst.ClassDef]:
    """`torch.autograd.Function` subclasses defined in the file (local chains included)."""
    found = _FUNCTIONS.get(index)
    if found is not None:
        return found
    found = {}
    changed = True
    while changed:
        changed = False
        for name, node in index.classes.items():
            if name in found:
                continue
            for base in node.bases:
                qualified = index.qualified(base.value)
                if qualified in AUTOGRAD_FUNCTION_BASES or (
                    qualified is None and dotted_name(base.value) in found
                ):
                    found[name] = node
                    changed = True
                    break
    _FUNCTIONS[index] = found
    return found


_FUNCTIONS: PerFile[dict[str, cst.ClassDef]] = PerFile("graph._FUNCTIONS")


def is_gradcheck_call(index: TorchIndex, node: cst.Call) -> bool:
    """`torch.autograd.gradcheck(...)`, `gradgradcheck(...)`, `torch.testing...gradcheck`."""
    name = index.call_name(node) or dotted_name(node.func) or ""
    return name.rsplit(".", 1)[-1] in GRADCHECK_NAMES


def mentioned_names(node: cst.CSTNode) -> set[str]:
    """Every plain name in an expression (`MyFn` in `lambda x: MyFn.apply(x, 2)`)."""
    return {cst.ensure_type(n, cst.Name).value for n in findall(node, cst.Name)}


def is_pass_through_backward(function: cst.FunctionDef) -> bool:
    """`return grad_output` / `grad_output.clone()` (with Nones), or `raise NotImplementedError`:
    nothing hand-derived to check."""
    params = [p.name.value for p in function.params.params][1:]  # after ctx
    strings = (cst.SimpleString, cst.ConcatenatedString)
    body = [s for s in getattr(function.body, "body", ()) if not _is_string_line(s, strings)]
    while len(body) > 1 and _is_name_assignment(body[0]):
        assign = cst.ensure_type(_lone_statement(body[0]), cst.Assign)
        if not _is_gradient_copy(assign.value, params):
            return False
        params.append(cst.ensure_type(assign.targets[0].target, cst.Name).value)
        body = body[1:]  # `grad_input = grad_output.clone()`
    if len(body) != 1 or not isinstance(body[0], cst.SimpleStatementLine):
        return False
    statement = body[0].body[0]
    if isinstance(statement, cst.Raise):
        return statement.exc is not None and "NotImplementedError" in _text(statement.exc)
    if not isinstance(statement, cst.Return) or statement.value is None:
        return False
    value = statement.value
    parts = [e.value for e in value.elements] if isinstance(value, cst.Tuple) else [value]
    return all(_is_name(part, "None") or _is_gradient_copy(part, params) for part in parts)


def _is_name_assignment(statement: cst.CSTNode) -> bool:
    """A line `name = ...` with exactly one target."""
    lone = _lone_statement(statement)
    return (
        isinstance(lone, cst.Assign)
        and len(lone.targets) == 1
        and isinstance(lone.targets[0].target, cst.Name)
    )


def _is_gradient_copy(node: cst.BaseExpression, params: list[str]) -> bool:
    """`grad_output` or `grad_output.clone()` for an incoming gradient."""
    if _is_bare_method_call(node, "clone"):
        node = cst.ensure_type(cst.ensure_type(node, cst.Call).func, cst.Attribute).value
    return isinstance(node, cst.Name) and node.value in params


def is_test_path(path: str) -> bool:
    """Files under tests/ or named test_*.py / *_test.py / conftest.py."""
    pure = PurePath(path)
    name = pure.name
    return (
        name.startswith("test_")
        or name.endswith("_test.py")
        or name == "conftest.py"
        or any(part in ("tests", "test", "testing") for part in pure.parts[:-1])
    )


# -- containers of layers ----------------------------------------------------------------------

MODULE_CONTAINERS = frozenset(
    {
        tables.MODULE_LIST,
        tables.MODULE_DICT,
        tables.SEQUENTIAL,
        "torch.nn.ParameterList",
        "torch.nn.ParameterDict",
    }
)
# Calls that register what they are given: containers and `add_module`-style methods.
REGISTERING_CALLS = frozenset(
    {
        "ModuleList",
        "ModuleDict",
        "Sequential",
        "ParameterList",
        "ParameterDict",
        "add_module",
        "register_module",
        "register_parameter",
        "register_buffer",
        "setattr",
    }
)
GROWTH_METHODS = frozenset({"append", "extend", "insert", "update", "setdefault"})
# Packages whose CapWords callables are nn.Module classes (torch itself: only torch.nn).
LAYER_PACKAGES = (
    "torch.nn.",
    "torch.ao.nn.",
    "torchvision.ops.",
    "timm.layers.",
    "timm.models.layers.",
    "torch_geometric.nn.",
)
NOT_LAYERS = frozenset({"Parameter", "Buffer", "UninitializedParameter", "UninitializedBuffer"})
PARAMETER_FREE = (tables.ACTIVATION_MODULES - {"torch.nn.PReLU"}) | tables.TRANSPARENT_LAYERS
_CAPWORDS = re.compile(r"_?[A-Z][A-Za-z0-9]*[a-z][A-Za-z0-9]*$")


def layer_kind(index: TorchIndex, node: cst.BaseExpression) -> str | None:
    """ "layers" for a call that builds an nn.Module holding parameters, "parameters" for
    `nn.Parameter(...)`, None for anything else or anything unsure."""
    if isinstance(node, cst.IfExp):
        return layer_kind(index, node.body) or layer_kind(index, node.orelse)
    if not isinstance(node, cst.Call):
        return None
    name = index.call_name(node)
    if name == tables.PARAMETER:
        return "parameters"
    if name is None:
        text = dotted_name(node.func)
        return "layers" if text in index.module_classes else None  # a local nn.Module class
    last = name.rsplit(".", 1)[-1]
    if last in NOT_LAYERS or name in PARAMETER_FREE or last.endswith("Loss"):
        return None  # parameter-free layers and losses lose nothing when unregistered
    if name in tables.WEIGHT_NORM_WRAPPERS:
        return "layers"
    if not _CAPWORDS.match(last) or ".utils." in name:
        return None
    if name.startswith(LAYER_PACKAGES) or name.startswith("."):
        return "layers"  # torch layers, and classes imported from the project itself
    return None


def container_items(node: cst.BaseExpression) -> tuple[str, list[cst.BaseExpression]] | None:
    """("list" | "tuple" | "dict", items) for a literal container or comprehension."""
    if isinstance(node, (cst.List, cst.Tuple)):
        kind = "list" if isinstance(node, cst.List) else "tuple"
        return kind, [e.value for e in node.elements]
    if isinstance(node, cst.Dict):
        return "dict", [e.value for e in node.elements if isinstance(e, cst.DictElement)]
    if isinstance(node, (cst.ListComp, cst.GeneratorExp)):
        return "list", [node.elt]
    if isinstance(node, cst.DictComp):
        return "dict", [node.value]
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Multiply):
        return container_items(node.left) or container_items(node.right)
    if (
        isinstance(node, cst.Call)
        and isinstance(node.func, cst.Name)
        and node.func.value in ("list", "dict", "tuple")
    ):
        if not node.args:
            return node.func.value, []
        inner = container_items(node.args[0].value)
        return (node.func.value, inner[1]) if inner is not None else None
    return None


def registering_mentions(statements: Sequence[cst.CSTNode]) -> set[str]:
    """Names and `self.x` attributes handed to a registering call (`nn.ModuleList(self.x)`,
    `nn.Sequential(*layers)`, `self.add_module(n, block)`), or iterated by a loop that
    registers (`for i, b in enumerate(self.blocks): self.add_module(str(i), b)`)."""
    found: set[str] = set()
    for node in statements:
        for call in findall(node, cst.Call):
            call = cst.ensure_type(call, cst.Call)
            bare = _bare(call.func)
            if bare is None or not (bare in REGISTERING_CALLS or _CAPWORDS.match(bare)):
                continue
            for arg in call.args:
                found |= _mentions(arg.value)
        for loop in findall(node, cst.For):
            loop = cst.ensure_type(loop, cst.For)
            calls = [cst.ensure_type(c, cst.Call) for c in findall(loop.body, cst.Call)]
            if any(_bare(c.func) in REGISTERING_CALLS for c in calls):
                found |= _mentions(loop.iter)
    return found


def _bare(func: cst.BaseExpression) -> str | None:
    if isinstance(func, cst.Attribute):
        return func.attr.value
    if isinstance(func, cst.Name):
        return func.value
    return None


def _mentions(node: cst.CSTNode) -> set[str]:
    names = mentioned_names(node)
    attrs = {f"self.{a.attr.value}" for a in _self_attributes(node)}
    return names | attrs


def _self_attributes(node: cst.CSTNode) -> Iterator[cst.Attribute]:
    for found in findall(node, cst.Attribute):
        found = cst.ensure_type(found, cst.Attribute)
        if _is_name(found.value, "self"):
            yield found
