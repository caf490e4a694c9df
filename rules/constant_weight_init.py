from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import libcst as cst

from gradlint import Invalid, Rule, Severity, Valid
from gradlint.semantics import init, layers, tables
from gradlint.semantics.index import ModuleClass, TorchIndex, self_attribute
from gradlint.semantics.names import child_blocks, dotted_name
from gradlint.semantics.nodes import walk_visitor

MODULE_ITERATORS = frozenset({"modules", "children", "named_modules", "named_children"})
WEIGHT_KINDS = (layers.DENSE, layers.RNN, layers.EMBEDDING)


class ConstantWeightInit(Rule):
    """
    ## What it does
    Flags weights of Linear/Conv/RNN/Embedding layers set to zero or another constant
    (`nn.init.zeros_/ones_/constant_`, `.fill_()`, `.zero_()`, `nn.Parameter(torch.zeros(...))`
    used as a weight matrix).

    ## Why is this bad?
    If every weight of a layer starts equal, every unit computes the same output and receives
    the same gradient, so the units stay identical forever: symmetry is never broken and the
    layer behaves like a single neuron. With zero weights in a hidden layer, the gradient to
    all earlier layers is zero as well. Draw weights at random instead: Kaiming/He for ReLU,
    Xavier/Glorot for tanh/sigmoid.

    Applied to every layer (an `apply()` callback or a loop over `model.modules()` guarded by
    `isinstance(m, nn.Linear)`) this is an error. Biases and normalization layers' weights
    may start constant, and zero-initialising the *last* layer of a residual branch or an
    output head is a known good practice (the block starts as the identity; the gradient
    still reaches it from the loss): a single layer is flagged only when its output feeds
    another weight layer in `forward()` with no residual add in the module.
    """

    CODE = "GL102"
    SEVERITY = Severity.WARNING
    MESSAGE = (
        "`{target}` is set to a constant; all units of the layer get the same gradient and "
        "never differentiate (symmetry is never broken){scope}"
    )
    HINT = "Use a random init: nn.init.kaiming_normal_ for ReLU, nn.init.xavier_uniform_ for tanh/sigmoid"

    VALID = [
        Valid("""
            from torch import nn
            def init_weights(m):
                if isinstance(m, nn.Linear):
                    nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                    nn.init.zeros_(m.bias)
            model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
            model.apply(init_weights)
        """),
        # torchvision's idiom: normalization layers start at weight 1, bias 0
        Valid("""
            import torch.nn as nn
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    for m in self.modules():
                        if isinstance(m, nn.Conv2d):
                            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                            nn.init.constant_(m.weight, 1)
                            nn.init.constant_(m.bias, 0)
        """),
        # zero-init residual: the last BN of each block (not resolvable, and a norm anyway)
        Valid("""
            from torch import nn
            def zero_init(model):
                for m in model.modules():
                    if isinstance(m, Bottleneck):
                        nn.init.constant_(m.bn3.weight, 0)
        """),
        # an output head zero-initialised on purpose
        Valid("""
            from torch import nn
            class Classifier(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.body = nn.Linear(16, 16)
                    self.head = nn.Linear(16, 4)
                    nn.init.zeros_(self.head.weight)
                def forward(self, x):
                    return self.head(self.body(x).relu())
        """),
        # the last projection of a residual branch (adaLN-zero / zero-init residual style)
        Valid("""
            from torch import nn
            class Block(nn.Module):
                def __init__(self, d):
                    super().__init__()
                    self.fc1 = nn.Linear(d, 4 * d)
                    self.fc2 = nn.Linear(4 * d, d)
                    nn.init.zeros_(self.fc2.weight)
                    self.fc3 = nn.Linear(d, d)
                def forward(self, x):
                    x = x + self.fc2(self.fc1(x).relu())
                    return self.fc3(x)
        """),
        # timm/HF: tokens start at zero and are drawn again later; not a weight matrix
        Valid("""
            import torch
            from torch import nn
            class ViT(nn.Module):
                def __init__(self, dim):
                    super().__init__()
                    self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
                    self.scale = nn.Parameter(torch.ones(dim))
                def forward(self, x):
                    return torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1) * self.scale
        """),
        # a custom layer that allocates zeros and then draws the weights in reset_parameters
        Valid("""
            import math
            import torch
            import torch.nn.functional as F
            from torch import nn
            class MyLinear(nn.Module):
                def __init__(self, n_in, n_out):
                    super().__init__()
                    self.weight = nn.Parameter(torch.zeros(n_out, n_in))
                    nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
                def forward(self, x):
                    return F.linear(x, self.weight)
        """),
        # padding row of an embedding, and biases, zeroed by HF-style _init_weights
        Valid("""
            from torch import nn
            class PreTrained(nn.Module):
                def _init_weights(self, module):
                    if isinstance(module, nn.Linear):
                        module.weight.data.normal_(mean=0.0, std=0.02)
                        if module.bias is not None:
                            module.bias.data.zero_()
                    elif isinstance(module, nn.Embedding):
                        module.weight.data.normal_(mean=0.0, std=0.02)
                        module.weight.data[module.padding_idx].zero_()
                    elif isinstance(module, nn.LayerNorm):
                        module.bias.data.zero_()
                        module.weight.data.fill_(1.0)
        """),
        # timm: only the classifier head is zeroed, picked by name inside the sweep
        Valid("""
            from torch import nn
            def init_weight_jax(module, name, head_bias=0.0):
                if isinstance(module, nn.Linear):
                    if name.startswith("head"):
                        nn.init.zeros_(module.weight)
                        nn.init.constant_(module.bias, head_bias)
                    else:
                        nn.init.xavier_uniform_(module.weight)
        """),
        Valid("""
            from torch import nn
            class NfNet(nn.Module):
                def __init__(self, cfg):
                    super().__init__()
                    for n, m in self.named_modules():
                        if "fc" in n and isinstance(m, nn.Linear):
                            nn.init.zeros_(m.weight)
        """),
        # not torch: NumPy arrays named weight
        Valid("""
            import numpy as np
            class Perceptron:
                def __init__(self):
                    self.weight = np.zeros((3, 3))
                    self.weight.fill(0)
        """),
    ]
    # transformers: a zero placeholder that the model's _init_weights draws again
    VALID.append(
        Valid("""
        import torch
        from torch import nn
        class Backbone(nn.Module):
            def __init__(self, d_in, d_out):
                super().__init__()
                self.text_projection = nn.Parameter(torch.zeros(d_in, d_out))
            def forward(self, x):
                return x @ self.text_projection
        class PreTrainedModel(nn.Module):
            def _init_weights(self, module):
                if isinstance(module, Backbone):
                    nn.init.normal_(module.text_projection, std=0.02)
    """)
    )

    INVALID = [
        Invalid(
            """
            from torch import nn
            def init_weights(m):
                if isinstance(m, nn.Linear):
                    nn.init.zeros_(m.weight)
                    nn.init.zeros_(m.bias)
            model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
            model.apply(init_weights)
        """,
            line=4,
            message="every Linear layer",
        ),
        Invalid(
            """
            import torch.nn as nn
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    for m in self.modules():
                        if isinstance(m, (nn.Conv2d, nn.Linear)):
                            nn.init.constant_(m.weight, 0.5)
        """,
            line=7,
        ),
        Invalid(
            """
            from torch import nn
            from torch.nn.init import zeros_
            class MLP(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc1 = nn.Linear(784, 128)
                    self.fc2 = nn.Linear(128, 10)
                    zeros_(self.fc1.weight)
                def forward(self, x):
                    return self.fc2(self.fc1(x).relu())
        """,
            line=8,
            message="hidden",
        ),
        Invalid(
            """
            import torch
            from torch import nn
            class RNNModel(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.rnn = nn.LSTM(32, 64)
                    self.out = nn.Linear(64, 5)
                    with torch.no_grad():
                        self.rnn.weight_hh_l0.data.fill_(0.01)
                def forward(self, x):
                    h, _ = self.rnn(x)
                    return self.out(h)
        """,
            line=9,
        ),
        Invalid(
            """
            import torch
            import torch.nn.functional as F
            from torch import nn
            class Layer(nn.Module):
                def __init__(self, n_in, n_out):
                    super().__init__()
                    self.weight = nn.Parameter(torch.zeros(n_out, n_in))
                def forward(self, x):
                    return F.linear(x, self.weight)
        """,
            line=7,
        ),
        Invalid(
            """
            from torch import nn
            class Model(nn.Module):
                def init_weights(self):
                    for name, module in self.named_modules():
                        if isinstance(module, nn.Linear):
                            module.weight.data.zero_()
        """,
            line=6,
        ),
    ]

    def visit_Module(self, node: cst.Module) -> None:
        self._random_inits: set[tuple[str, str]] = set()
        self._drawn_names: set[str] = set()
        self._walk(node.body, _Context())
        for info in self.index.module_classes.values():
            self._check_parameters(info)

    # -- in-place init calls ------------------------------------------------------------

    def _walk(self, statements: Sequence[cst.CSTNode], ctx: _Context) -> None:
        for statement in statements:
            if isinstance(statement, cst.SimpleStatementLine):
                for small in statement.body:
                    if isinstance(small, cst.Expr):
                        self._check_call(small.value, ctx)
            elif isinstance(statement, cst.ClassDef):
                info = self.index.module_classes.get(statement.name.value)
                owner = info if info is not None and info.node is statement else None
                self._walk(_block(statement), replace(ctx, cls=owner))
            elif isinstance(statement, cst.FunctionDef):
                params = {p.name.value for p in statement.params.params} - {"self"}
                self._walk(_block(statement), replace(ctx, params=frozenset(params)))
            elif isinstance(statement, cst.For):
                self._walk(
                    _block(statement),
                    replace(ctx, module_vars=ctx.module_vars | _module_loop_var(statement)),
                )
            elif isinstance(statement, cst.If):
                guards = {**ctx.guards, **init.isinstance_guard(self.index, statement.test)}
                narrowed = ctx.narrowed or not init.is_pure_isinstance(statement.test)
                self._walk(_block(statement), replace(ctx, guards=guards, narrowed=narrowed))
                if statement.orelse is not None:
                    for block in list(child_blocks(statement))[1:]:
                        self._walk(block, ctx)
            elif isinstance(statement, cst.BaseCompoundStatement):
                for block in child_blocks(statement):
                    self._walk(block, ctx)

    def _check_call(self, node: cst.BaseExpression, ctx: _Context) -> None:
        call = init.init_call(self.index, node)
        if call is None:
            return  # not an initialisation
        target = init.strip_data(call.target)
        if isinstance(target, cst.Attribute) and self_attribute(target) is None:
            self._drawn_names.add(target.attr.value)  # `module.text_projection` in _init_weights
        weight = init.weight_of(call.target)
        if weight is None:
            return  # biases, padding rows, plain tensors
        owner, attr = weight
        if not call.is_constant:
            if ctx.cls is not None and self_attribute(init.strip_data(call.target)) is not None:
                self._random_inits.add((ctx.cls.name, attr))
            return
        variable = dotted_name(owner)
        if variable is not None and variable in ctx.guards:
            types = ctx.guards[variable]
            if not (variable in ctx.params or variable in ctx.module_vars):
                return  # a specific object, not a sweep over the model's layers
            if ctx.narrowed:
                return  # another condition picks some layers (`if name.startswith("head")`)
            if not types or not all(t in tables.WEIGHT_LAYERS for t in types):
                return  # normalization layers, or types we cannot resolve
            names = "/".join(sorted(t.rsplit(".", 1)[-1] for t in types))
            scope = f"; this runs for every {names} layer of the model"
            self.report(node, target=f"{variable}.{attr}", scope=scope, severity=Severity.ERROR)
            return
        layer_attr = self_attribute(owner)
        if layer_attr is None or ctx.cls is None or layer_attr not in ctx.cls.attrs:
            return  # a layer we cannot see being built
        if layers.classify(self.index, ctx.cls.attrs[layer_attr]).kind not in WEIGHT_KINDS:
            return  # normalization or custom layers
        if _is_output_or_residual_end(ctx.cls, layer_attr, self.index):
            return  # output head / last layer of a residual branch: the known-good idiom
        self.report(node, target=f"self.{layer_attr}.{attr}", scope=" (hidden layer)")

    # -- nn.Parameter(torch.zeros(...)) used as a weight matrix ---------------------------

    def _check_parameters(self, info: ModuleClass) -> None:
        matrices: set[str] | None = None  # found on first need: it walks forward
        for attr, value in info.attrs.items():
            if (info.name, attr) in self._random_inits:
                continue  # drawn at random later
            if attr in self._drawn_names:
                continue  # initialised on purpose elsewhere in the file (HF `_init_weights`)
            if not isinstance(value, cst.Call) or self.index.call_name(value) != tables.PARAMETER:
                continue  # not nn.Parameter(...)
            if not value.args:
                continue
            tensor = value.args[0].value
            if (
                isinstance(tensor, cst.Call)
                and self.index.call_name(tensor) in tables.CONSTANT_TENSOR_FACTORIES
                and _rank(tensor) >= 2
            ):
                if matrices is None:
                    matrices = _matrix_operands(info)
                if attr in matrices:  # used as a weight matrix
                    self.report(value, target=f"self.{attr}", scope="")


