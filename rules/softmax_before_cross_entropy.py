from __future__ import annotations

from collections.abc import Sequence

import libcst as cst
from libcst.metadata import CodeRange

from gradlint import Invalid, Rule, Severity, Valid
from gradlint.project import ClassFacts, Deferred, FileSummary
from gradlint.semantics import grad_mode, losses, model_outputs

WHAT = {
    model_outputs.SOFTMAX: "softmax probabilities",
    model_outputs.SIGMOID: "sigmoid probabilities",
    model_outputs.LOGITS: "raw logits",
}
ENDS_IN = {
    model_outputs.SOFTMAX: "softmax",
    model_outputs.SIGMOID: "a sigmoid",
    model_outputs.LOGITS: "a linear layer (raw logits)",
}
WHY_CROSS_ENTROPY = (
    "it applies log-softmax itself, so the extra softmax squashes its input into [0, 1] and "
    "the gradient fades as predictions grow confident"
)
WHY_NLL = "it expects log-probabilities, so it optimises the wrong quantity"
WHY_LOG = "small probabilities round to 0 and log(0) = -inf; log_softmax computes it stably"


class SoftmaxBeforeCrossEntropy(Rule):
    """
    ## What it does
    Flags `nn.CrossEntropyLoss` / `F.cross_entropy` applied to outputs that already went
    through softmax: at the call site (`criterion(F.softmax(out, 1), y)`, `exp(log_softmax(x))`),
    or through a model built in the same file whose `forward` (or a helper method it calls)
    returns softmax, whose `nn.Sequential` ends in `nn.Softmax` (also when containers are
    composed), or one element of whose returned tuple does (`pred, aux = D(x)`). The loss may
    sit in a loss function or class the output is passed to. Also flags `nn.NLLLoss` /
    `F.nll_loss` on probabilities or raw logits, and `log(softmax(x))` written by hand (also
    with the softmax spelled out, `torch.log(torch.exp(s) / torch.sum(torch.exp(t), 1))`).

    ## Why is this bad?
    Cross-entropy expects raw logits and applies log-softmax itself. A softmax in front of it
    feeds probabilities in [0, 1] as logits: the loss can no longer approach 0 (with 10
    classes it stays above about 1.46) and the gradient is multiplied by the softmax
    Jacobian `p(1 - p)`, which fades as the model becomes confident, so training stalls.
    `NLLLoss` expects log-probabilities (`F.log_softmax`); on probabilities or logits it
    optimises the wrong quantity. `log(softmax(x))` in two steps underflows: a probability
    below about 1e-45 (float32) becomes 0 and its log `-inf`, giving NaN gradients;
    `F.log_softmax` computes the same value with the log-sum-exp trick.

    Softmax for predictions or metrics, as a soft *target*, or in a distillation loss
    (`F.kl_div(F.log_softmax(s), F.softmax(t))`) is fine and not flagged.

    ## Known limitations
    Only models, criteria and loss helpers built in the same file are linked to the loss call
    (a model class imported from another file of the project is looked up too, and so is a
    parameter annotated with one, `def compute_loss(self, model: BaseModel, ...)`: a subclass
    of that class whose forward ends in softmax is reported in its own file). A script that
    builds its one model and a criterion it never calls (the training part is another file
    run after it) has the two paired. One model's output fed to one loss is reported once, at
    its first call, and a loss computed under `torch.no_grad()` (an evaluation score: no
    gradient goes through it) is left alone.
    """

    CODE = "GL106"
    # a CE/NLL loss, or `log()` of a softmax (one written out with `exp`)
    NEEDS = ("CrossEntropyLoss", "NLLLoss", "cross_entropy", "nll_loss", "oftmax", "exp(")
    SEVERITY = Severity.ERROR
    OTHER_SEVERITY = Severity.WARNING
    OTHER_SEVERITY_WHEN = "when the softmax is seen through a model class, or for log(softmax(x))"
    IN_TESTS = True  # a real bug in test helpers too
    JOINS_DEFERRED = True
    MESSAGE = "{loss} is applied to {source}; {why}"
    HINT = (
        "Pass raw logits to CrossEntropyLoss (apply softmax only for predictions); give NLLLoss "
        "F.log_softmax(...); use log_softmax instead of log(softmax(...))"
    )

    VALID = [
        Valid("""
            import torch.nn.functional as F
            from torch import nn
            criterion = nn.CrossEntropyLoss()
            def train_step(model, x, y, optimizer):
                logits = model(x)
                loss = criterion(logits, y)
                loss.backward()
                optimizer.step()
        """),
        # softmax for metrics only; the loss gets the logits
        Valid("""
            import torch
            import torch.nn.functional as F
            def evaluate(model, loader):
                for images, target in loader:
                    output = model(images)
                    loss = F.cross_entropy(output, target)
                    probs = F.softmax(output, dim=-1)
                    pred = probs.argmax(dim=-1)
                    acc = (pred == target).float().mean()
        """),
        # knowledge distillation: KL divergence between softened distributions is correct
        Valid("""
            import torch.nn.functional as F
            from torch import nn
            def distill_loss(student_logits, teacher_logits, labels, T=4.0):
                soft = F.kl_div(F.log_softmax(student_logits / T, dim=-1),
                                F.softmax(teacher_logits / T, dim=-1), reduction="batchmean")
                return soft * T * T + nn.CrossEntropyLoss()(student_logits, labels)
        """),
        # soft targets: the *target* is a softmax, the input is logits
        Valid("""
            import torch
            import torch.nn.functional as F
            def soft_target_loss(logits, teacher_logits):
                targets = torch.softmax(teacher_logits, dim=-1)
                return F.cross_entropy(logits, targets)
        """),
        # the classic MNIST example: log_softmax + nll_loss is the correct pair
        Valid("""
            import torch.nn as nn
            import torch.nn.functional as F
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(9216, 10)
                def forward(self, x):
                    return F.log_softmax(self.fc(x), dim=1)
            model = Net()
            def train(data, target):
                output = model(data)
                return F.nll_loss(output, target)
        """),
        # softmax only at inference: training sees the logits
        Valid("""
            from torch import nn
            class Classifier(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.head = nn.Linear(512, 100)
                def forward(self, x):
                    x = self.head(x)
                    if self.training:
                        return x
                    return x.softmax(dim=-1)
            model = Classifier()
            criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
            for x, y in []:
                loss = criterion(model(x), y)
        """),
        # HF style: the loss takes the logits, probabilities are returned alongside
        Valid("""
            from torch import nn
            from torch.nn import CrossEntropyLoss
            class ForSequenceClassification(nn.Module):
                def forward(self, pooled, labels=None):
                    logits = self.classifier(self.dropout(pooled))
                    probs = nn.functional.softmax(logits, dim=-1)
                    loss = None
                    if labels is not None:
                        loss_fct = CrossEntropyLoss()
                        loss = loss_fct(logits.view(-1, self.num_labels), labels.view(-1))
                    return loss, probs
        """),
        # softmax applied in one branch only: which one runs is not visible
        Valid("""
            import torch.nn.functional as F
            def step(out, y, use_probs):
                if use_probs:
                    out = F.softmax(out, dim=1)
                return F.cross_entropy(out, y)
        """),
        # entropy with an epsilon: the author guards log(0) on purpose
        Valid("""
            import torch
            def entropy(logits):
                p = torch.softmax(logits, dim=-1)
                return -(p * torch.log(p + 1e-8)).sum(-1)
        """),
        # not torch: NumPy helpers with the same names
        Valid("""
            import numpy as np
            def softmax(z):
                e = np.exp(z - z.max())
                return e / e.sum()
            def cross_entropy(p, y):
                return -np.log(p[y])
            loss = cross_entropy(softmax(np.zeros(3)), 0)
        """),
        # the model returns (logits, probabilities); the loss takes the logits
        Valid("""
            import torch
            import torch.nn.functional as F
            class SoftmaxRegression(torch.nn.Module):
                def __init__(self):
                    super().__init__()
                    self.linear = torch.nn.Linear(784, 10)
                def forward(self, x):
                    logits = self.linear(x)
                    probas = F.softmax(logits, dim=1)
                    return logits, probas
            model = SoftmaxRegression()
            for features, targets in train_loader:
                logits, probas = model(features)
                cost = F.cross_entropy(logits, targets)
        """),
        # a focal-loss class around CrossEntropyLoss, given logits
        Valid("""
            import torch
            from torch import nn
            class FocalLoss(nn.Module):
                def __init__(self, gamma=2.0):
                    super().__init__()
                    self.gamma = gamma
                    self.ce = nn.CrossEntropyLoss(reduction="none")
                def forward(self, logits, target):
                    ce = self.ce(logits, target)
                    return ((1 - torch.exp(-ce)) ** self.gamma * ce).mean()
            model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 4))
            criterion = FocalLoss()
            def step(x, y):
                return criterion(model(x), y)
        """),
        # a softmax classifier scored with CrossEntropyLoss under no_grad only; training
        # uses NLLLoss on its log: no gradient goes through the evaluation loss
        Valid("""
            import torch
            from torch import nn
            class Classifier(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(64, 10)
                def forward(self, x):
                    return torch.softmax(self.fc(x), dim=1)
            model = Classifier()
            score = nn.CrossEntropyLoss()
            @torch.no_grad()
            def evaluate(loader):
                return sum(score(model(x), y).item() for x, y in loader)
        """),
    ]
    # a log of a ratio of two exponentials that is no softmax
    VALID.append(
        Valid("""
            import torch
            def log_ratio(a, b):
                return torch.log(torch.exp(a) / torch.exp(b))
        """)
    )

    # the same split script with log-probabilities and NLLLoss, and one with two models
    VALID.append(
        Valid("""
            import torch.nn.functional as F
            from torch import nn
            class IrisNet(nn.Module):
                def __init__(self, n_in):
                    super().__init__()
                    self.out = nn.Linear(n_in, 3)
                def forward(self, x):
                    return F.log_softmax(self.out(x), dim=1)
            class Scorer(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.out = nn.Linear(4, 3)
                def forward(self, x):
                    return F.softmax(self.out(x), dim=1)
            net = IrisNet(4)
            criterion = nn.NLLLoss()
        """)
    )

    INVALID = [
        # the same model and loss in the training and the validation loop: one finding
        Invalid(
            """
            import torch
            from torch import nn
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(32, 4)
                    self.softmax = nn.Softmax(dim=-1)
                def forward(self, x):
                    return self.softmax(self.fc(x))
            model = Net()
            loss_f = nn.CrossEntropyLoss()
            for epoch in range(10):
                for x, y in train_loader:
                    loss = loss_f(model(x), y)
                    loss.backward()
                for x, y in valid_loader:
                    valid_loss = loss_f(model(x), y).item()
        """,
            line=14,
        ),
        Invalid(
            """
            import torch.nn.functional as F
            from torch import nn
            criterion = nn.CrossEntropyLoss()
            def train_step(model, x, y, optimizer):
                logits = model(x)
                loss = criterion(F.softmax(logits, dim=1), y)
                loss.backward()
                optimizer.step()
        """,
            line=6,
            message="`CrossEntropyLoss` is applied to softmax probabilities",
        ),
        Invalid(
            """
            import torch.nn as nn
            import torch.nn.functional as F
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(784, 10)
                def forward(self, x):
                    x = self.fc(x)
                    return F.softmax(x, dim=1)
            model = Net().to("cuda")
            criterion = nn.CrossEntropyLoss()
            for images, labels in train_loader:
                outputs = model(images)
                loss = criterion(outputs, labels)
        """,
            line=14,
            message="the output of `Net`, which ends in softmax (line 9)",
        ),
        Invalid(
            """
            import torch
            from torch.nn import CrossEntropyLoss, Linear, ReLU, Sequential, Softmax
            model = Sequential(Linear(20, 64), ReLU(), Linear(64, 3), Softmax(dim=1))
            loss_fn = CrossEntropyLoss()
            def train(x, y):
                return loss_fn(model(x), y)
        """,
            line=6,
            message="nn.Sequential",
        ),
        Invalid(
            """
            import torch
            import torch.nn.functional as F
            def loss_step(logits, target):
                probs = torch.softmax(logits, -1)
                return F.cross_entropy(probs, target)
        """,
            line=5,
        ),
        Invalid(
            """
            import pytorch_lightning as pl
            import torch
            import torch.nn.functional as F
            from torch import nn
            class LitClassifier(pl.LightningModule):
                def __init__(self):
                    super().__init__()
                    self.layer = nn.Linear(28 * 28, 10)
                def forward(self, x):
                    return torch.softmax(self.layer(x.view(x.size(0), -1)), dim=1)
                def training_step(self, batch, batch_idx):
                    x, y = batch
                    logits = self(x)
                    return F.cross_entropy(logits, y)
        """,
            line=14,
        ),
        Invalid(
            """
            import torch.nn as nn
            class Model(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(256, 10)
                    self.softmax = nn.Softmax(dim=1)
                    self.criterion = nn.NLLLoss()
                def forward(self, x, y):
                    out = self.softmax(self.fc(x))
                    return self.criterion(out, y)
        """,
            line=10,
            message="`NLLLoss` is applied to softmax probabilities",
        ),
        Invalid(
            """
            import torch
            import torch.nn.functional as F
            def nll(logits, target):
                log_probs = torch.log(F.softmax(logits, dim=-1))
                return F.nll_loss(log_probs, target)
        """,
            line=4,
            message="`torch.log` is applied to softmax probabilities",
        ),
        # transfer learning: the replaced torchvision head ends in softmax
        Invalid(
            """
            import torch
            from torch import nn
            from torchvision import models
            model = models.resnet50(weights="IMAGENET1K_V2")
            model.fc = nn.Sequential(nn.Linear(2048, 256), nn.ReLU(), nn.Linear(256, 2),
                                     nn.Softmax(dim=1))
            criterion = nn.CrossEntropyLoss()
            def train_one_epoch(loader, optimizer):
                for inputs, labels in loader:
                    with torch.autocast("cuda"):
                        outputs = model(inputs)
                    loss = criterion(outputs, labels)
        """,
            line=12,
            message="the output of `model.fc`, which ends in softmax (line 6)",
        ),
        Invalid(
            """
            from torch import nn
            net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
            criterion = nn.NLLLoss()
            def step(x, y):
                return criterion(net(x), y)
        """,
            line=5,
            message="raw logits",
        ),
        # auxiliary-classifier GAN: the class head of the returned tuple ends in softmax
        Invalid(
            """
            import torch
            import torch.nn as nn
            class Discriminator(nn.Module):
                def __init__(self, n_classes):
                    super().__init__()
                    self.adv_layer = nn.Sequential(nn.Linear(512, 1), nn.Sigmoid())
                    self.aux_layer = nn.Sequential(nn.Linear(512, n_classes), nn.Softmax(dim=1))
                def forward(self, h):
                    return self.adv_layer(h), self.aux_layer(h)
            discriminator = Discriminator(10)
            auxiliary_loss = torch.nn.CrossEntropyLoss()
            for h, labels in loader:
                pred, aux = discriminator(h)
                d_loss = auxiliary_loss(aux, labels)
        """,
            line=14,
            message="the output of `Discriminator`, which ends in softmax (line 7)",
        ),
        # a custom loss class around CrossEntropyLoss receives softmax probabilities
        Invalid(
            """
            import torch
            from torch import nn
            class SmoothedCE(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.ce = nn.CrossEntropyLoss()
                def forward(self, outputs, target):
                    return 0.9 * self.ce(outputs, target) + 0.1 * outputs.mean()
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(64, 4)
                def forward(self, x):
                    return torch.softmax(self.fc(x), dim=1)
            class Trainer:
                def __init__(self):
                    self.model = Net()
                    self.loss_fn = SmoothedCE()
                def train_step(self, x, y):
                    return self.loss_fn(self.model(x), y)
        """,
            line=8,
            message="passed to `self.loss_fn` on line 20",
        ),
        # exp(log_softmax(...)) is softmax again
        Invalid(
            """
            import torch
            import torch.nn.functional as F
            def step(logits, target):
                probs = torch.exp(F.log_softmax(logits, dim=1))
                return F.cross_entropy(probs, target)
        """,
            line=5,
        ),
        # two containers composed at module level; the second ends in softmax
        Invalid(
            """
            from torch import nn
            features = nn.Sequential(nn.Linear(4, 16), nn.ReLU())
            classifier = nn.Sequential(nn.Linear(16, 3), nn.Softmax(dim=1))
            model = nn.Sequential(features, classifier)
            criterion = nn.CrossEntropyLoss()
            for x, y in loader:
                loss = criterion(model(x), y)
        """,
            line=7,
        ),
        # a Trainer's compute_loss takes the model by its annotation
        Invalid(
            """
            import torch.nn.functional as F
            from torch import nn
            from transformers import Trainer
            class TextClassifier(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.head = nn.Linear(128, 4)
                def forward(self, features):
                    probs = F.softmax(self.head(features), dim=-1)
                    return probs
            class ClassifierTrainer(Trainer):
                def compute_loss(self, model: TextClassifier, inputs, return_outputs=False):
                    scores = model(inputs["features"])
                    return F.cross_entropy(scores, inputs["labels"])
        """,
            line=14,
        ),
        # a word2vec loss with the softmax written out, then its log
        Invalid(
            """
            import torch
            from torch import nn
            class SkipGram(nn.Module):
                def __init__(self, vocab, dim):
                    super().__init__()
                    self.inp = nn.Embedding(vocab, dim)
                    self.out = nn.Embedding(vocab, dim)
                def forward(self, center, context, every):
                    c = self.inp(center)
                    pos = (self.out(context) * c).sum(-1)
                    every_score = (self.out(every) @ c.unsqueeze(-1)).squeeze(-1)
                    p = torch.exp(pos) / torch.sum(torch.exp(every_score), 1).unsqueeze(1)
                    return -torch.log(p).mean()
        """,
            line=13,
            message="`torch.log` is applied to softmax probabilities",
        ),
        # a script split over files run in one namespace: the model part builds the criterion
        Invalid(
            """
            import torch
            import torch.nn.functional as F
            from torch import nn
            class IrisNet(nn.Module):
                def __init__(self, n_in):
                    super().__init__()
                    self.hidden = nn.Linear(n_in, 32)
                    self.out = nn.Linear(32, 3)
                def forward(self, x):
                    return F.softmax(self.out(F.relu(self.hidden(x))), dim=1)
            net = IrisNet(4)
            opt = torch.optim.Adam(net.parameters(), lr=1e-3)
            criterion = nn.CrossEntropyLoss()
        """,
            line=13,
            message="where the rest of the script calls it",
        ),
    ]

    def leave_Module(self, original_node: cst.Module) -> None:
        facts = losses.loss_facts(self.index)
        reported: set[cst.Call] = set()
        models: set[tuple[cst.CSTNode, str]] = set()
        off: list[CodeRange] | None = None
        for use in facts.uses:
            output = use.output
            if output is None:
                continue  # where the input comes from is not visible
            if use.call in reported:
                continue  # a loss wrapper called from several places: once is enough
            if output.model is not None and output.kind != model_outputs.IMPORTED:
                if (output.node, use.loss) in models:
                    continue  # the same model into the same loss (train and validation): once
                if off is None:
                    found = grad_mode.gradient_free(self.index, original_node)
                    off = [self.position(node) for node in found]
                if grad_mode.inside(self.position(use.call), off):
                    continue  # a score under no_grad; the training call, if any, is reported
                models.add((output.node, use.loss))
            reported.add(use.call)
            loss = f"`{use.loss}`"
            if output.kind == model_outputs.IMPORTED and output.model is not None:
                if use.family in (losses.CROSS_ENTROPY, losses.NLL):
                    self.defer(
                        use.call, output.model, loss=loss, family=use.family, severity="warning"
                    )
                continue  # the project phase knows what that class returns
            if use.family == losses.CROSS_ENTROPY and output.kind == model_outputs.SOFTMAX:
                self._report(use.call, loss, output, WHY_CROSS_ENTROPY, through=self._through(use))
            elif use.family == losses.NLL and output.kind in WHAT:
                self._report(use.call, loss, output, WHY_NLL, through=self._through(use))
        for base, name, output in facts.subclass_outputs:
            if output.kind in (model_outputs.SOFTMAX, model_outputs.SIGMOID):
                # a loss in another file may take any `base`'s output: the project phase joins
                self.defer(
                    output.node,
                    base,
                    role="output",
                    kind=output.kind,
                    model=name,
                    severity="warning",
                )
        for built, loss, family, output in facts.unused_criteria:
            if (family == losses.CROSS_ENTROPY and output.kind == model_outputs.SOFTMAX) or (
                family == losses.NLL and output.kind in WHAT
            ):
                why = WHY_CROSS_ENTROPY if family == losses.CROSS_ENTROPY else WHY_NLL
                line = self.position(output.node).start.line
                source = (
                    f"the output of `{output.model}` (built next to it; its forward ends in "
                    f"{ENDS_IN[output.kind]} on line {line}) where the rest of the script "
                    "calls it"
                )
                self.report(
                    built, loss=f"`{loss}`", source=source, why=why, severity=Severity.WARNING
                )
        for call, output in facts.logs_of_softmax:
            callee = "`" + cst.Module([]).code_for_node(call.func) + "`"
            self._report(call, callee, output, WHY_LOG, Severity.WARNING)  # unstable, not wrong

    @classmethod
    def join_deferred(
        cls, item: Deferred, partners: Sequence[tuple[Deferred, FileSummary]]
    ) -> str | None:
        kind, model = item.data.get("kind"), item.data.get("model")
        if item.data.get("role") != "output":
            return None  # a loss: reported by resolve_deferred when the class itself ends so
        base = item.qualified.rsplit(".", 1)[-1]
        for other, where in partners:
            family, loss = other.data.get("family"), other.data.get("loss")
            if other.data.get("role") == "output":
                continue  # another subclass
            if family == losses.CROSS_ENTROPY and kind == model_outputs.SOFTMAX:
                why = WHY_CROSS_ENTROPY
            elif family == losses.NLL and kind in (model_outputs.SOFTMAX, model_outputs.SIGMOID):
                why = WHY_NLL
            else:
                continue
            source = (
                f"the output of `{base}` models ({where.path}:{other.line}), and "
                f"`{model}.forward` here ends in {ENDS_IN[str(kind)]}"
            )
            return cls.MESSAGE.format(loss=loss, source=source, why=why)
        return None

    @classmethod
    def resolve_deferred(cls, item: Deferred, facts: ClassFacts, where: FileSummary) -> str | None:
        if item.data.get("role") == "output":
            return None  # a subclass's output: decided with the losses in join_deferred
        family, loss = item.data.get("family"), item.data.get("loss")
        if family == losses.CROSS_ENTROPY and facts.output == model_outputs.SOFTMAX:
            why = WHY_CROSS_ENTROPY
        elif family == losses.NLL and facts.output in (
            model_outputs.SOFTMAX,
            model_outputs.SIGMOID,
        ):
            why = WHY_NLL
        else:
            return None
        ends = ENDS_IN[facts.output]
        source = f"the output of `{facts.name}` ({where.path}:{facts.line}), whose forward ends in {ends}"
        return cls.MESSAGE.format(loss=loss, source=source, why=why)

    def _report(
        self,
        call: cst.Call,
        loss: str,
        output: model_outputs.Output,
        why: str,
        severity: Severity = Severity.ERROR,
        through: str = "",
    ) -> None:
        what = WHAT.get(output.kind, output.kind)
        if output.model is None:
            self.report(call, loss=loss, source=what + through, why=why, severity=severity)
            return
        line = self.position(output.node).start.line
        ends = ENDS_IN[output.kind]
        source = f"the output of `{output.model}`{through}, which ends in {ends} (line {line})"
        self.report(call, loss=loss, source=source, why=why, severity=Severity.WARNING)

    def _through(self, use: losses.LossUse) -> str:
        """` passed to `loss_fn` on line 12` for a loss inside a wrapper function or class."""
        if use.via is None:
            return ""
        return f" passed to `{use.through}` on line {self.position(use.via).start.line}"
