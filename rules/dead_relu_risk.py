from __future__ import annotations

import libcst as cst

from gradlint import Invalid, Rule, Severity, Valid
from gradlint.semantics import init_draws, init_sites, layer_feeds, tables
from gradlint.semantics.index import TorchIndex

WEIGHT_LAYERS = tables.DENSE_LAYERS | tables.RNN_LAYERS


class DeadReluRisk(Rule):
    """
    ## What it does
    Flags initialisations that push the pre-activations of a ReLU below zero: a negative
    constant bias (`nn.init.constant_(fc.bias, -1)`, `fc.bias.data.fill_(-0.5)`) or
    all-negative weights (`uniform_(w, -1, 0)`, `w.data = -w.data.abs()`, a negative
    constant) on a layer whose output goes straight into `ReLU`/`ReLU6`, in `forward()`,
    in an `nn.Sequential`, or in an `isinstance` sweep over a model with such layers.

    ## Why is this bad?
    ReLU's derivative is exactly 0 for negative inputs. A unit whose pre-activation is
    negative for every input outputs 0 and gets zero gradient, so its weights and bias
    never change again: it is dead. A bias of -1 kills every unit whose weighted input
    rarely exceeds 1, and all-negative weights applied to the non-negative outputs of a
    previous ReLU make every pre-activation ≤ 0. Start biases at 0 (or a small positive
    constant), or use LeakyReLU/ELU/GELU, which keep a small slope for negative inputs.

    A weight set to zero on a layer built with `bias=False` counts as well: every
    pre-activation is exactly 0, where PyTorch gives ReLU a slope of 0, so the layer never
    moves.

    Negative biases before a sigmoid are a known good practice and are not flagged:
    highway networks start the transform gate at -1 to -3, and gates in general may start
    closed.
    """

    CODE = "GL114"
    SEVERITY = Severity.WARNING
    MESSAGE = (
        "`{target}` starts at {start} and feeds a {activation}: pre-activations below 0 get "
        "zero gradient, so units negative for every input never recover (dead ReLU)"
    )
    HINT = (
        "Start biases at 0 (or a small positive value) and draw weights symmetrically, "
        "or use LeakyReLU/GELU"
    )

    VALID = [
        Valid("""
            import torch.nn.functional as F
            from torch import nn
            class MLP(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc1 = nn.Linear(784, 256)
                    self.fc2 = nn.Linear(256, 10)
                    nn.init.constant_(self.fc1.bias, 0.01)
                def forward(self, x):
                    return self.fc2(F.relu(self.fc1(x)))
        """),
        # highway network: the transform gate starts closed, before a sigmoid
        Valid("""
            import torch
            from torch import nn
            class Highway(nn.Module):
                def __init__(self, size):
                    super().__init__()
                    self.proj = nn.Linear(size, size)
                    self.transform = nn.Linear(size, size)
                    self.transform.bias.data.fill_(-2.0)
                def forward(self, x):
                    t = torch.sigmoid(self.transform(x))
                    return t * torch.relu(self.proj(x)) + (1 - t) * x
        """),
        # LeakyReLU keeps a slope for negative inputs
        Valid("""
            from torch import nn
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(64, 64)
                    self.act = nn.LeakyReLU(0.2)
                    nn.init.constant_(self.fc.bias, -0.5)
                def forward(self, x):
                    return self.act(self.fc(x))
        """),
        # BatchNorm after the conv re-centres the pre-activation, so the bias is moot
        Valid("""
            import torch.nn as nn
            class Block(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.conv = nn.Conv2d(64, 64, 3, padding=1)
                    self.bn = nn.BatchNorm2d(64)
                    self.relu = nn.ReLU(inplace=True)
                    nn.init.constant_(self.conv.bias, -1)
                def forward(self, x):
                    return self.relu(self.bn(self.conv(x)))
        """),
        # an LSTM-style gate bias trick before sigmoid
        Valid("""
            import torch
            from torch import nn
            class GatedUnit(nn.Module):
                def __init__(self, d):
                    super().__init__()
                    self.gate = nn.Linear(d, d)
                    self.value = nn.Linear(d, d)
                    nn.init.constant_(self.gate.bias, -3.0)
                def forward(self, x):
                    return torch.sigmoid(self.gate(x)) * self.value(x)
        """),
        # GELU in a transformer MLP
        Valid("""
            from torch import nn
            model = nn.Sequential(nn.Linear(512, 2048), nn.GELU(), nn.Linear(2048, 512))
            def init(m):
                if isinstance(m, nn.Linear):
                    nn.init.constant_(m.bias, -0.1)
            model.apply(init)
        """),
        # the bias value comes from a config: cannot tell
        Valid("""
            from torch import nn
            class Head(nn.Module):
                def __init__(self, prior_bias):
                    super().__init__()
                    self.fc = nn.Linear(256, 256)
                    nn.init.constant_(self.fc.bias, prior_bias)
                def forward(self, x):
                    return self.fc(x).relu()
        """),
    ]
    # zeroed projections that keep a gradient: a bias in front of the ReLU, a GELU, or
    # the last layer of a residual branch
    VALID.append(
        Valid("""
            from torch import nn
            class Blocks(nn.Module):
                def __init__(self, dim):
                    super().__init__()
                    a = nn.Linear(dim, dim)
                    nn.init.zeros_(a.weight)
                    b = nn.Linear(dim, dim, bias=False)
                    nn.init.zeros_(b.weight)
                    c = nn.Linear(dim, dim, bias=False)
                    nn.init.zeros_(c.weight)
                    self.gated = nn.Sequential(a, nn.ReLU())
                    self.smooth = nn.Sequential(b, nn.GELU())
                    self.branch = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), c)
                def forward(self, x):
                    return x + self.branch(x) + self.gated(x) + self.smooth(x)
        """)
    )

    INVALID = [
        Invalid(
            """
            import torch.nn.functional as F
            from torch import nn
            class MLP(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc1 = nn.Linear(784, 256)
                    self.fc2 = nn.Linear(256, 10)
                    nn.init.constant_(self.fc1.bias, -1)
                def forward(self, x):
                    return self.fc2(F.relu(self.fc1(x)))
        """,
            line=8,
            message="feeds a relu",
        ),
        Invalid(
            """
            import torch
            from torch import nn
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.hidden = nn.Linear(32, 32)
                    self.hidden.bias.data.fill_(-0.5)
                def forward(self, x):
                    x = self.hidden(x)
                    x = torch.relu(x)
                    return x
        """,
            line=7,
            message="-0.5",
        ),
        Invalid(
            """
            import torch.nn as nn
            model = nn.Sequential(
                nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1)
            )
            def init_weights(m):
                if isinstance(m, nn.Linear):
                    nn.init.kaiming_normal_(m.weight)
                    nn.init.constant_(m.bias, -1.0)
            model.apply(init_weights)
        """,
            line=8,
        ),
        Invalid(
            """
            from torch import nn
            class Deep(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc1 = nn.Linear(16, 16)
                    self.fc2 = nn.Linear(16, 16)
                    self.relu = nn.ReLU()
                    nn.init.uniform_(self.fc2.weight, -1, 0)
                def forward(self, x):
                    return self.relu(self.fc2(self.relu(self.fc1(x))))
        """,
            line=8,
            message="U(-1, 0)",
        ),
        Invalid(
            """
            import torch
            from torch import nn
            class Deep(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc1 = nn.Linear(16, 16)
                    self.fc2 = nn.Linear(16, 16)
                    with torch.no_grad():
                        self.fc2.weight.data = -self.fc2.weight.data.abs()
                def forward(self, x):
                    return torch.relu(self.fc2(torch.relu(self.fc1(x))))
        """,
            line=9,
            message="negative magnitudes",
        ),
        # a bias-free gate projection zeroed before a ReLU: its output is 0 for every input
        Invalid(
            """
            from torch import nn
            class DepthRouter(nn.Module):
                def __init__(self, dim, layers):
                    super().__init__()
                    proj = nn.Linear(dim, layers, bias=False)
                    nn.init.zeros_(proj.weight)
                    self.route = nn.Sequential(nn.LayerNorm(dim), proj, nn.ReLU())
                def forward(self, x):
                    return self.route(x)
        """,
            line=6,
            message="0 with no bias",
        ),
    ]

    def visit_Module(self, node: cst.Module) -> None:
        for site in init_sites.init_facts(self.index).sites:
            start = self._negative_start(site)
            if start is None:
                continue  # not an all-negative init
            activation = self._zero_slope_activation(site)
            if activation is not None:
                target = init_sites.target_text(site)
                self.report(site.node, target=target, start=start, activation=activation)

    def _negative_start(self, site: init_sites.InitSite) -> str | None:
        if site.call is None:
            return "negative magnitudes (-|w|)"
        if _zero_without_bias(self.index, site):
            return "0 with no bias (every pre-activation is exactly 0, where ReLU's slope is 0)"
        found = init_draws.draw(self.index, site.call)
        if found is None:
            return None  # other inits, arguments we cannot read
        if found.kind == "constant" and found.mean < 0:
            return f"{found.mean:g}"
        if found.kind == "uniform" and found.high <= 0 and found.low < 0:
            return found.text
        if found.kind == "normal" and found.mean < 0 and found.std * 2 <= -found.mean:
            return found.text  # almost every draw is negative
        return None

    def _zero_slope_activation(self, site: init_sites.InitSite) -> str | None:
        """`relu` when the initialised layer feeds a ReLU, as far as this file shows."""
        if site.types:
            if not site.types <= WEIGHT_LAYERS:
                return None  # norms, embeddings, unresolved types
            profile = layer_feeds.sweep_profile(self.index, site)
            if profile is None or not profile.count(layer_feeds.ZERO_SLOPE, site.types):
                return None  # unknown model, or none of the swept layers feeds a ReLU
            return "relu"
        local = init_sites.local_layer(site)
        if site.cls is not None and site.layer_attr is None and local is not None:
            follower = layer_feeds.follower_of_local(self.index, site.cls, local)
            return follower if follower in layer_feeds.ZERO_SLOPE else None
        if site.cls is None or site.layer_attr is None:
            return None  # a layer we cannot follow into forward()
        follower = layer_feeds.class_profile(self.index, site.cls).feeds.get(site.layer_attr)
        return follower if follower in layer_feeds.ZERO_SLOPE else None


def _zero_without_bias(index: TorchIndex, site: init_sites.InitSite) -> bool:
    """A weight set to zero on a layer built with `bias=False`: its output is exactly 0."""
    if site.call is None or not site.param.startswith("weight"):
        return False
    if site.call.function not in ("zeros_", "zero_") and not (
        site.call.function in ("constant_", "fill_")
        and (found := init_draws.draw(index, site.call)) is not None
        and found.mean == 0
    ):
        return False
    built = site.constructor
    if not isinstance(built, cst.Call):
        return False
    bias = init_draws.argument(built, 99, "bias")  # passed by keyword in practice
    return isinstance(bias, cst.Name) and bias.value == "False"
