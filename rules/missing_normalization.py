from __future__ import annotations

import libcst as cst

from gradlint import Invalid, Rule, Severity, Valid
from gradlint.semantics import layers, tables
from gradlint.semantics.index import ModuleClass, TorchIndex, self_attribute
from gradlint.semantics.nodes import walk_visitor


class MissingNormalization(Rule):
    """
    ## What it does
    Flags a plain stack of six or more Linear/Conv layers with activations between them and
    no normalization layer (BatchNorm, LayerNorm, GroupNorm, InstanceNorm, RMSNorm,
    LocalResponseNorm, weight or spectral norm) and no residual connection: in
    `nn.Sequential(...)` (blocks returned by a helper function, `vgg_block(64, 128)`, are
    opened), in loop-built layer lists, and in a module's `forward()`, where a trunk of
    convolutions (or of Linear layers) chained through several `nn.Sequential` attributes
    counts as one stack; a conv trunk and the Linear head after it are judged apart. In
    `forward()` each layer must take the previous one's output: side-by-side branches, task
    heads, early exits and dense `torch.cat([self.block(x), x])` skips are not one stack.

    ## Why is this bad?
    Each layer rescales its input by its weights. Across many layers the scale of the
    activations, and of the gradient flowing back, drifts geometrically: it vanishes or
    explodes unless the initialisation is exactly right and stays right during training.
    Normalization layers re-centre and re-scale every layer's input (BatchNorm over the
    batch, LayerNorm over the features of one sample: the choice for small or variable
    batches, RNNs and transformers), and residual connections (`x + f(x)`) give the
    gradient an identity path. Deep plain stacks train slowly or not at all without them.

    ## Options
    `depth` (default 6): how many weight layers in one plain stack trigger the rule.
    """

    CODE = "GL103"
    SEVERITY = Severity.WARNING
    PREVIEW = True  # below 9 in 10 right on labelled real code (benchmarks/quality)
    MESSAGE = (
        "{depth} {kind} layers are stacked with activations but no normalization layer or "
        "residual connection; activation and gradient scales drift with depth"
    )
    HINT = "Insert nn.BatchNorm*/nn.LayerNorm after each layer, or add residual connections"
    OPTIONS = {"depth": 6}

    VALID = [
        Valid("""
            from torch import nn
            model = nn.Sequential(
                nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(),
                nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(),
                nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(),
                nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(),
                nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(),
                nn.Linear(512, 10),
            )
        """),
        # the classic small MLP / VGG classifier head: below the depth
        Valid("""
            import torch.nn as nn
            classifier = nn.Sequential(
                nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(),
                nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(),
                nn.Linear(4096, 1000),
            )
        """),
        # residual blocks: the gradient has an identity path
        Valid("""
            from torch import nn
            class ResMLP(nn.Module):
                def __init__(self, d):
                    super().__init__()
                    self.layers = nn.ModuleList([nn.Linear(d, d) for _ in range(12)])
                def forward(self, x):
                    for layer in self.layers:
                        x = x + layer(x).relu()
                    return x
        """),
        # LayerNorm in each loop pass
        Valid("""
            from torch import nn
            layers = []
            for _ in range(10):
                layers.extend([nn.Linear(64, 64), nn.LayerNorm(64), nn.GELU()])
            net = nn.Sequential(*layers)
        """),
        # weight normalization wraps each layer
        Valid("""
            from torch import nn
            from torch.nn.utils.parametrizations import weight_norm
            net = nn.Sequential(
                weight_norm(nn.Conv1d(8, 8, 3)), nn.ReLU(), weight_norm(nn.Conv1d(8, 8, 3)), nn.ReLU(),
                weight_norm(nn.Conv1d(8, 8, 3)), nn.ReLU(), weight_norm(nn.Conv1d(8, 8, 3)), nn.ReLU(),
                weight_norm(nn.Conv1d(8, 8, 3)), nn.ReLU(), weight_norm(nn.Conv1d(8, 8, 3)),
            )
        """),
        # custom blocks may hold their own normalization: not a plain stack
        Valid("""
            from torch import nn
            from .blocks import ConvBlock
            net = nn.Sequential(ConvBlock(3, 64), ConvBlock(64, 64), ConvBlock(64, 128),
                                ConvBlock(128, 128), ConvBlock(128, 256), ConvBlock(256, 256))
        """),
        # a forward with normalization functions
        Valid("""
            import torch.nn.functional as F
            from torch import nn
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fcs = nn.ModuleList([nn.Linear(32, 32) for _ in range(8)])
                def forward(self, x):
                    for fc in self.fcs:
                        x = F.relu(F.layer_norm(fc(x), (32,)))
                    return x
        """),
        # six linear maps without any activation (a linear probe chain): not this rule
        Valid("""
            from torch import nn
            proj = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 8),
                                 nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 8))
        """),
    ]
    # torchvision's AlexNet: two separate stacks of 5 and 3 layers; each is judged where built
    VALID.append(
        Valid("""
        from torch import nn
        class AlexNet(nn.Module):
            def __init__(self):
                super().__init__()
                self.features = nn.Sequential(
                    nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
                    nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
                    nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=True),
                    nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True),
                    nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True),
                )
                self.classifier = nn.Sequential(
                    nn.Dropout(), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True),
                    nn.Dropout(), nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Linear(4096, 1000),
                )
            def forward(self, x):
                x = self.features(x)
                return self.classifier(x.flatten(1))
    """)
    )

    # transformers GroundingDINO: six projections of an attention block, applied in parallel
    VALID.append(
        Valid("""
        import torch
        from torch import nn
        class BiAttention(nn.Module):
            def __init__(self, d):
                super().__init__()
                self.q = nn.Linear(d, d)
                self.k = nn.Linear(d, d)
                self.v = nn.Linear(d, d)
                self.tv = nn.Linear(d, d)
                self.out_v = nn.Linear(d, d)
                self.out_t = nn.Linear(d, d)
            def forward(self, vision, text):
                q, k = self.q(vision), self.k(text)
                weights = torch.bmm(q, k.transpose(1, 2)).softmax(-1)
                out = torch.bmm(weights, self.v(text).relu())
                return self.out_v(out), self.out_t(self.tv(text))
    """)
    )

    # the same helper-built blocks, each normalised
    VALID.append(
        Valid("""
            import torch.nn as nn
            def double_conv(c_in, c_out):
                return nn.Sequential(
                    nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(),
                    nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(),
                )
            trunk = nn.Sequential(
                double_conv(3, 32), double_conv(32, 64), double_conv(64, 128), double_conv(128, 8)
            )
        """)
    )

    # a feature pyramid returning every level, task heads side by side, one block applied
    # to two inputs
    VALID.append(
        Valid("""
            import torch
            import torch.nn.functional as F
            from torch import nn
            def level(c_in, c_out):
                return nn.Sequential(nn.Conv2d(c_in, c_out, 3, 2), nn.LeakyReLU(0.1),
                                     nn.Conv2d(c_out, c_out, 3), nn.LeakyReLU(0.1))
            class Pyramid(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.one, self.two, self.three = level(3, 16), level(16, 32), level(32, 64)
                def forward(self, x):
                    f1 = self.one(x)
                    f2 = self.two(f1)
                    f3 = self.three(f2)
                    return [f1, f2, f3]
            class MultiTask(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.trunk = nn.Sequential(level(3, 16), level(16, 32))
                    self.seg = nn.Sequential(nn.Conv2d(32, 32, 3), nn.ReLU(), nn.Conv2d(32, 13, 1))
                    self.depth = nn.Sequential(nn.Conv2d(32, 32, 3), nn.ReLU(), nn.Conv2d(32, 1, 1))
                def forward(self, x):
                    h = self.trunk(x)
                    return self.seg(h), self.depth(h)
            class Branches(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.a, self.b, self.c = nn.Linear(1, 8), nn.Linear(1, 8), nn.Linear(1, 8)
                    self.d, self.e = nn.Conv1d(1, 8, 3), nn.Conv1d(1, 8, 3)
                    self.fc = nn.Linear(64, 8)
                    self.out = nn.Linear(8, 3)
                def forward(self, s):
                    parts = [
                        F.relu(self.a(s[:, 0])), F.relu(self.b(s[:, 1])), F.relu(self.c(s[:, 2])),
                        F.relu(self.d(s[:, 3:4])).flatten(1), F.relu(self.e(s[:, 4:5])).flatten(1),
                    ]
                    return self.out(F.relu(self.fc(torch.cat(parts, 1))))
            class Siamese(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.enc = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(),
                                             nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8))
                def forward(self, a, b):
                    return self.enc(a), self.enc(b)
        """)
    )

    INVALID = [
        Invalid(
            """
            from torch import nn
            model = nn.Sequential(
                nn.Linear(512, 512), nn.ReLU(),
                nn.Linear(512, 512), nn.ReLU(),
                nn.Linear(512, 512), nn.ReLU(),
                nn.Linear(512, 512), nn.ReLU(),
                nn.Linear(512, 512), nn.ReLU(),
                nn.Linear(512, 10),
            )
        """,
            line=2,
            message="6 Linear",
        ),
        Invalid(
            """
            import torch.nn as nn
            features = nn.Sequential(
                nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(inplace=True),
                nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
                nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(inplace=True),
                nn.Conv2d(128, 128, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
                nn.Conv2d(128, 256, 3, padding=1), nn.ReLU(inplace=True),
                nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True),
            )
        """,
            line=2,
            message="Conv2d",
        ),
        Invalid(
            """
            from torch import nn
            layers = []
            for i in range(8):
                layers.append(nn.Linear(128, 128))
                layers.append(nn.Tanh())
            model = nn.Sequential(*layers)
        """,
            line=3,
        ),
        Invalid(
            """
            from torch import nn
            class DeepMLP(nn.Module):
                def __init__(self, d):
                    super().__init__()
                    self.layers = nn.ModuleList([nn.Linear(d, d) for _ in range(10)])
                    self.head = nn.Linear(d, 1)
                def forward(self, x):
                    for layer in self.layers:
                        x = layer(x).relu()
                    return self.head(x)
        """,
            line=2,
        ),
        Invalid(
            """
            import torch.nn.functional as F
            from torch import nn
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.c1 = nn.Conv2d(1, 8, 3)
                    self.c2 = nn.Conv2d(8, 8, 3)
                    self.c3 = nn.Conv2d(8, 8, 3)
                    self.c4 = nn.Conv2d(8, 8, 3)
                    self.c5 = nn.Conv2d(8, 8, 3)
                    self.fc = nn.Linear(8, 10)
                def forward(self, x):
                    x = F.relu(self.c1(x))
                    x = F.relu(self.c2(x))
                    x = F.relu(self.c3(x))
                    x = F.relu(self.c4(x))
                    x = F.relu(self.c5(x))
                    return self.fc(x.flatten(1))
        """,
            line=3,
            message="Conv2d/Linear",
        ),
        # VGG-style blocks built by a helper, stacked in one Sequential
        Invalid(
            """
            import torch.nn as nn
            def double_conv(c_in, c_out):
                block = nn.Sequential(
                    nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(),
                    nn.Conv2d(c_out, c_out, 3, padding=1), nn.ReLU(),
                    nn.MaxPool2d(2),
                )
                return block
            trunk = nn.Sequential(
                double_conv(3, 32), double_conv(32, 64), double_conv(64, 128), double_conv(128, 8)
            )
        """,
            line=9,
            message="8 Conv2d",
        ),
        # conv blocks kept as attributes and chained in forward()
        Invalid(
            """
            from torch import nn
            class Vgg(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.b1 = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3))
                    self.b2 = nn.Sequential(nn.Conv2d(8, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3))
                    self.b3 = nn.Sequential(nn.Conv2d(8, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3))
                    self.head = nn.Linear(8, 10)
                def forward(self, x):
                    x = self.b1(x)
                    x = self.b3(self.b2(x))
                    return self.head(x.flatten(1))
        """,
            line=10,
            message="6 Conv2d",
        ),
    ]

    def visit_Call(self, node: cst.Call) -> None:
        stack = layers.outer_sequence(self.index, node)
        if stack is None:
            return  # not an outermost nn.Sequential literal, or its contents are unknowable
        self._check(node, stack)

    def visit_For(self, node: cst.For) -> None:
        built = layers.loop_built_stack(self.index, node)
        if built is not None:
            self._check(node, built.layers)

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        info = self.index.module_classes.get(node.name.value)
        if info is None or info.node is not node or info.forward is None:
            return  # only nn.Module classes with a forward() have a data path here
        found = _forward_stack(self.index, info)
        if found is None:
            return  # normalization, a residual add, or a path we cannot follow
        stack, composed = found
        self._check(composed or node.name, stack)  # a composed trunk: where forward() enters it

    def _check(self, node: cst.CSTNode, stack: list[layers.Layer]) -> None:
        if any(layer.kind == layers.NORM for layer in stack):
            return  # normalization somewhere in the stack
        run, has_activation = _plain_runs(stack)
        if len(run) >= self.options["depth"] and has_activation:
            kinds = "/".join(sorted({_short(self.index, layer) for layer in run}))
            self.report(node, depth=len(run), kind=kinds)


