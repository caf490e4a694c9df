from __future__ import annotations

import libcst as cst

from gradlint import Invalid, Rule, Severity, Valid
from gradlint.semantics import init_draws, init_sites, layers, tables, weight_matrices
from gradlint.semantics.index import ModuleClass

WEIGHT_LAYERS = tables.DENSE_LAYERS | tables.RNN_LAYERS


class UnscaledWeightInit(Rule):
    """
    ## What it does
    Flags layer weights drawn with a fixed scale that ignores fan-in: `nn.init.normal_(w)`
    or `normal_(w, 0, 1)` (any std of 0.5 or more), `nn.init.uniform_(w)` / `uniform_(w, -1, 1)`,
    the tensor methods `w.data.normal_()` / `.uniform_(-1, 1)`, and
    `nn.Parameter(torch.randn(out, in))` used as a weight matrix in `forward()` with no
    `/ math.sqrt(fan_in)` or small factor and no later re-initialisation, and the raw matrices
    of from-scratch scripts (`W1 = torch.randn(784, 256, requires_grad=True)` used in
    `x @ W1` or `x.mm(W1)` and updated by an optimizer or `W -= lr * W.grad`). A normal draw
    whose mean and std look swapped (`normal_(0.02)` is N(0.02, 1)) says so. Layers are
    known from their constructor or from an `isinstance`, `type()` or class-name test.

    ## Why is this bad?
    Each output of a layer sums `fan_in` products, so its variance is `fan_in · E[w²]`
    times the input's. With N(0, 1) weights and 512 inputs every layer multiplies the
    signal's variance by about 512: pre-activations saturate sigmoid/tanh (gradient ≈ 0)
    or blow up through a ReLU stack (Inf/NaN). Scale the weights by fan-in: Kaiming/He
    (`Var = 2/fan_in`) for ReLU, Xavier/Glorot (`2/(fan_in+fan_out)`) for tanh/sigmoid,
    or `std = 1/sqrt(fan_in)`. Small fixed stds like transformers' 0.02 are fine.

    ## Known limitations
    Only weights of Linear/Conv/RNN layers (known from their constructor or an
    `isinstance` guard) are checked. `nn.Embedding` weights are left alone: a lookup
    returns one row and sums nothing, so N(0, 1) — PyTorch's own default for embeddings —
    does not grow with any fan-in. Layers whose literal fan-in is so small that
    `fan_in · E[w²] ≤ 2` (He's variance) are not flagged.
    """

    CODE = "GL108"
    SEVERITY = Severity.WARNING
    MESSAGE = (
        "`{target}` is drawn from {distribution}, a scale that ignores fan-in; each layer "
        "multiplies the output variance by fan_in·σ², saturating sigmoid/tanh or exploding "
        "ReLU nets"
    )
    HINT = (
        "Use nn.init.kaiming_normal_ (ReLU) or nn.init.xavier_uniform_ (tanh/sigmoid), "
        "or std=1/sqrt(fan_in)"
    )
    OPTIONS = {"std": 0.5}

    VALID = [
        Valid("""
            from torch import nn
            def init_weights(m):
                if isinstance(m, nn.Linear):
                    nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                    nn.init.zeros_(m.bias)
            model = nn.Sequential(nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
            model.apply(init_weights)
        """),
        # HF/timm: small fixed std for transformer weights, N(0, 1)-style default for embeddings
        Valid("""
            from torch import nn
            class PreTrainedModel(nn.Module):
                def _init_weights(self, module):
                    if isinstance(module, nn.Linear):
                        module.weight.data.normal_(mean=0.0, std=0.02)
                        if module.bias is not None:
                            module.bias.data.zero_()
                    elif isinstance(module, nn.Embedding):
                        module.weight.data.normal_(mean=0.0, std=1.0)
        """),
        # word embeddings at N(0, 1), PyTorch's own default: a lookup sums over no fan-in
        Valid("""
            from torch.nn import Embedding, Linear, Module
            from torch.nn.init import normal_
            class LM(Module):
                def __init__(self, vocab, dim):
                    super().__init__()
                    self.embed = Embedding(vocab, dim)
                    self.head = Linear(dim, vocab)
                    normal_(self.embed.weight, mean=0.0, std=1.0)
                    normal_(self.head.weight, std=dim**-0.5)
        """),
        # DCGAN: BatchNorm scale drawn around 1 is a norm layer, not a fan-in sum
        Valid("""
            import torch.nn as nn
            def weights_init(m):
                if isinstance(m, nn.Conv2d):
                    nn.init.normal_(m.weight.data, 0.0, 0.02)
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.normal_(m.weight.data, 1.0, 0.02)
                    nn.init.constant_(m.bias.data, 0)
        """),
        # scaled by fan-in by hand
        Valid("""
            import math
            import torch
            import torch.nn.functional as F
            from torch import nn
            class MyLinear(nn.Module):
                def __init__(self, n_in, n_out):
                    super().__init__()
                    self.weight = nn.Parameter(torch.randn(n_out, n_in) / math.sqrt(n_in))
                def forward(self, x):
                    return F.linear(x, self.weight)
        """),
        # drawn with randn, then re-initialised in reset_parameters
        Valid("""
            import math
            import torch
            from torch import nn
            class Bilinear(nn.Module):
                def __init__(self, n):
                    super().__init__()
                    self.W = nn.Parameter(torch.randn(n, n))
                    self.reset_parameters()
                def reset_parameters(self):
                    nn.init.kaiming_uniform_(self.W, a=math.sqrt(5))
                def forward(self, x, y):
                    return (x @ self.W * y).sum(-1)
        """),
        # timm: tokens and position embeddings are added, not summed over a fan-in
        Valid("""
            import torch
            from torch import nn
            class ViT(nn.Module):
                def __init__(self, n, dim):
                    super().__init__()
                    self.pos_embed = nn.Parameter(torch.randn(1, n, dim) * .02)
                    self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
                    self.proj = nn.Linear(dim, dim)
                def forward(self, x):
                    return self.proj(x + self.pos_embed)
        """),
        # transformers' SwiftFormer: the product is rescaled by a stored dim ** -0.5
        Valid("""
            import torch
            from torch import nn
            class EfficientAdditiveAttention(nn.Module):
                def __init__(self, dim=512):
                    super().__init__()
                    self.to_query = nn.Linear(dim, dim)
                    self.w_g = nn.Parameter(torch.randn(dim, 1))
                    self.scale_factor = dim**-0.5
                def forward(self, x):
                    query = nn.functional.normalize(self.to_query(x), dim=-1)
                    return (query @ self.w_g) * self.scale_factor
        """),
        # the std comes from a config: cannot tell, stay quiet
        Valid("""
            from torch import nn
            def init(module, std):
                if isinstance(module, (nn.Linear, nn.Conv2d)):
                    nn.init.normal_(module.weight, std=std)
                    nn.init.uniform_(module.bias, -1, 1)
        """),
        # a two-input toy layer: fan_in · σ² = 2 is He's own variance
        Valid("""
            from torch import nn
            class Toy(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(2, 16)
                    nn.init.normal_(self.fc.weight, 0, 1)
        """),
        # a from-scratch script whose raw matrices are scaled by fan-in
        Valid("""
            import torch
            g = torch.Generator().manual_seed(0)
            W1 = torch.randn((30, 200), generator=g) * (5 / 3) / 30**0.5
            W2 = torch.randn((200, 27), generator=g) * 0.01
            parameters = [W1, W2]
            for p in parameters:
                p.requires_grad = True
            h = torch.tanh(x @ W1)
            logits = h @ W2
            for p in parameters:
                p.data += -0.1 * p.grad
        """),
        # random matrices that are never trained: inputs of a kernel check
        Valid("""
            import torch
            import torch.nn.functional as F
            w1 = torch.randn(500, 1000, requires_grad=True)
            out = F.linear(torch.randn(32, 1000), w1)
            out.sum().backward()
            assert w1.grad is not None
        """),
        # a bigram model: one-hot rows pick one row of W, so no product sums over fan-in
        Valid("""
            import torch
            import torch.nn.functional as F
            W = torch.randn((27, 27), requires_grad=True)
            for k in range(100):
                xenc = F.one_hot(xs, num_classes=27).float()
                logits = xenc @ W
                loss = F.cross_entropy(logits, ys)
                W.grad = None
                loss.backward()
                W.data += -50 * W.grad
        """),
        # DCGAN's callback: small std for conv layers, N(1, 0.02) for BatchNorm scales
        Valid("""
            import torch.nn as nn
            def weights_init(m):
                classname = m.__class__.__name__
                if classname.find("Conv") != -1:
                    m.weight.data.normal_(0.0, 0.02)
                elif classname.find("BatchNorm") != -1:
                    m.weight.data.normal_(1.0, 0.02)
                    m.bias.data.fill_(0)
        """),
    ]
    INVALID = [
        Invalid(
            """
            from torch import nn
            def init_weights(m):
                if isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, 0, 1)
                    nn.init.zeros_(m.bias)
            model = nn.Sequential(nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
            model.apply(init_weights)
        """,
            line=4,
            message="N(0, 1)",
        ),
        Invalid(
            """
            import torch.nn as nn
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc1 = nn.Linear(784, 256)
                    self.fc2 = nn.Linear(256, 10)
                    nn.init.uniform_(self.fc1.weight, -1, 1)
        """,
            line=7,
            message="U(-1, 1)",
        ),
        Invalid(
            """
            from torch import nn
            from torch.nn.init import uniform_
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.conv = nn.Conv2d(64, 64, 3)
                    uniform_(self.conv.weight)
        """,
            line=7,
            message="U(0, 1)",
        ),
        Invalid(
            """
            from torch import nn
            class Model(nn.Module):
                def init_weights(self):
                    for m in self.modules():
                        if isinstance(m, (nn.Linear, nn.Conv2d)):
                            m.weight.data.normal_()
        """,
            line=6,
        ),
        Invalid(
            """
            import torch
            from torch import nn
            class RNN(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.rnn = nn.RNN(128, 128)
                    with torch.no_grad():
                        self.rnn.weight_hh_l0.normal_(0, 1)
        """,
            line=8,
        ),
        Invalid(
            """
            import torch
            import torch.nn.functional as F
            from torch import nn
            class Layer(nn.Module):
                def __init__(self, n_in, n_out):
                    super().__init__()
                    self.weight = nn.Parameter(torch.randn(n_out, n_in))
                    self.bias = nn.Parameter(torch.zeros(n_out))
                def forward(self, x):
                    return F.linear(x, self.weight, self.bias)
        """,
            line=7,
        ),
        Invalid(
            """
            from torch import nn
            def init(m):
                if isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, std=0.5)
        """,
            line=4,
            message="N(0, 0.5)",
        ),
        # the tutorial idiom `type(m) == nn.Linear`
        Invalid(
            """
            import torch.nn as nn
            def init_uniform(m):
                if type(m) == nn.Linear:
                    m.weight.data.uniform_(-1, 1)
                    m.bias.data.fill_(0)
        """,
            line=4,
            message="U(-1, 1)",
        ),
        # a graph-convolution layer of its own
        Invalid(
            """
            import torch
            from torch import nn
            from torch.nn import Parameter
            class GraphConvolution(nn.Module):
                def __init__(self, in_features, out_features):
                    super().__init__()
                    self.W = Parameter(torch.empty(in_features, out_features))
                    nn.init.normal_(self.W)
                def forward(self, x, adj):
                    return torch.spmm(adj, torch.mm(x, self.W))
        """,
            line=8,
        ),
        # a from-scratch MLP: raw N(0, 1) matrices trained by a manual update loop
        Invalid(
            """
            import torch
            g = torch.Generator().manual_seed(0)
            C = torch.randn((27, 10), generator=g)
            W1 = torch.randn((30, 200), generator=g)
            W2 = torch.randn((200, 27), generator=g) * 0.01
            parameters = [C, W1, W2]
            for p in parameters:
                p.requires_grad = True
            h = torch.tanh(C[x].view(-1, 30) @ W1)
            logits = h @ W2
            for p in parameters:
                p.data += -0.1 * p.grad
        """,
            line=4,
            message="`W1` is drawn from N(0, 1)",
        ),
        Invalid(
            """
            import torch
            D_in, H, D_out = 1000, 100, 10
            w1 = torch.randn(D_in, H, requires_grad=True)
            w2 = torch.randn(H, D_out) / H**0.5
            w2.requires_grad_()
            for t in range(500):
                loss = (x.mm(w1).clamp(min=0).mm(w2) - y).pow(2).sum()
                loss.backward()
                with torch.no_grad():
                    w1 -= 1e-6 * w1.grad
                    w2 -= 1e-6 * w2.grad
        """,
            line=3,
        ),
        # an apply() callback that picks Linear layers by class name and draws U(0, 1)
        Invalid(
            """
            import torch.nn as nn
            def weight_init(m):
                classname = m.__class__.__name__
                if classname.find("Linear") != -1:
                    m.weight.data.uniform_(0.0, 1.0)
                    m.bias.data.fill_(0)
        """,
            line=5,
            message="U(0, 1)",
        ),
        # std passed where the mean goes: normal_(0.02) is N(0.02, 1)
        Invalid(
            """
            import torch.nn as nn
            def weights_init(m):
                classname = m.__class__.__name__
                if classname.find("Conv") != -1:
                    m.weight.data.normal_(0.02)
        """,
            line=5,
            message="mean and std swapped",
        ),
    ]

    def visit_Module(self, node: cst.Module) -> None:
        facts = init_sites.init_facts(self.index)
        for site in facts.sites:
            self._check_site(site)
        for info in self.index.module_classes.values():
            self._check_parameters(info, facts.drawn)
        for raw in weight_matrices.raw_weights(self.index):
            distribution = init_draws.unscaled_random_tensor(self.index, raw.tensor)
            if distribution is None:
                continue  # scaled by fan-in (or something we cannot read), or not random
            if raw.fan_in is not None and raw.fan_in <= 2:
                continue  # a tiny fan-in: the variance stays at or below He's 2/fan_in
            self.report(raw.value, target=raw.name, distribution=distribution)

    def _check_site(self, site: init_sites.InitSite) -> None:
        if site.call is None:
            return  # sign flips
        if site.is_self_tensor:
            if not self._is_own_matrix(site):
                return  # a custom module's tensor not used as a weight matrix
        elif not site.param.startswith("weight"):
            return  # biases: a bias adds, it does not sum over fan-in
        found = init_draws.draw(self.index, site.call)
        if found is None or found.kind == "constant":
            return  # other inits, non-literal arguments; constants are GL102's business
        if found.rms < self.options["std"]:
            return  # a small fixed std (0.02) or bound
        if site.is_self_tensor:
            pass
        elif site.types:
            if not site.types <= WEIGHT_LAYERS:
                return  # embeddings, norms, or types we cannot resolve
        elif layers.classify(self.index, site.constructor or cst.Name("_")).kind not in (
            layers.DENSE,
            layers.RNN,
        ):
            return  # a layer we cannot see being built
        fan_in = init_draws.fan_in(self.index, site.constructor)
        if fan_in is not None and fan_in * found.rms**2 <= 2:
            return  # a tiny fan-in: the variance stays at or below He's 2/fan_in
        distribution = found.text
        if (
            found.kind == "normal"
            and (found.mean != 0)
            and (found.std < 0.5 or abs(found.mean) < 0.5)
        ):
            distribution += " (mean and std swapped? normal_ takes the mean first)"
        self.report(site.node, target=init_sites.target_text(site), distribution=distribution)

    def _is_own_matrix(self, site: init_sites.InitSite) -> bool:
        """`self.W = nn.Parameter(...)` used in F.linear / `@` by the same module."""
        if (
            site.cls is None
            or self.index.call_name(site.constructor or cst.Name("_")) != tables.PARAMETER
        ):
            return False
        if init_draws.has_manual_scale(self.index, site.cls):
            return False  # products rescaled by `self.scale = d ** -0.5`
        return site.param in weight_matrices.matrix_operands(site.cls)

    def _check_parameters(self, info: ModuleClass, drawn: set[tuple[str, str]]) -> None:
        candidates: dict[str, tuple[cst.Call, str]] = {}
        for attr, value in info.attrs.items():
            if (info.name, attr) in drawn:
                continue  # drawn again later
            if not isinstance(value, cst.Call) or self.index.call_name(value) != tables.PARAMETER:
                continue  # not an nn.Parameter built here
            if not value.args:
                continue  # not an nn.Parameter built here
            distribution = init_draws.unscaled_random_tensor(self.index, value.args[0].value)
            if distribution is not None:
                candidates[attr] = (value, distribution)
        if not candidates:
            return
        matrices = weight_matrices.matrix_operands(info)
        if not matrices or init_draws.has_manual_scale(self.index, info):
            return  # no weight matrix, or products rescaled by `self.scale = d ** -0.5`
        for attr, (value, distribution) in candidates.items():
            if attr in matrices:  # used as a weight matrix
                self.report(value, target=f"self.{attr}", distribution=distribution)