@dataclass(frozen=True)
class _Context:
    cls: ModuleClass | None = None
    params: frozenset[str] = frozenset()
    module_vars: frozenset[str] = frozenset()
    guards: dict[str, frozenset[str]] = field(default_factory=dict)
    narrowed: bool = False  # an `if` other than an isinstance() test encloses the code


def _block(statement: cst.BaseCompoundStatement) -> Sequence[cst.CSTNode]:
    return next(iter(child_blocks(statement)), [])


def _module_loop_var(loop: cst.For) -> frozenset[str]:
    """`m` in `for m in model.modules()` / `for name, m in self.named_modules()`."""
    it = loop.iter
    if not (isinstance(it, cst.Call) and isinstance(it.func, cst.Attribute)):
        return frozenset()
    if it.func.attr.value not in MODULE_ITERATORS:
        return frozenset()
    target: cst.BaseExpression = loop.target
    if isinstance(target, cst.Tuple) and target.elements:
        target = target.elements[-1].value
    return frozenset({target.value}) if isinstance(target, cst.Name) else frozenset()


class _SelfCalls(cst.CSTVisitor):
    """`self.<attr>(...)` calls in execution order (inner calls first), and residual adds."""

    def __init__(self) -> None:
        self.order: list[str] = []
        self.has_residual = False

    def leave_Call(self, original_node: cst.Call) -> None:
        attr = self_attribute(original_node.func)
        if attr is not None:
            self.order.append(attr)

    def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
        if isinstance(node.operator, cst.Add):
            self.has_residual = True

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        if isinstance(node.operator, cst.AddAssign):
            self.has_residual = True