ATTENTION_FUNCTIONS = frozenset(
    {
        "torch.matmul",
        "torch.bmm",
        "torch.einsum",
        "torch.baddbmm",
        "torch.nn.functional.scaled_dot_product_attention",
        "torch.nn.functional.multi_head_attention_forward",
    }
)
ATTENTION_METHODS = frozenset({"matmul", "bmm", "softmax", "baddbmm"})


def _short(index: TorchIndex, layer: layers.Layer) -> str:
    name = index.call_name(layer.node) or "Linear"
    return name.rsplit(".", 1)[-1]


def _plain_runs(stack: list[layers.Layer]) -> tuple[list[layers.Layer], bool]:
    """The longest run of dense layers not broken by an unknown block, and whether any
    activation sits in the stack."""
    run: list[layers.Layer] = []
    longest: list[layers.Layer] = []
    for layer in stack:
        if layer.kind == layers.DENSE:
            run.append(layer)
            longest = max(longest, run, key=len)
        elif layer.kind in (layers.UNKNOWN, layers.RNN, layers.NORM, layers.SEQUENTIAL):
            run = []
    has_activation = any(layer.kind in (layers.ACTIVATION, layers.SATURATING) for layer in stack)
    return longest, has_activation


class _ForwardLayers(cst.CSTVisitor):
    """Layers applied in forward(), in execution order, with ModuleList loops unrolled."""

    def __init__(self, index: TorchIndex, info: ModuleClass) -> None:
        self.index = index
        self.info = info
        self.stack: list[layers.Layer] = []
        self.loop_layers: dict[str, tuple[int, list[layers.Layer]]] = {}
        self.blocked = False  # a residual add or normalization function
        self.inner_run = 0  # the longest plain run inside one nn.Sequential attribute
        self.first_composed: cst.Call | None = None  # where forward() enters the first one
        self.composed: list[str] = []  # the nn.Sequential attributes called, in order
        self.outputs: dict[str, str] = {}  # `feat = self.block(x)`: feat -> block
        self.called: list[str] = []  # the layer attributes called, in order
        self.parallel = False  # a layer that does not take the previous one's output
        self.returned: list[str] = []  # the attributes whose outputs a `return` lists

    def visit_For(self, node: cst.For) -> None:
        attr = self_attribute(node.iter)
        if attr is not None and isinstance(node.target, cst.Name) and attr in self.info.attrs:
            size = layers.module_list_size(self.index, self.info.attrs[attr])
            if size is not None:
                self.loop_layers[node.target.value] = size

    def leave_Call(self, original_node: cst.Call) -> None:
        name = self.index.call_name(original_node)
        func = original_node.func
        if name in tables.NORM_FUNCTIONS or name in ATTENTION_FUNCTIONS:
            self.blocked = True
        elif name in ("torch.cat", "torch.concat") and _joins_a_layer_output(original_node):
            self.blocked = True  # `torch.cat([self.block(x), x], 1)`: a dense skip path
        elif (
            name is None
            and isinstance(func, cst.Attribute)
            and func.attr.value in ATTENTION_METHODS
        ):
            self.blocked = True  # q/k/v projections are parallel, not a stack
        elif name in tables.ACTIVATION_FUNCTIONS:
            self.stack.append(layers.Layer(layers.ACTIVATION, original_node))
        func = original_node.func
        attr = self_attribute(func)
        if attr is not None and attr in self.info.attrs:
            built = self.info.attrs[attr]
            inner = layers.sequence(self.index, built)
            if self.called and not self._chained(original_node, self.called[-1]):
                self.parallel = True  # not fed by the layer before it: a branch or a head
            self.called.append(attr)
            if inner is None:
                self.stack.append(layers.classify(self.index, built))
            else:  # VGG's blocks composed in forward(): the stack runs through them all
                self.stack.extend(inner)
                self.inner_run = max(self.inner_run, len(_plain_runs(inner)[0]))
                self.first_composed = self.first_composed or original_node
                self.composed.append(attr)
        elif isinstance(func, cst.Name) and func.value in self.loop_layers:
            count, item = self.loop_layers[func.value]
            self.stack.extend(item * min(count, layers.MAX_REPEAT))
        elif (
            isinstance(func, cst.Attribute)
            and attr is None
            and func.attr.value in tables.ACTIVATION_METHODS
        ):
            self.stack.append(layers.Layer(layers.ACTIVATION, original_node))

    def leave_Assign(self, original_node: cst.Assign) -> None:
        source = self._source(original_node.value)
        for target in original_node.targets:
            if isinstance(target.target, cst.Name):
                if source is not None:
                    self.outputs[target.target.value] = source
                else:
                    self.outputs.pop(target.target.value, None)

    def _chained(self, call: cst.Call, previous: str) -> bool:
        """The block called takes what `previous` returned: `x = self.b1(x); x = self.b2(x)`,
        `self.b2(self.b1(x))`, `self.head(x.flatten(1))`."""
        return bool(call.args) and self._source(call.args[0].value) == previous

    def _source(self, node: cst.BaseExpression) -> str | None:
        """The attribute whose output `node` carries, through reshapes and activations
        (`x.view(n, -1)`, `F.relu(self.b1(x))`); None when unknown."""
        for _ in range(8):
            if isinstance(node, cst.Name):
                return self.outputs.get(node.value)
            if not isinstance(node, cst.Call):
                return None
            attr = self_attribute(node.func)
            if attr is not None:
                return attr
            if self.index.call_name(node) is None and isinstance(node.func, cst.Attribute):
                node = node.func.value  # a tensor method: `h.view(n, -1)`
            elif node.args:
                node = node.args[0].value  # `F.relu(h)`, `torch.flatten(h, 1)`
            else:
                return None
        return None

    def visit_Return(self, node: cst.Return) -> None:
        if isinstance(node.value, (cst.Tuple, cst.List)):
            for element in node.value.elements:
                if isinstance(element.value, cst.Name) and element.value.value in self.outputs:
                    self.returned.append(self.outputs[element.value.value])

    def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
        if isinstance(node.operator, (cst.Add, cst.MatrixMultiply)):
            self.blocked = True  # a residual add, or attention-style products of projections

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        if isinstance(node.operator, cst.AddAssign):
            self.blocked = True


