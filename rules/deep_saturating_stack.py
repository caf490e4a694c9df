from __future__ import annotations

import libcst as cst

from gradlint import Invalid, Rule, Severity, Valid
from gradlint.semantics import forward_paths, layers, tables
from gradlint.semantics.index import ModuleClass, self_attribute


class DeepSaturatingStack(Rule):
    """
    ## What it does
    Flags sigmoid/tanh-like activations stacked on one data path with no normalization layer
    or residual connection in between, when the stack counts 4 or more: each sigmoid-like
    activation counts 1 and each tanh-like one 1/2 (so 4 sigmoids, or 8 tanh layers). Stacks
    are read in `nn.Sequential(...)` (also one composed of other containers,
    `nn.Sequential(encoder, decoder)`), in layer lists built by a `for _ in range(N)` loop or a
    list comprehension, and in `forward()` across the containers it calls (an activation or a
    loop count may be a constant set once at the top of the file, `ACTIVATION = torch.tanh`).

    ## Why is this bad?
    Backpropagation multiplies the gradient by each activation's derivative. The sigmoid's
    derivative is at most 0.25, so after L sigmoid layers the gradient reaching the first
    layer is at most 0.25^L (5 layers: below 1e-3; 10 layers: below 1e-6). tanh, hardtanh
    and softsign reach 1 only at 0 and flatten to 0 in their tails. The early layers stop
    learning (vanishing gradients).

    Why a tanh counts half: tanh's derivative peaks at 1, the sigmoid's at 0.25, so a tanh
    layer near the origin passes the gradient through almost unscaled and only its saturated
    tails and the weights shrink it. LeNet-5-style nets with four tanh layers train fine;
    the same net with sigmoids barely moves its first layer (0.25^4 ≈ 4e-3), and plain stacks
    of about eight tanh layers stall without normalization.

    Use ReLU-family activations (ReLU, GELU, SiLU) in hidden layers, put a normalization
    layer (BatchNorm, LayerNorm) between saturating ones, or add residual connections.
    Sigmoid as a gate (multiplied into another tensor, as in LSTM/GRU cells and attention
    gates) or as a final output is fine and is not counted.

    ## Options
    `depth` (default 4): the count (sigmoid 1, tanh-like 1/2) on one path that triggers the
    rule.
    """

    CODE = "GL101"
    SEVERITY = Severity.WARNING
    MESSAGE = (
        "{depth} saturating activations ({names}) are stacked on one path with no "
        "normalization or residual in between; {bound}"
    )
    HINT = "Use ReLU/GELU in hidden layers, or insert BatchNorm/LayerNorm or residual connections"
    OPTIONS = {"depth": 4}

    VALID = [
        Valid("""
            from torch import nn
            model = nn.Sequential(
                nn.Linear(784, 256), nn.ReLU(),
                nn.Linear(256, 256), nn.ReLU(),
                nn.Linear(256, 256), nn.ReLU(),
                nn.Linear(256, 256), nn.ReLU(),
                nn.Linear(256, 10),
            )
        """),
        Valid("""
            import torch.nn as nn
            model = nn.Sequential(
                nn.Linear(784, 256), nn.BatchNorm1d(256), nn.Sigmoid(),
                nn.Linear(256, 256), nn.BatchNorm1d(256), nn.Sigmoid(),
                nn.Linear(256, 256), nn.BatchNorm1d(256), nn.Sigmoid(),
                nn.Linear(256, 256), nn.BatchNorm1d(256), nn.Sigmoid(),
            )
        """),
        # three is below the default depth
        Valid("""
            from torch import nn
            net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(),
                                nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 1))
        """),
        # an LSTM cell written by hand: sigmoids are gates multiplied into other tensors
        Valid("""
            import torch
            from torch import nn
            class Cell(nn.Module):
                def forward(self, x, h, c):
                    gates = self.ih(x) + self.hh(h)
                    i, f, g, o = gates.chunk(4, 1)
                    i = torch.sigmoid(i)
                    f = torch.sigmoid(f)
                    g = torch.tanh(g)
                    o = torch.sigmoid(o)
                    c = f * c + i * g
                    h = o * torch.tanh(c)
                    return h, c
        """),
        # residual connections give the gradient an identity path
        Valid("""
            import torch
            from torch import nn
            class Net(nn.Module):
                def forward(self, x):
                    x = x + torch.tanh(self.l1(x))
                    x = x + torch.tanh(self.l2(x))
                    x = x + torch.tanh(self.l3(x))
                    x = x + torch.tanh(self.l4(x))
                    return x
        """),
        # not torch: a local sigmoid helper in a NumPy script
        Valid("""
            import numpy as np
            def sigmoid(z):
                return 1 / (1 + np.exp(-z))
            y = sigmoid(sigmoid(sigmoid(sigmoid(np.zeros(3)))))
        """),
        # the loop adds normalization every pass
        Valid("""
            from torch import nn
            layers = []
            for _ in range(8):
                layers += [nn.Linear(64, 64), nn.LayerNorm(64), nn.Tanh()]
            model = nn.Sequential(*layers)
        """),
        # a loop of unknown length cannot be judged
        Valid("""
            from torch import nn
            def make(depth):
                layers = []
                for _ in range(depth):
                    layers.append(nn.Linear(64, 64))
                    layers.append(nn.Sigmoid())
                return nn.Sequential(*layers)
        """),
        # sigmoid as the output of each of several heads, not a stack
        Valid("""
            import torch
            from torch import nn
            class Heads(nn.Module):
                def forward(self, x):
                    a = torch.sigmoid(self.a(x))
                    b = torch.sigmoid(self.b(x))
                    c = torch.sigmoid(self.c(x))
                    d = torch.sigmoid(self.d(x))
                    return a, b, c, d
        """),
        # LeNet-5: four tanh layers train fine (tanh' peaks at 1, so a tanh counts 1/2)
        Valid("""
            from torch import nn
            lenet = nn.Sequential(
                nn.Conv2d(1, 6, 5), nn.Tanh(), nn.AvgPool2d(2),
                nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(),
                nn.Linear(256, 120), nn.Tanh(), nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, 10),
            )
        """),
        # the same script shape with a ReLU constant, or a depth the script changes later
        Valid("""
            import torch
            import torch.nn.functional as F
            from torch import nn
            DEPTH = 8
            ACT = F.relu
            SQUASH = torch.tanh
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.hidden = nn.ModuleList([nn.Linear(10, 10) for _ in range(DEPTH)])
                def forward(self, x):
                    for i in range(DEPTH):
                        x = ACT(self.hidden[i](x))
                    for i in range(LAYERS):
                        x = SQUASH(x)
                    return x
            LAYERS = 2
            LAYERS = 10
        """),
    ]
    INVALID = [
        Invalid(
            """
            from torch import nn
            model = nn.Sequential(
                nn.Linear(784, 256), nn.Sigmoid(),
                nn.Linear(256, 256), nn.Sigmoid(),
                nn.Linear(256, 256), nn.Sigmoid(),
                nn.Linear(256, 256), nn.Sigmoid(),
                nn.Linear(256, 10),
            )
        """,
            line=2,
            message="0.25^4",
        ),
        Invalid(
            """
            import torch.nn as tnn
            from torch.nn import Sigmoid as S
            net = tnn.Sequential(tnn.Linear(4, 4), S(), tnn.Sequential(tnn.Linear(4, 4), S()),
                                 tnn.Linear(4, 4), S(), tnn.Linear(4, 4), S())
        """,
            line=3,
        ),
        Invalid(
            """
            from torch import nn
            layers = []
            for _ in range(8):
                layers += [nn.Linear(64, 64), nn.Sigmoid()]
            model = nn.Sequential(*layers)
        """,
            line=3,
            message="8 saturating",
        ),
        Invalid(
            """
            import torch
            import torch.nn.functional as F
            from torch import nn
            class MLP(nn.Module):
                def forward(self, x):
                    x = torch.sigmoid(self.fc1(x))
                    x = F.sigmoid(self.fc2(x))
                    x = self.fc3(x).sigmoid()
                    x = torch.sigmoid(self.fc4(x))
                    return self.out(x)
        """,
            line=9,
        ),
        Invalid(
            """
            import torch
            from torch import nn
            class Deep(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.layers = nn.ModuleList([nn.Linear(32, 32) for _ in range(8)])
                    self.act = nn.Tanh()
                def forward(self, x):
                    for layer in self.layers:
                        x = self.act(layer(x))
                    return x
        """,
            line=10,
        ),
        Invalid(
            """
            from collections import OrderedDict
            from torch import nn
            net = nn.Sequential(OrderedDict([
                ("l1", nn.Linear(8, 8)), ("a1", nn.Sigmoid()),
                ("l2", nn.Linear(8, 8)), ("a2", nn.Sigmoid()),
                ("l3", nn.Linear(8, 8)), ("a3", nn.Sigmoid()),
                ("l4", nn.Linear(8, 8)), ("a4", nn.Sigmoid()),
            ]))
        """,
            line=3,
        ),
        Invalid(
            """
            from torch import nn
            model = nn.Sequential(*([nn.Linear(16, 16), nn.Softsign()] * 8), nn.Linear(16, 1))
        """,
            line=2,
        ),
        # two containers composed into one model
        Invalid(
            """
            from torch import nn
            enc = nn.Sequential(nn.Linear(784, 64), nn.Sigmoid(), nn.Linear(64, 8), nn.Sigmoid())
            dec = nn.Sequential(nn.Linear(8, 64), nn.Sigmoid(), nn.Linear(64, 784), nn.Sigmoid())
            autoencoder = nn.Sequential(enc, dec)
        """,
            line=4,
        ),
        # an autoencoder whose encoder and decoder meet in forward(): 6 tanh and a sigmoid
        Invalid(
            """
            from torch import nn
            class AutoEncoder(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.encoder = nn.Sequential(
                        nn.Linear(784, 128), nn.Tanh(), nn.Linear(128, 64), nn.Tanh(),
                        nn.Linear(64, 12), nn.Tanh(), nn.Linear(12, 3),
                    )
                    self.decoder = nn.Sequential(
                        nn.Linear(3, 12), nn.Tanh(), nn.Linear(12, 64), nn.Tanh(),
                        nn.Linear(64, 128), nn.Tanh(), nn.Linear(128, 784), nn.Sigmoid(),
                    )
                def forward(self, x):
                    encoded = self.encoder(x)
                    return encoded, self.decoder(encoded)
        """,
            line=15,
            message="7 saturating",
        ),
        # the activation and the depth are hyperparameters set at the top of the script
        Invalid(
            """
            import torch
            from torch import nn
            DEPTH = 8
            ACT = torch.tanh
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.hidden = nn.ModuleList([nn.Linear(10, 10) for _ in range(DEPTH)])
                    self.out = nn.Linear(10, 1)
                def forward(self, x):
                    for i in range(DEPTH):
                        x = self.hidden[i](x)
                        x = ACT(x)
                    return self.out(x)
        """,
            line=13,
            message="8 saturating",
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

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        if node.name.value != "forward":
            return  # the data path of a module is its forward()
        owner = next((c for c in self.index.module_classes.values() if c.forward is node), None)
        if owner is None:
            return  # not the forward of an nn.Module defined here
        path = forward_paths.deepest_saturating_path(self.index, owner)
        if path is None or path.node is None or path.depth < self.options["depth"]:
            return  # no deep saturating path through forward()
        if (
            isinstance(path.node, cst.Call)
            and self._longest_run(self._built_stack(owner, path.node)) >= self.options["depth"]
        ):
            return  # the whole stack sits in one nn.Sequential, reported where it is built
        self._report(path.node, list(path.activations))

    def _built_stack(self, owner: ModuleClass, call: cst.Call) -> list[layers.Layer]:
        attr = self_attribute(call.func)
        value = owner.attrs.get(attr) if attr is not None else None
        return (layers.sequence(self.index, value) or []) if value is not None else []

    def _check(self, node: cst.CSTNode, stack: list[layers.Layer]) -> None:
        longest = _saturating_run(stack)
        if tables.saturation_depth(longest) >= self.options["depth"]:
            self._report(node, longest)

    def _longest_run(self, stack: list[layers.Layer]) -> float:
        return tables.saturation_depth(_saturating_run(stack))

    def _report(self, node: cst.CSTNode, activations: list[str]) -> None:
        sigmoids = activations.count("sigmoid")
        if sigmoids:
            bound = 0.25**sigmoids
            text = f"backprop scales the gradient by at most 0.25^{sigmoids} = {bound:.1e}"
            if sigmoids < len(activations):  # the others shrink it too, by no fixed bound
                noun = "sigmoids alone scale" if sigmoids > 1 else "sigmoid alone scales"
                text = (
                    f"its {sigmoids} {noun} the gradient by at most 0.25^{sigmoids} = "
                    f"{bound:.1e}, and each of the others shrinks it further when saturated"
                )
        else:
            text = (
                "each derivative is below 1 off-centre and near 0 when saturated, "
                "so the gradient shrinks geometrically"
            )
        names = ", ".join(sorted(set(activations)))
        self.report(node, depth=len(activations), names=names, bound=text)


def _saturating_run(stack: list[layers.Layer]) -> list[str]:
    """The activations of the longest saturating run not broken by normalization."""
    run: list[str] = []
    longest: list[str] = []
    for layer in stack:
        if layer.kind == layers.SATURATING and layer.activation:
            run = [*run, layer.activation]
            longest = max(longest, run, key=tables.saturation_depth)
        elif layer.kind in (layers.NORM, layers.UNKNOWN, layers.RNN):
            run = []  # normalization resets the scale; unknown blocks may contain it
    return longest