def _is_output_or_residual_end(info: ModuleClass, attr: str, index: TorchIndex) -> bool:
    if info.forward is None:
        return True  # no forward to follow: cannot tell a hidden layer from a head
    calls = _SelfCalls()
    walk_visitor(info.forward, calls)
    if attr not in calls.order or calls.has_residual:
        return True
    weight_calls = [
        a
        for a in calls.order
        if a in info.attrs and layers.classify(index, info.attrs[a]).kind in WEIGHT_KINDS
    ]
    return bool(weight_calls) and weight_calls[-1] == attr


class _MatrixUse(cst.CSTVisitor):
    """`self.<attr>` used as the weight of F.linear/conv, matmul/mm/bmm or the `@` operator."""

    FUNCTIONS = frozenset(
        {"linear", "conv1d", "conv2d", "conv3d", "matmul", "mm", "bmm", "bilinear"}
    )

    def __init__(self) -> None:
        self.attrs: set[str] = set()

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        name = func.attr.value if isinstance(func, cst.Attribute) else getattr(func, "value", None)
        if name in self.FUNCTIONS:
            for arg in node.args:
                attr = self_attribute(arg.value)
                if attr is not None:
                    self.attrs.add(attr)

    def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
        if isinstance(node.operator, cst.MatrixMultiply):
            for side in (node.left, node.right):
                attr = self_attribute(side)
                if attr is not None:
                    self.attrs.add(attr)


def _matrix_operands(info: ModuleClass) -> set[str]:
    if info.forward is None:
        return set()
    use = _MatrixUse()
    walk_visitor(info.forward, use)
    return use.attrs


def _rank(call: cst.Call) -> int:
    """Number of dimensions of `torch.zeros(a, b)` / `torch.zeros((a, b))`; 0 if unknown."""
    positional = [a.value for a in call.args if a.keyword is None]
    if positional and isinstance(positional[0], (cst.Tuple, cst.List)):
        return len(positional[0].elements)
    if isinstance(call.func, cst.Attribute) and call.func.attr.value.startswith("full"):
        return 0  # torch.full(size, value): size is not literal here
    return len(positional)