def _forward_stack(
    index: TorchIndex, info: ModuleClass
) -> tuple[list[layers.Layer], cst.Call | None] | None:
    """The layers forward() applies in order, and the call that enters the first of the
    nn.Sequential attributes it composes (None when it composes none)."""
    assert info.forward is not None
    visitor = _ForwardLayers(index, info)
    walk_visitor(info.forward, visitor)
    if visitor.blocked or visitor.parallel:
        return None  # a skip path, or branches side by side rather than one chain
    has_norm_attr = any(
        layers.classify(index, value).kind == layers.NORM for value in info.attrs.values()
    )
    if has_norm_attr:
        return None
    if not visitor.inner_run:
        return visitor.stack, None
    pyramid = len(set(visitor.returned) & set(visitor.composed)) > 1
    if pyramid or len(set(visitor.composed)) < len(visitor.composed):
        return None  # a feature pyramid returning every level, or one block applied twice:
        # parallel paths, not one chain
    # containers composed in forward(): only a trunk of one layer family (VGG's conv blocks)
    # counts across them; a conv trunk and its Linear head are judged apart, as AlexNet's are
    trunk = _one_family(index, visitor.stack)
    if visitor.inner_run >= len(_plain_runs(trunk)[0]):
        return None  # as deep as one nn.Sequential, which is judged where it is built
    return trunk, visitor.first_composed


def _one_family(index: TorchIndex, stack: list[layers.Layer]) -> list[layers.Layer]:
    """The longest stretch of the stack whose weight layers are all convolutions or all
    Linear, with the activations between them."""
    best: list[layers.Layer] = []
    current: list[layers.Layer] = []
    family: str | None = None
    for layer in stack:
        if layer.kind == layers.DENSE:
            kind = "conv" if "Conv" in _short(index, layer) else "linear"
            if kind != family:
                current, family = [], kind
        elif layer.kind in (layers.UNKNOWN, layers.RNN, layers.NORM, layers.SEQUENTIAL):
            current, family = [], None
        current.append(layer)
        best = max(best, current, key=lambda part: sum(x.kind == layers.DENSE for x in part))
    return best


def _joins_a_layer_output(call: cst.Call) -> bool:
    """`torch.cat([self.block(x), x])`: a layer's output joined with another tensor."""
    items = call.args[0].value if call.args else None
    if not isinstance(items, (cst.List, cst.Tuple)) or len(items.elements) < 2:
        return False
    return any(
        isinstance(e.value, cst.Call) and self_attribute(e.value.func) is not None
        for e in items.elements
    )
