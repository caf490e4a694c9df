from __future__ import annotations

import os

import libcst as cst

from gradlint import Invalid, Rule, Severity, Valid
from gradlint.semantics import init_draws, init_sites, layers, tables, weight_matrices
from gradlint.semantics.index import ModuleClass, TorchIndex, self_attribute
from gradlint.semantics.nodes import walk_visitor

WEIGHT_KINDS = (layers.DENSE, layers.RNN, layers.EMBEDDING)


class ConstantWeightInit(Rule):
    """
    ## What it does
    Flags weights of Linear/Conv/RNN/Embedding layers set to zero or another constant:
    `nn.init.zeros_/ones_/constant_` (whatever the value: a variable is still one value for
    every unit), `.fill_()`, `.zero_()`, a constant tensor assigned to the weight
    (`fc.weight = nn.Parameter(torch.zeros(...))`, `torch.tensor([[0.5, 0.5], ...])`),
    `nn.Parameter(torch.zeros(...))` used as a weight matrix, and the hidden matrices of
    from-scratch scripts (`W1 = torch.zeros(784, 128, requires_grad=True)` ... `x @ W1`,
    updated by an optimizer or `W -= lr * W.grad`). Layers are followed through variables
    (`model.fc1`, `layer = model.features[0]`), and sweeps are recognised by `isinstance`,
    `type(m) == nn.Linear` and the class-name test of GAN code
    (`m.__class__.__name__.find('Linear') != -1`), in `apply()` callbacks and module loops.
    Loops over `model.parameters()` / `named_parameters()` that set every parameter (or every
    one named `weight`) to a constant count, and so do one-line lambdas handed to a helper
    that applies its `init_fn` argument to each layer's weight. Models returned by a builder
    function of the file (`net, loss_fn, opt = build()`) are followed.

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
    OTHER_SEVERITY = Severity.ERROR
    OTHER_SEVERITY_WHEN = "when the constant init runs for every layer of the model"
    MESSAGE = (
        "`{target}` is set to a constant; all units of the layer get the same gradient and "
        "never differentiate (symmetry is never broken){scope}"
    )
    HINT = (
        "Use a random init: nn.init.kaiming_normal_ for ReLU, "
        "nn.init.xavier_uniform_ for tanh/sigmoid"
    )

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
        # a one-layer softmax regression kept as a raw tensor: zero start is fine (convex)
        Valid("""
            import torch
            W = torch.zeros(784, 10, requires_grad=True)
            b = torch.zeros(10, requires_grad=True)
            optimizer = torch.optim.SGD([W, b], lr=0.1)
            def model(x):
                return x @ W + b
        """),
        # DCGAN-style callback: the class-name test picks BatchNorm for the constant scale
        Valid("""
            import torch.nn as nn
            def weights_init(m):
                classname = m.__class__.__name__
                if classname.find("Conv") != -1:
                    nn.init.normal_(m.weight.data, 0.0, 0.02)
                elif classname.find("BatchNorm") != -1:
                    nn.init.constant_(m.weight.data, 1.0)
                    nn.init.constant_(m.bias.data, 0)
        """),
        # a class-name test on a custom block: which layers it holds is not known
        Valid("""
            from torch import nn
            def init_blocks(m):
                if type(m).__name__ == "ResBlock":
                    nn.init.zeros_(m.conv2.weight)
        """),
        # the output layer of a script's model, zeroed through the model variable
        Valid("""
            import torch
            from torch import nn
            class MLP(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc1 = nn.Linear(20, 64)
                    self.fc2 = nn.Linear(64, 3)
                def forward(self, x):
                    return self.fc2(torch.relu(self.fc1(x)))
            model = MLP()
            model.fc2.weight.data.zero_()
            head = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3))
            head[2].weight.data.fill_(0.0)
        """),
        # a raw hidden matrix allocated with zeros, then drawn at random in place
        Valid("""
            import torch
            W1 = torch.zeros(784, 256, requires_grad=True)
            W2 = torch.zeros(256, 10, requires_grad=True)
            torch.nn.init.kaiming_uniform_(W1)
            optimizer = torch.optim.Adam([W1, W2])
            def net(x):
                return torch.relu(x @ W1) @ W2
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

    VALID.extend(
        [
            # a parameter loop that keeps the constant for biases and norm scales
            Valid("""
            import torch.nn as nn
            model = nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8), nn.Linear(8, 2))
            for name, p in model.named_parameters():
                if "bias" in name:
                    nn.init.zeros_(p)
                elif "norm" in name and "weight" in name:
                    nn.init.ones_(p)
                else:
                    nn.init.xavier_uniform_(p)
            for p in model.parameters():
                if p.dim() > 1:
                    nn.init.kaiming_normal_(p)
                else:
                    p.data.fill_(0.0)
        """),
            # a training helper that takes the init as a callback, given random ones only;
            # a forward-only statistics demo that is shown a constant
            Valid("""
            from torch import nn
            def run(init_fn, x, y):
                net = nn.Sequential(nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 1))
                for layer in net:
                    if isinstance(layer, nn.Linear):
                        init_fn(layer.weight)
                nn.functional.mse_loss(net(x), y).backward()
            run(lambda w: nn.init.xavier_uniform_(w), x, y)
            run(lambda w: nn.init.orthogonal_(w), x, y)
            def activation_stats(init_fn, x):
                net = nn.Sequential(nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh())
                for layer in net:
                    if isinstance(layer, nn.Linear):
                        init_fn(layer.weight)
                return net(x).std()
            activation_stats(lambda w: nn.init.zeros_(w), x)
        """),
        ]
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
        # pix2pix/DCGAN-style callback that picks layers by class name
        Invalid(
            """
            import torch.nn as nn
            def weights_init(m):
                classname = m.__class__.__name__
                if classname.find("Linear") != -1:
                    m.weight.data.fill_(0.5)
                    m.bias.data.fill_(0)
            net = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))
            net.apply(weights_init)
        """,
            line=5,
            message="every Linear layer",
        ),
        Invalid(
            """
            import torch
            from torch import nn
            @torch.no_grad()
            def init_all(m):
                if type(m) in (nn.Linear, nn.Conv2d):
                    m.weight.fill_(1.0)
        """,
            line=6,
            message="every Conv2d/Linear layer",
        ),
        # the value is a variable: still one value shared by every unit
        Invalid(
            """
            from torch import nn
            def init_weights(m, value=0.1):
                if isinstance(m, nn.Linear):
                    nn.init.constant_(m.weight, value)
        """,
            line=4,
        ),
        Invalid(
            """
            import torch
            from torch import nn
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc1 = nn.Linear(10, 32)
                    self.fc2 = nn.Linear(32, 2)
                    self.fc1.weight = nn.Parameter(torch.zeros(32, 10))
                def forward(self, x):
                    return self.fc2(torch.relu(self.fc1(x)))
        """,
            line=8,
            message="hidden",
        ),
        # through a variable holding one layer of a Sequential
        Invalid(
            """
            from torch import nn
            model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1))
            first = model[0]
            first.weight.data.fill_(0.01)
        """,
            line=4,
        ),
        # a tensor literal of equal values assigned through the model variable
        Invalid(
            """
            import torch
            from torch import nn
            class TwoLayer(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.hidden = nn.Linear(2, 2)
                    self.out = nn.Linear(2, 1)
                def forward(self, x):
                    return self.out(torch.sigmoid(self.hidden(x)))
            model = TwoLayer()
            model.hidden.weight.data = torch.tensor([[0.5, 0.5], [0.5, 0.5]])
        """,
            line=11,
        ),
        # a from-scratch script: the hidden matrix is a raw tensor of zeros
        Invalid(
            """
            import torch
            W1 = torch.zeros(784, 128, requires_grad=True)
            b1 = torch.zeros(128, requires_grad=True)
            W2 = torch.randn(128, 10) * 0.01
            W2.requires_grad_()
            params = [W1, b1, W2]
            def forward(x):
                return torch.relu(x @ W1 + b1) @ W2
            for step in range(100):
                loss = forward(x).pow(2).mean()
                loss.backward()
                with torch.no_grad():
                    for p in params:
                        p -= 0.1 * p.grad
        """,
            line=2,
        ),
        # a loop over the modules of a model built at module level
        Invalid(
            """
            from torch import nn
            model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
            for m in model.modules():
                if isinstance(m, nn.Linear):
                    nn.init.zeros_(m.weight)
        """,
            line=5,
            message="every Linear layer",
        ),
        # a course notebook: the builder returns net, loss and optimizer; one layer is zeroed
        Invalid(
            """
            import torch
            import torch.nn as nn
            import torch.nn.functional as F
            def make_net():
                class Net(nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.inp = nn.Linear(784, 64)
                        self.hid = nn.Linear(64, 64)
                        self.out = nn.Linear(64, 10)
                    def forward(self, x):
                        return self.out(F.relu(self.hid(F.relu(self.inp(x)))))
                net = Net()
                return net, nn.CrossEntropyLoss(), torch.optim.SGD(net.parameters(), lr=0.1)
            net, loss_fn, opt = make_net()
            net.hid.weight.data = torch.zeros_like(net.hid.weight)
        """,
            line=16,
            message="hidden layer",
        ),
        # every parameter, weights included, set to one value in a loop
        Invalid(
            """
            import torch
            from torch import nn
            net = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 1))
            for item in net.named_parameters():
                item[1].data = torch.zeros_like(item[1].data) + 0.5
        """,
            line=5,
            message="every parameter",
        ),
        Invalid(
            """
            from torch.nn import Linear, Sequential, Tanh, init
            net = Sequential(Linear(10, 20), Tanh(), Linear(20, 1))
            for name, p in net.named_parameters():
                if "weight" in name:
                    init.constant_(p, 0.1)
        """,
            line=5,
            message="every parameter",
        ),
        # the init is a callback; one caller hands it a constant
        Invalid(
            """
            import torch
            from torch import nn
            from torch.nn import init
            def fit(init_fn, epochs=10):
                net = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 1))
                for layer in net:
                    if isinstance(layer, nn.Linear):
                        init_fn(layer.weight)
                opt = torch.optim.SGD(net.parameters(), lr=0.01)
                return net, opt
            fit(lambda w: init.kaiming_normal_(w))
            fit(lambda w: init.zeros_(w), epochs=5)
        """,
            line=12,
            message="every Linear layer",
        ),
    ]

    def visit_Module(self, node: cst.Module) -> None:
        facts = init_sites.init_facts(self.index)
        for site in facts.sites:
            self._check_site(site)
        for info in self.index.module_classes.values():
            self._check_parameters(info, facts)
        for raw in weight_matrices.raw_weights(self.index):
            self._check_raw(raw)

    # -- writes to a layer's weight: init calls, `fill_`, `= nn.Parameter(torch.zeros(..))` --

    def _check_site(self, site: init_sites.InitSite) -> None:
        if site.call is None or not site.call.is_constant:
            return  # random inits and sign flips
        if not site.param.startswith("weight") or site.is_self_tensor:
            return  # biases; a module's own tensors are judged by how forward() uses them
        target = init_sites.target_text(site)
        if site.every_parameter:
            scope = "; the loop sets every parameter of the model to it, weights included"
            self.report(site.node, target=target, scope=scope, severity=Severity.ERROR)
            return
        if site.types:
            if site.sweep is None:
                return  # a specific object, not a sweep over the model's layers
            if site.narrowed:
                return  # another condition picks some layers (`if name.startswith("head")`)
            if not all(t in tables.WEIGHT_LAYERS for t in site.types):
                return  # normalization layers, or types we cannot resolve
            scope = f"; this runs for every {_type_names(site.types)} layer of the model"
            self.report(site.node, target=target, scope=scope, severity=Severity.ERROR)
            return
        if site.hidden is not None:  # an element of an nn.Sequential
            kind = layers.classify(self.index, site.constructor or cst.Name("_")).kind
            if site.hidden and kind in WEIGHT_KINDS:
                self.report(site.node, target=target, scope=" (hidden layer)")
            return
        info, attr = site.cls, site.layer_attr
        if info is None or attr is None or attr not in info.attrs:
            return  # a layer we cannot see being built
        if layers.classify(self.index, info.attrs[attr]).kind not in WEIGHT_KINDS:
            return  # normalization or custom layers
        if _is_output_or_residual_end(info, attr, self.index):
            return  # output head / last layer of a residual branch: the known-good idiom
        self.report(site.node, target=target, scope=" (hidden layer)")

    # -- weight matrices kept as tensors: nn.Parameter(torch.zeros(...)), raw tensors --------

    def _check_parameters(self, info: ModuleClass, facts: init_sites.InitFacts) -> None:
        matrices: set[str] | None = None  # found on first need: it walks the methods
        for attr, value in info.attrs.items():
            if (info.name, attr) in facts.drawn:
                continue  # drawn at random later
            if attr in facts.drawn_names:
                continue  # initialised on purpose elsewhere in the file (HF `_init_weights`)
            if not isinstance(value, cst.Call) or self.index.call_name(value) != tables.PARAMETER:
                continue  # not nn.Parameter(...)
            constant = init_draws.constant_tensor(self.index, value)
            if constant is None or (constant.rank or 0) < 2:
                continue  # random, or a vector: scales, offsets, tokens
            if matrices is None:
                matrices = weight_matrices.matrix_operands(info)
            if attr in matrices:  # used as a weight matrix
                self.report(value, target=f"self.{attr}", scope="")

    def _check_raw(self, raw: weight_matrices.RawWeight) -> None:
        constant = init_draws.constant_tensor(self.index, raw.tensor)
        if constant is None or (constant.rank or 0) < 2:
            return  # random, or a vector
        if not raw.is_hidden:
            return  # the last matrix (a linear/softmax model) may start at zero
        self.report(raw.value, target=raw.name, scope=" (hidden layer)")


def _type_names(types: frozenset[str]) -> str:
    """`Linear`, `Conv2d/Linear`, or `Conv*` for the many classes `'Conv' in classname` picks."""
    names = sorted({t.rsplit(".", 1)[-1] for t in types} - {"?"})
    plain = [name for name in names if not name.startswith("Lazy")] or names
    if len(plain) <= 3:
        return "/".join(plain)
    return os.path.commonprefix(plain) + "*" if os.path.commonprefix(plain) else "/".join(plain)


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
