from __future__ import annotations

import libcst as cst

from gradlint import Invalid, Rule, Severity, Valid
from gradlint.semantics import init_draws, init_sites, layer_feeds, tables

WEIGHT_LAYERS = tables.DENSE_LAYERS | tables.RNN_LAYERS
RELU_GAIN_SQUARED = 1.9  # a gain whose square is near 2 is He's ReLU gain sqrt(2)
LINEAR_GAIN_SQUARED = 1.5  # below this a gain keeps too little variance for ReLU layers


class InitActivationMismatch(Rule):
    """
    ## What it does
    Flags a weight init tuned for the wrong activation: Xavier/Glorot (gain 1) on layers
    that feed ReLU-family activations in a deep plain stack (four or more such layers with
    no normalization or residual connection), and Kaiming/He with its ReLU gain (the
    default `nonlinearity="leaky_relu"` with `a=0`, or `"relu"`) on layers that feed
    sigmoid/tanh. The activation after each layer is read from `nn.Sequential` literals,
    from `forward()`, and for `isinstance` sweeps (`model.apply(init)`, `for m in
    self.modules()`) from the whole model.

    ## Why is this bad?
    Xavier keeps the variance of a *linear* (or tanh near 0) unit: `Var(w) = 2/(fan_in +
    fan_out)`. ReLU zeroes half of its inputs, so each ReLU layer halves the signal's
    variance and after L layers activations and gradients are about 2^-L smaller; He et
    al. (2015) report a 30-layer ReLU network that does not converge with Xavier init and
    does with theirs (`Var(w) = 2/fan_in`). Conversely, He's gain sqrt(2) makes the
    pre-activations of sigmoid/tanh units too large, pushing them into their flat tails.
    Passing the right gain (`gain=nn.init.calculate_gain("relu")`,
    `nonlinearity="tanh"`) fixes either; normalization layers make the choice matter less,
    so stacks with them are not flagged.

    ## Known limitations
    A sweep is judged only when this file builds the model it runs over and every
    activation in it is of one family; custom blocks, attention and norms keep it quiet.
    The stack depth that counts as deep is the `depth` option (default 4).
    """

    CODE = "GL109"
    SEVERITY = Severity.WARNING
    PREVIEW = True  # below 9 in 10 right on labelled real code (benchmarks/quality)
    MESSAGE = "`{target}` uses {scheme} init (gain {gain}) but feeds {activation}; {why}"
    HINT = (
        'Use nn.init.kaiming_normal_(w, nonlinearity="relu") before ReLU, and Xavier or '
        'nonlinearity="tanh" before tanh/sigmoid (nn.init.calculate_gain gives the gain)'
    )
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
            def init_weights(m):
                if isinstance(m, nn.Linear):
                    nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")
                    nn.init.zeros_(m.bias)
            model.apply(init_weights)
        """),
        # Xavier with the ReLU gain is He-like: matched
        Valid("""
            import torch.nn as nn
            import torch.nn.functional as F
            class MLP(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc1 = nn.Linear(64, 64)
                    self.fc2 = nn.Linear(64, 64)
                    self.fc3 = nn.Linear(64, 64)
                    self.fc4 = nn.Linear(64, 64)
                    for m in self.modules():
                        if isinstance(m, nn.Linear):
                            nn.init.xavier_uniform_(m.weight, gain=nn.init.calculate_gain("relu"))
                def forward(self, x):
                    x = F.relu(self.fc1(x))
                    x = F.relu(self.fc2(x))
                    x = F.relu(self.fc3(x))
                    return F.relu(self.fc4(x))
        """),
        # timm/transformers: Xavier on attention and GELU MLPs, with LayerNorm and residuals
        Valid("""
            from torch import nn
            class Block(nn.Module):
                def __init__(self, dim):
                    super().__init__()
                    self.norm1 = nn.LayerNorm(dim)
                    self.qkv = nn.Linear(dim, dim * 3)
                    self.proj = nn.Linear(dim, dim)
                    self.norm2 = nn.LayerNorm(dim)
                    self.fc1 = nn.Linear(dim, 4 * dim)
                    self.act = nn.GELU()
                    self.fc2 = nn.Linear(4 * dim, dim)
                    self.apply(self._init_weights)
                def _init_weights(self, m):
                    if isinstance(m, nn.Linear):
                        nn.init.xavier_uniform_(m.weight)
                def forward(self, x):
                    x = x + self.proj(self.qkv(self.norm1(x)))
                    return x + self.fc2(self.act(self.fc1(self.norm2(x))))
        """),
        # BatchNorm after every layer keeps the scale whatever the init
        Valid("""
            from torch import nn
            net = nn.Sequential(
                nn.Linear(128, 128), nn.BatchNorm1d(128), nn.ReLU(),
                nn.Linear(128, 128), nn.BatchNorm1d(128), nn.ReLU(),
                nn.Linear(128, 128), nn.BatchNorm1d(128), nn.ReLU(),
                nn.Linear(128, 128), nn.BatchNorm1d(128), nn.ReLU(),
            )
            def init(m):
                if isinstance(m, nn.Linear):
                    nn.init.xavier_normal_(m.weight)
            net.apply(init)
        """),
        # two ReLU layers are not a deep stack
        Valid("""
            from torch import nn
            model = nn.Sequential(
                nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 2)
            )
            for m in model.modules():
                if isinstance(m, nn.Linear):
                    nn.init.xavier_uniform_(m.weight)
        """),
        # Kaiming told that tanh follows
        Valid("""
            import torch
            from torch import nn
            class Encoder(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(256, 128)
                    nn.init.kaiming_normal_(self.fc.weight, nonlinearity="tanh")
                def forward(self, x):
                    return torch.tanh(self.fc(x))
        """),
        # Xavier is the right choice before tanh
        Valid("""
            from torch import nn
            model = nn.Sequential(*[m for _ in range(6) for m in (nn.Linear(64, 64), nn.Tanh())])
            def init(m):
                if isinstance(m, nn.Linear):
                    nn.init.xavier_uniform_(m.weight)
            model.apply(init)
        """),
        # torchvision: Kaiming fan_out for convs followed by BatchNorm and ReLU
        Valid("""
            import torch.nn as nn
            class VGG(nn.Module):
                def __init__(self, features):
                    super().__init__()
                    self.features = features
                    self.classifier = nn.Sequential(
                        nn.Linear(512, 4096), nn.ReLU(True), nn.Linear(4096, 10)
                    )
                    for m in self.modules():
                        if isinstance(m, nn.Conv2d):
                            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                        elif isinstance(m, nn.Linear):
                            nn.init.normal_(m.weight, 0, 0.01)
                def forward(self, x):
                    return self.classifier(self.features(x).flatten(1))
        """),
    ]
    # the same loop-grown MLP with ReLU: He init is the right one
    VALID.append(
        Valid("""
            import torch.nn as nn
            class Surrogate(nn.Module):
                def __init__(self, sizes, norm=False):
                    super().__init__()
                    body = []
                    for i in range(len(sizes) - 2):
                        body.append(nn.Linear(sizes[i], sizes[i + 1]))
                        body.append(nn.ReLU())
                    body.append(nn.Linear(sizes[-2], sizes[-1]))
                    self.body = nn.Sequential(*body)
                    for m in self.modules():
                        if isinstance(m, nn.Linear):
                            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                def forward(self, x):
                    return self.body(x)
        """)
    )

    INVALID = [
        Invalid(
            """
            from torch import nn
            model = nn.Sequential(
                nn.Linear(784, 256), nn.ReLU(),
                nn.Linear(256, 256), nn.ReLU(),
                nn.Linear(256, 256), nn.ReLU(),
                nn.Linear(256, 256), nn.ReLU(),
                nn.Linear(256, 10),
            )
            def init_weights(m):
                if isinstance(m, nn.Linear):
                    nn.init.xavier_uniform_(m.weight)
                    nn.init.zeros_(m.bias)
            model.apply(init_weights)
        """,
            line=11,
            message="2^-4",
        ),
        Invalid(
            """
            import torch.nn as nn
            import torch.nn.functional as F
            class MLP(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc1 = nn.Linear(64, 64)
                    self.fc2 = nn.Linear(64, 64)
                    self.fc3 = nn.Linear(64, 64)
                    self.fc4 = nn.Linear(64, 64)
                    nn.init.xavier_normal_(self.fc2.weight)
                def forward(self, x):
                    x = F.relu(self.fc1(x))
                    x = F.relu(self.fc2(x))
                    x = F.relu(self.fc3(x))
                    return F.relu(self.fc4(x))
        """,
            line=10,
            message="relu",
        ),
        Invalid(
            """
            import torch.nn.functional as F
            from torch import nn
            from torch.nn.init import xavier_uniform_
            class Deep(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.layers = nn.ModuleList([nn.Linear(128, 128) for _ in range(10)])
                    self.out = nn.Linear(128, 10)
                    for m in self.modules():
                        if isinstance(m, nn.Linear):
                            xavier_uniform_(m.weight)
                def forward(self, x):
                    for layer in self.layers:
                        x = F.leaky_relu(layer(x))
                    return self.out(x)
        """,
            line=11,
            message="10 ReLU-family",
        ),
        Invalid(
            """
            import torch
            from torch import nn
            class Encoder(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(256, 128)
                    nn.init.kaiming_normal_(self.fc.weight)
                def forward(self, x):
                    return torch.tanh(self.fc(x))
        """,
            line=7,
            message="saturate",
        ),
        Invalid(
            """
            from torch import nn
            net = nn.Sequential(nn.Linear(64, 64), nn.Sigmoid(), nn.Linear(64, 64), nn.Sigmoid())
            def init(m):
                if isinstance(m, nn.Linear):
                    nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")
            net.apply(init)
        """,
            line=5,
            message="sigmoid",
        ),
        # a sized MLP grown in a loop with tanh, then a He sweep over its Linear layers
        Invalid(
            """
            import torch.nn as nn
            class Surrogate(nn.Module):
                def __init__(self, sizes):
                    super().__init__()
                    body = []
                    for i in range(len(sizes) - 2):
                        body.append(nn.Linear(sizes[i], sizes[i + 1]))
                        body.append(nn.Tanh())
                    body.append(nn.Linear(sizes[-2], sizes[-1]))
                    self.body = nn.Sequential(*body)
                    for m in self.modules():
                        if isinstance(m, nn.Linear):
                            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                def forward(self, x):
                    return self.body(x)
        """,
            line=13,
        ),
    ]

    def visit_Module(self, node: cst.Module) -> None:
        for site in init_sites.init_facts(self.index).sites:
            if site.call is None or not site.param.startswith("weight"):
                continue  # sign flips and biases
            found = init_draws.gain(self.index, site.call)
            if found is None:
                continue  # not Xavier/Kaiming, or a gain we cannot read
            scheme, gain, meant = found
            if scheme == "xavier" and gain**2 < LINEAR_GAIN_SQUARED:
                self._check_xavier(site, gain)
            elif (
                scheme == "kaiming"
                and meant in ("relu", "leaky_relu")
                and gain**2 >= RELU_GAIN_SQUARED
            ):
                self._check_kaiming(site, gain)

    def _check_xavier(self, site: init_sites.InitSite, gain: float) -> None:
        profile, follower = self._context(site)
        if profile is None or not profile.is_plain_stack:
            return  # unknown model, or normalization/residuals/custom blocks in it
        if site.types and not profile.only(layer_feeds.RELU_LIKE):
            return  # a sweep over a model with other activations too
        if follower is not None and follower not in layer_feeds.RELU_LIKE:
            return  # this layer feeds something else
        depth = profile.count(layer_feeds.RELU_LIKE, site.types or None)
        if depth < self.options["depth"]:
            return  # a shallow stack: the halving stays small
        activation = follower or "ReLU-family activations"
        why = (
            f"in this plain stack of {depth} ReLU-family layers each one halves the signal "
            f"variance, about 2^-{depth} = {2.0**-depth:.0e} overall"
        )
        self._report(site, "Xavier", gain, activation, why)

    def _check_kaiming(self, site: init_sites.InitSite, gain: float) -> None:
        profile, follower = self._context(site)
        if profile is None or profile.has_norm:
            return  # unknown model, or normalization re-scales the pre-activations
        if site.types and not (
            profile.only(layer_feeds.SATURATING)
            and profile.count(layer_feeds.SATURATING, site.types)
        ):
            return  # the swept layers feed ReLU-family or mixed activations
        if follower is not None and follower not in layer_feeds.SATURATING:
            return  # this layer feeds something else
        why = (
            "the ReLU gain sqrt(2) makes the pre-activations too large, so units start in "
            "the flat tails and saturate"
        )
        self._report(site, "Kaiming/He", gain, follower or "sigmoid/tanh activations", why)

    def _context(self, site: init_sites.InitSite) -> tuple[layer_feeds.Profile | None, str | None]:
        """The model profile, and the follower of the layer for a direct (non-sweep) init."""
        if site.types:
            if not site.types <= WEIGHT_LAYERS:
                return None, None  # norms, embeddings, unresolved types
            return layer_feeds.sweep_profile(self.index, site), None
        if site.cls is None or site.layer_attr is None:
            return None, None  # a layer we cannot follow into forward()
        profile = layer_feeds.class_profile(self.index, site.cls)
        follower = profile.feeds.get(site.layer_attr)
        return (profile, follower) if follower is not None else (None, None)

    def _report(
        self, site: init_sites.InitSite, scheme: str, gain: float, activation: str, why: str
    ) -> None:
        target, gain_text = init_sites.target_text(site), f"{gain:.3g}"
        self.report(
            site.node, target=target, scheme=scheme, gain=gain_text, activation=activation, why=why
        )
