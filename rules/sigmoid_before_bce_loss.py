from __future__ import annotations

import libcst as cst
from libcst.metadata import CodeRange

from gradlint import Invalid, Rule, Severity, Valid
from gradlint.findings import Fix
from gradlint.semantics import grad_mode, losses, model_outputs
from gradlint.semantics.index import TorchIndex
from gradlint.semantics.names import dotted_name
from gradlint.semantics.nodes import find

WHY = {
    losses.BCE: (
        "log(sigmoid(x)) in two steps saturates, so confident wrong predictions get no gradient"
    ),
    losses.BCE_LOGITS: (
        "it applies a sigmoid itself, so the input is squashed twice into (0.5, 0.73): the loss "
        "cannot approach 0 and its gradient stays small"
    ),
}


class SigmoidBeforeBceLoss(Rule):
    """
    ## What it does
    Flags `nn.BCELoss` / `F.binary_cross_entropy` applied to sigmoid outputs: at the call
    site (`criterion(torch.sigmoid(x), y)`), or through a model built in the same file whose
    `forward` (or a helper such as `decode`) returns a sigmoid, whose `nn.Sequential` ends in
    `nn.Sigmoid` (also when containers are composed), or one element of whose returned tuple
    does (`validity, label = D(x)`). The loss may sit in a loss function or class the output
    is passed to. Also flags `nn.BCEWithLogitsLoss` given sigmoid outputs: the sigmoid is
    then applied twice.

    ## Why is this bad?
    Computing `log(sigmoid(x))` in two steps is numerically fragile. In float32 a sigmoid
    rounds to exactly 1.0 once x exceeds about 17, so `log(1 - p)` is `log(0)`; BCELoss
    clamps the log at -100, and the gradient of a confidently wrong prediction becomes 0
    instead of the largest one in the batch. `nn.BCEWithLogitsLoss` fuses the two steps with
    the log-sum-exp trick and stays exact for any logit (it also accepts `pos_weight`), and
    unlike BCELoss it is allowed under mixed-precision autocast.

    `BCEWithLogitsLoss` applies the sigmoid itself: given probabilities it squashes them again
    into (0.5, 0.73), so the loss cannot approach 0 and the model barely learns.

    BCELoss on probabilities that do not visibly come from a sigmoid, sigmoid used only for
    predictions, thresholds or a printed cost, and a loss computed under `torch.no_grad()`
    (an evaluation score: no gradient is lost) are not flagged. One model's sigmoid fed to
    one loss is reported once, at its first call.

    ## Known limitations
    Only models, criteria and loss helpers built in the same file are linked to the loss call.

    ## Fix
    `--fix` rewrites the simple, local forms: `F.binary_cross_entropy(torch.sigmoid(z), y)`
    becomes `F.binary_cross_entropy_with_logits(z, y)`, and `criterion(torch.sigmoid(z), y)`
    drops the sigmoid and turns the single `nn.BCELoss()` that `criterion` names into
    `nn.BCEWithLogitsLoss()` (only when `criterion` is used nowhere else). A sigmoid inside a
    model's `forward()` is left to you: other code may rely on the model returning
    probabilities. The loss value is the same; gradients become stable.
    """

    CODE = "GL107"
    # nn.BCELoss, nn.BCEWithLogitsLoss or F.binary_cross_entropy(_with_logits)
    NEEDS = ("BCELoss", "BCEWithLogitsLoss", "binary_cross_entropy")
    SEVERITY = Severity.WARNING
    IN_TESTS = True  # a real bug in test helpers too
    MESSAGE = "{loss} is applied to {source}; {why}"
    HINT = (
        "Drop the sigmoid and use nn.BCEWithLogitsLoss / F.binary_cross_entropy_with_logits "
        "on the logits; apply sigmoid only for predictions"
    )

    VALID = [
        Valid("""
            import torch
            from torch import nn
            criterion = nn.BCEWithLogitsLoss()
            def train_step(model, x, targets):
                logits = model(x)
                return criterion(logits, targets)
        """),
        # probabilities from a model this file does not define: cannot tell
        Valid("""
            from torch import nn
            from mypackage.models import build_detector
            model = build_detector()
            criterion = nn.BCELoss()
            def step(x, y):
                return criterion(model(x), y)
        """),
        # sigmoid for metrics only
        Valid("""
            import torch
            import torch.nn.functional as F
            def step(logits, target):
                loss = F.binary_cross_entropy_with_logits(logits, target.float())
                preds = (torch.sigmoid(logits) > 0.5).float()
                acc = (preds == target).float().mean()
                return loss, acc
        """),
        # probabilities that are not a sigmoid (a normalised score, a softmax column)
        Valid("""
            import torch.nn.functional as F
            def mask_loss(scores, target):
                p = F.softmax(scores, dim=1)[:, 1]
                return F.binary_cross_entropy(p, target)
        """),
        # sigmoid only at inference
        Valid("""
            import torch
            from torch import nn
            class Head(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(64, 1)
                def forward(self, x):
                    if self.training:
                        return self.fc(x)
                    return torch.sigmoid(self.fc(x))
            model = Head()
            loss_fn = nn.BCEWithLogitsLoss()
            out = loss_fn(model(x), y)
        """),
        # the sigmoid sits in one branch only
        Valid("""
            import torch
            from torch.nn import functional as F
            def loss(out, y, already_probs):
                if not already_probs:
                    out = torch.sigmoid(out)
                return F.binary_cross_entropy(out, y)
        """),
        # not torch: a NumPy logistic regression
        Valid("""
            import numpy as np
            def sigmoid(z):
                return 1 / (1 + np.exp(-z))
            def binary_cross_entropy(p, y):
                return -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean()
            loss = binary_cross_entropy(sigmoid(np.zeros(4)), np.ones(4))
        """),
        # a GAN discriminator with two heads: the adversarial one returns logits
        Valid("""
            import torch
            from torch import nn
            class Discriminator(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.trunk = nn.Sequential(nn.Linear(784, 256), nn.LeakyReLU(0.2))
                    self.real_or_fake = nn.Linear(256, 1)
                    self.digit = nn.Sequential(nn.Linear(256, 10), nn.Softmax(dim=1))
                def forward(self, img):
                    h = self.trunk(img)
                    return self.real_or_fake(h), self.digit(h)
            disc = Discriminator()
            adversarial = nn.BCEWithLogitsLoss()
            for imgs, labels in loader:
                realness, digit = disc(imgs)
                loss = adversarial(realness, torch.ones_like(realness))
        """),
        # a loss helper that is only ever given logits
        Valid("""
            import torch.nn.functional as F
            from torch import nn
            class Scorer(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.out = nn.Linear(32, 1)
                def forward(self, x):
                    return self.out(x)
            scorer = Scorer()
            def bce(logits, target):
                return F.binary_cross_entropy_with_logits(logits, target)
            def step(x, y):
                return bce(scorer(x), y)
        """),
        # the cost printed for the log, not backpropagated
        Valid("""
            import torch
            import torch.nn.functional as F
            for epoch in range(5):
                probas = torch.sigmoid(x @ w)
                print(" | Cost: %.3f" % F.binary_cross_entropy(probas, y))
        """),
        # BCELoss on sigmoid outputs that only scores a validation set: no graph, no gradient
        Valid("""
            import torch
            from torch import nn
            class Scorer(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.head = nn.Sequential(nn.Linear(32, 1), nn.Sigmoid())
                def forward(self, x):
                    return self.head(x)
            scorer = Scorer()
            bce = nn.BCELoss()
            @torch.no_grad()
            def validate(loader):
                return sum(bce(scorer(x), y).item() for x, y in loader)
            def report(loader):
                with torch.inference_mode():
                    for x, y in loader:
                        print(bce(scorer(x), y))
        """),
    ]
    INVALID = [
        # DCGAN: real and fake batches through the same discriminator, one finding for both
        Invalid(
            """
            import torch.nn as nn
            netD = nn.Sequential(nn.Conv2d(3, 64, 4, 2, 1), nn.LeakyReLU(0.2), nn.Flatten(),
                                 nn.LazyLinear(1), nn.Sigmoid())
            criterion = nn.BCELoss()
            for real, _ in dataloader:
                errD_real = criterion(netD(real).view(-1), ones)
                errD_fake = criterion(netD(fake.detach()).view(-1), zeros)
                (errD_real + errD_fake).backward()
        """,
            line=6,
        ),
        Invalid(
            """
            import torch
            from torch import nn
            criterion = nn.BCELoss()
            def train_step(model, x, targets):
                logits = model(x)
                return criterion(torch.sigmoid(logits), targets)
        """,
            line=6,
            message="`BCELoss` is applied to sigmoid outputs",
            fixed="""
            import torch
            from torch import nn
            criterion = nn.BCEWithLogitsLoss()
            def train_step(model, x, targets):
                logits = model(x)
                return criterion(logits, targets)
        """,
        ),
        # the DCGAN tutorial: the discriminator ends in nn.Sigmoid
        Invalid(
            """
            import torch.nn as nn
            netD = nn.Sequential(
                nn.Conv2d(3, 64, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(64, 1, 4, 1, 0, bias=False), nn.Sigmoid(),
            )
            criterion = nn.BCELoss()
            def d_step(real, label):
                output = netD(real).view(-1)
                errD_real = criterion(output, label)
                return errD_real
        """,
            line=9,
            message="nn.Sequential",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn
            class Discriminator(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc1 = nn.Linear(784, 256)
                    self.fc2 = nn.Linear(256, 1)
                def forward(self, x):
                    x = torch.relu(self.fc1(x))
                    return torch.sigmoid(self.fc2(x))
            D = Discriminator().to("cuda")
            bce = nn.BCELoss()
            for real, _ in loader:
                d_loss = bce(D(real), torch.ones(real.size(0), 1))
        """,
            line=14,
            message="the output of `Discriminator`",
        ),
        Invalid(
            """
            import torch.nn.functional as F
            def step(logits, y):
                return F.binary_cross_entropy(logits.sigmoid().squeeze(1), y.float())
        """,
            line=3,
        ),
        Invalid(
            """
            import torch
            import torch.nn.functional as F
            def step(logits, y):
                return F.binary_cross_entropy(torch.sigmoid(logits), y, reduction="sum")
        """,
            line=4,
            fixed="""
            import torch
            import torch.nn.functional as F
            def step(logits, y):
                return F.binary_cross_entropy_with_logits(logits, y, reduction="sum")
        """,
        ),
        Invalid(
            """
            from torch.nn import BCELoss, Linear, Module, Sigmoid
            class Model(Module):
                def __init__(self):
                    super().__init__()
                    self.linear = Linear(30, 1)
                    self.sigmoid = Sigmoid()
                    self.loss = BCELoss()
                def training_step(self, x, y):
                    probs = self.sigmoid(self.linear(x))
                    return self.loss(probs, y)
        """,
            line=10,
        ),
        # DCGAN: the discriminator's Sequential ends in a sigmoid, run through data_parallel or not
        Invalid(
            """
            import torch.nn as nn
            class Critic(nn.Module):
                def __init__(self, ngpu):
                    super().__init__()
                    self.ngpu = ngpu
                    self.main = nn.Sequential(nn.Conv2d(3, 64, 4, 2, 1), nn.LeakyReLU(0.2),
                                              nn.Conv2d(64, 1, 4, 1, 0), nn.Sigmoid())
                def forward(self, x):
                    if self.ngpu > 1:
                        out = nn.parallel.data_parallel(self.main, x, range(self.ngpu))
                    else:
                        out = self.main(x)
                    return out.view(-1)
            critic = Critic(1)
            bce = nn.BCELoss()
            for real, _ in loader:
                err_real = bce(critic(real), ones)
        """,
            line=17,
            message="the output of `Critic`",
        ),
        # VAE: a `decode` helper ends in a sigmoid; the loss sits in a loss function
        Invalid(
            """
            import torch
            import torch.nn.functional as F
            from torch import nn
            class AutoEncoder(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.enc = nn.Linear(784, 20)
                    self.dec = nn.Linear(20, 784)
                def decode(self, z):
                    return torch.sigmoid(self.dec(z))
                def forward(self, x):
                    z = self.enc(x)
                    return self.decode(z), z
            net = AutoEncoder()
            def reconstruction_loss(recon, x):
                return F.binary_cross_entropy(recon, x.view(-1, 784), reduction="sum")
            for x, _ in loader:
                recon, z = net(x)
                loss = reconstruction_loss(recon, x)
        """,
            line=16,
            message="passed to `reconstruction_loss` on line 19",
        ),
        # auxiliary-classifier GAN: the sigmoid ends one element of the returned tuple
        Invalid(
            """
            import torch
            from torch import nn
            class Discriminator(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.validity = nn.Sequential(nn.Linear(512, 1), nn.Sigmoid())
                    self.label = nn.Linear(512, 10)
                def forward(self, feats):
                    return self.validity(feats), self.label(feats)
            D = Discriminator()
            adversarial_loss = torch.nn.BCELoss()
            for feats, labels in loader:
                validity, _ = D(feats)
                d_loss = adversarial_loss(validity, torch.ones_like(validity))
        """,
            line=14,
        ),
        # the head is wrapped in a sigmoid after the fact (when no Wasserstein loss is used)
        Invalid(
            """
            import torch
            from torch import nn
            class Disc(nn.Module):
                def __init__(self, wass=False):
                    super().__init__()
                    self.model = nn.Sequential(nn.Linear(64, 32), nn.LeakyReLU(), nn.Linear(32, 1))
                    if not wass:
                        self.model = nn.Sequential(self.model, torch.nn.Sigmoid())
                def forward(self, x):
                    return self.model(x)
            disc = Disc()
            bce_loss = torch.nn.BCELoss()
            def d_step(x, valid):
                return bce_loss(disc(x), valid)
        """,
            line=14,
        ),
        # a notebook calls a helper method of the model object directly
        Invalid(
            """
            import torch
            import torch.nn.functional as F
            class GAN(torch.nn.Module):
                def __init__(self):
                    super().__init__()
                    self.disc = torch.nn.Sequential(torch.nn.Linear(784, 1), torch.nn.Sigmoid())
                def discriminator_forward(self, img):
                    return self.disc(img).view(-1)
            model = GAN()
            model = model.to("cuda")
            for imgs, _ in loader:
                pred = model.discriminator_forward(imgs)
                loss = F.binary_cross_entropy(pred, torch.ones(imgs.size(0)))
        """,
            line=13,
        ),
        # a sigmoid in front of BCEWithLogitsLoss, which applies its own
        Invalid(
            """
            import torch
            from torch import nn
            class Tagger(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(128, 5)
                def forward(self, x):
                    return torch.sigmoid(self.fc(x))
            tagger = Tagger()
            loss_fn = nn.BCEWithLogitsLoss()
            def step(x, tags):
                return loss_fn(tagger(x), tags)
        """,
            line=12,
            message="squashed twice",
        ),
        Invalid(
            """
            import torch
            import torch.nn.functional as F
            def step(logits, y):
                return F.binary_cross_entropy_with_logits(torch.sigmoid(logits), y)
        """,
            line=4,
            fixed="""
            import torch
            import torch.nn.functional as F
            def step(logits, y):
                return F.binary_cross_entropy_with_logits(logits, y)
        """,
        ),
    ]

    def leave_Module(self, original_node: cst.Module) -> None:
        reported: set[cst.Call] = set()
        models: set[tuple[cst.CSTNode, str]] = set()
        off: list[CodeRange] | None = None
        for use in losses.loss_facts(self.index).uses:
            output = use.output
            if use.family not in WHY or output is None or output.kind != model_outputs.SIGMOID:
                continue  # not a binary cross-entropy on a visible sigmoid
            if use.call in reported:
                continue  # a loss wrapper called from several places: once is enough
            if off is None:
                found = grad_mode.gradient_free(self.index, original_node)
                off = [self.position(node) for node in found]
            if grad_mode.inside(self.position(use.call), off):
                continue  # evaluated under no_grad: no gradient to lose
            if output.model is not None and (output.node, use.loss) in models:
                continue  # the same model's sigmoid into the same loss: one finding says it
            reported.add(use.call)
            if output.model is not None:
                models.add((output.node, use.loss))
            loss, why = f"`{use.loss}`", WHY[use.family]
            if output.model is None:
                fix = self._fix(use) if use.via is None else None
                source = "sigmoid outputs" + self._through(use)
                self.report(use.call, loss=loss, source=source, why=why, fix=fix)
                continue
            line = self.position(output.node).start.line
            through = self._through(use)
            ends = f"which ends in a sigmoid (line {line})"
            source = f"the output of `{output.model}`{through}, {ends}"
            self.report(use.call, loss=loss, source=source, why=why)

    def _through(self, use: losses.LossUse) -> str:
        """` passed to `loss_fn` on line 12` for a loss inside a wrapper function or class."""
        if use.via is None:
            return ""
        return f" passed to `{use.through}` on line {self.position(use.via).start.line}"

    def _fix(self, use: losses.LossUse) -> Fix | None:
        """`F.binary_cross_entropy(torch.sigmoid(z), y)` -> `F.binary_cross_entropy_with_logits(z, y)`,
        and `criterion(torch.sigmoid(z), y)` -> `criterion(z, y)` with the one `nn.BCELoss()`
        that `criterion` names swapped for `nn.BCEWithLogitsLoss()`."""
        logits = _sigmoid_argument(self.index, use.input)
        if logits is None:
            return None  # the sigmoid is not written inline in the loss call
        code = self.context.module.code_for_node
        edits = [self.replace(use.input, code(logits))]
        if use.family == losses.BCE_LOGITS:  # the loss applies the sigmoid itself
            return Fix("drop the second sigmoid", tuple(edits))
        func = use.call.func
        if self.index.call_name(use.call) == BCE_FUNCTION and isinstance(func, cst.Attribute):
            edits.append(self.replace(func.attr, "binary_cross_entropy_with_logits"))
        else:
            built = self._only_construction(use)
            if built is None:
                return None  # the criterion is built elsewhere or used more than once
            edits.append(self.replace(built, "BCEWithLogitsLoss"))
        return Fix("use the logits with the fused, numerically stable loss", tuple(edits))

    def _only_construction(self, use: losses.LossUse) -> cst.CSTNode | None:
        """The `BCELoss` name in the single `criterion = nn.BCELoss()` of the file, when
        `criterion` appears nowhere else but in this call."""
        name = dotted_name(use.call.func)
        if name is None or self.index.source.count(name.split(".")[-1]) != 2:
            return None
        for node in find(self.context.module, cst.Assign):
            targets = [dotted_name(t.target) for t in node.targets]
            value = node.value
            if (
                targets == [name]
                and isinstance(value, cst.Call)
                and self.index.call_name(value) == BCE_MODULE
            ):
                func = value.func
                return func.attr if isinstance(func, cst.Attribute) else func
        return None


BCE_FUNCTION = "torch.nn.functional.binary_cross_entropy"
BCE_MODULE = "torch.nn.BCELoss"


def _sigmoid_argument(index: TorchIndex, node: cst.BaseExpression) -> cst.BaseExpression | None:
    """`z` for `torch.sigmoid(z)`, `F.sigmoid(z)` or `z.sigmoid()`; None otherwise."""
    if not isinstance(node, cst.Call):
        return None
    if index.call_name(node) in (
        "torch.sigmoid",
        "torch.nn.functional.sigmoid",
        "torch.special.expit",
    ):
        return node.args[0].value if len(node.args) == 1 and not node.args[0].keyword else None
    func = node.func
    if isinstance(func, cst.Attribute) and func.attr.value == "sigmoid" and not node.args:
        return func.value if index.call_name(node) is None else None
    return None
