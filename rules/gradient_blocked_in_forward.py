from __future__ import annotations

import libcst as cst

from gradlint import Invalid, Rule, Severity, Valid
from gradlint.semantics import cut_flow, gradient_cuts, step_cuts

UPSTREAM = "parameters upstream of it get no gradient from this path"
NO_GRADIENT = (
    "the loss is a new tensor cut from the model, so no parameter gets a gradient "
    "(wrapping it again with requires_grad=True only hides the error)"
)
DEAD_TERM = "this term of the loss adds nothing to the gradient"


class GradientBlockedInForward(Rule):
    """
    ## What it does
    Flags `.detach()`, `.data`, `.item()`, `.numpy()`, `.tolist()`, `torch.tensor(t)` and
    `with torch.no_grad():` inside `forward()`, a loss method or a Lightning `training_step`
    of an `nn.Module` when the value they cut depends on the module's parameters and reaches
    the returned output or loss, and those parameters reach it through no other path.

    In training code (a `train()` function, a trainer method, a script or notebook) it flags
    the two silent forms of the same cut before `loss.backward()`: a loss taken out of the
    graph (`.item()`, `.data`, `.detach()`, `.numpy()`, `argmax`) and wrapped again as a new
    tensor that requires grad (`torch.tensor(loss.item(), requires_grad=True)`,
    `Variable(out.data, requires_grad=True)`), and a term of the loss that carries only cut
    values (`ce + lam * aux.item()`, a term computed under `torch.no_grad()`, student
    features detached before a distillation loss).

    ## Why is this bad?
    Autograd records every operation on tensors that require gradients; backpropagation
    follows that record from the loss back to the parameters. These operations return a
    value outside the record (a new leaf, or a Python number), so `loss.backward()` stops
    there: the layers upstream get no gradient from this path and, if it is their only one,
    never learn. Nothing fails; the loss just stops improving.

    Deliberate stop-gradients are left alone: the straight-through estimator
    (`x + (y - x).detach()`), EMA / momentum / teacher / target networks (BYOL, MoCo, DINO,
    DQN), frozen submodules (`requires_grad_(False)`), indices and masks, values only
    logged or stored on `self`, and values whose parameters still reach the output another
    way (SimSiam returns `z.detach()` next to `predictor(z)`; self-conditioning runs the
    model under no_grad, then again with gradient). Preprocessing modules (`self.stft`,
    `self.mel`), EMA copies updated from another submodule's weights, and pretrained feature
    extractors run under `torch.no_grad()` are treated as fixed. In training code the
    detached discriminator input (`D(fake.detach())`), truncated backprop through time
    (`hidden.detach()`), teacher targets and logged values are left alone.

    ## Known limitations
    Values are followed through local variables of one method or block (in training code a
    term cut in one branch of an `if` counts even when another branch builds the loss
    without it); a cut inside a helper function, or on `self.<attr>` between methods, is not
    seen.
    """

    CODE = "GL110"
    SEVERITY = Severity.WARNING
    OTHER_SEVERITY = Severity.ERROR
    OTHER_SEVERITY_WHEN = "when the cut value is the whole output or loss"
    MESSAGE = "`{operation}` cuts the graph on a value that reaches {target}; {consequence}"
    HINT = (
        "Drop the cut on the training path (log `x.detach()` / `x.item()` separately), or "
        "freeze the submodule explicitly with requires_grad_(False) if that is the intent"
    )

    VALID = [
        # the evaluation pass reuses the names `outputs` and `loss` under no_grad; the next
        # epoch's training step computes a fresh loss before backpropagating it
        Valid("""
            import torch
            for epoch in range(num_epochs):
                model.train()
                for batch in train_dataloader:
                    outputs = model(**batch)
                    loss = outputs.loss
                    accelerator.backward(loss)
                    optimizer.step()
                    optimizer.zero_grad()
                model.eval()
                for batch in eval_dataloader:
                    with torch.no_grad():
                        outputs = model(**batch)
                    loss = outputs.loss
                    losses.append(accelerator.gather(loss))
        """),
        # a fixed sinusoidal embedding table: nothing trainable sits behind the detach
        Valid("""
            import math
            import torch
            from torch import nn
            class FixedTimeEmbedding(nn.Module):
                def __init__(self, steps, dim):
                    super().__init__()
                    table = torch.zeros(steps, dim)
                    pos = torch.arange(steps).float().unsqueeze(1)
                    freq = torch.exp(torch.arange(0, dim, 2).float() * -(math.log(1e4) / dim))
                    table[:, 0::2] = torch.sin(pos * freq)
                    table[:, 1::2] = torch.cos(pos * freq)
                    self.table = nn.Embedding(steps, dim)
                    self.table.weight = nn.Parameter(table, requires_grad=False)
                def forward(self, t):
                    return self.table(t).detach()
        """),
        Valid("""
            import torch
            from torch import nn
            class Regressor(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.body = nn.Linear(16, 16)
                    self.head = nn.Linear(16, 1)
                def forward(self, x):
                    h = torch.relu(self.body(x))
                    return self.head(h)
        """),
        # straight-through estimator (VQ-VAE, Gumbel hard sampling)
        Valid("""
            import torch.nn.functional as F
            from torch import nn
            class Quantize(nn.Module):
                def forward(self, z):
                    z_e = self.encoder(z)
                    z_q = self.codebook(self.lookup(z_e))
                    z_q = z_e + (z_q - z_e).detach()
                    y_soft = F.softmax(self.logits(z), -1)
                    y_hard = F.one_hot(y_soft.argmax(-1), 8).float()
                    return z_q, y_hard - y_soft.detach() + y_soft
        """),
        # BYOL / MoCo: target and key encoders are stop-gradient by design
        Valid("""
            import torch
            import torch.nn as nn
            import torch.nn.functional as F
            class BYOL(nn.Module):
                def forward(self, x1, x2):
                    p = self.predictor(self.online(x1))
                    with torch.no_grad():
                        target = self.target_net(x2)
                    k = self.key_encoder(x2).detach()
                    t = self.teacher(x2).detach()
                    return F.mse_loss(p, target) + (p * k).sum() + (p * t).sum()
        """),
        # SimSiam returns z.detach(), but z also reaches the output through the predictor
        Valid("""
            from torch import nn
            class SimSiam(nn.Module):
                def forward(self, x1, x2):
                    z1 = self.projector(self.encoder(x1))
                    z2 = self.projector(self.encoder(x2))
                    p1, p2 = self.predictor(z1), self.predictor(z2)
                    return p1, p2, z1.detach(), z2.detach()
        """),
        # logging, buffers, control flow and masks
        Valid("""
            import torch
            import lightning.pytorch as pl
            import torch.nn.functional as F
            class LitModel(pl.LightningModule):
                def training_step(self, batch, batch_idx):
                    x, y = batch
                    logits = self(x)
                    loss = F.cross_entropy(logits, y)
                    self.log("train_loss", loss.detach())
                    self.running_acc = (logits.argmax(-1) == y).float().mean().item()
                    if loss.item() > 100:
                        print("diverging", loss.item())
                    mask = (y >= 0).detach()
                    return {"loss": loss * mask.float().mean(), "logits": logits.detach()}
        """),
        # MoE routing: indices picked under no_grad, gates stay differentiable
        Valid("""
            import torch
            from torch import nn
            class MoE(nn.Module):
                def forward(self, x):
                    scores = self.router(x).softmax(-1)
                    with torch.no_grad():
                        topk_idx = scores.topk(2, dim=-1).indices
                    gates = scores.gather(-1, topk_idx)
                    return gates.unsqueeze(-1) * self.experts(x)
        """),
        # a frozen backbone feeding a trainable head (linear probing)
        Valid("""
            import torch
            from torch import nn
            class Probe(nn.Module):
                def __init__(self, backbone):
                    super().__init__()
                    self.backbone = backbone
                    self.backbone.requires_grad_(False)
                    self.head = nn.Linear(512, 10)
                def forward(self, x):
                    with torch.no_grad():
                        feats = self.backbone(x)
                    return self.head(feats)
        """),
        # `.data` on the left of an assignment is a weight update, not a cut
        Valid("""
            import torch
            from torch import nn
            class WeightNormed(nn.Module):
                def forward(self, x):
                    with torch.no_grad():
                        self.weight.data = self.weight.data / self.weight.norm()
                        self.num_batches += 1
                    return x @ self.weight.t()
        """),
        # detaching an input or the target is fine
        Valid("""
            from torch import nn
            from torch.nn import CrossEntropyLoss
            class Wrapper(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.net = nn.Linear(4, 2)
                    self.loss_fct = CrossEntropyLoss()
                def forward(self, x, labels):
                    x = x.detach()
                    logits = self.net(x)
                    return self.loss_fct(logits, labels.detach())
        """),
        # VQ commitment loss (a detached operand is the target) and a fixed sin-cos table
        # (transformers' Jukebox and VideoMAE)
        Valid("""
            import torch
            from torch import nn
            class Bottleneck(nn.Module):
                def __init__(self, n):
                    super().__init__()
                    self.pos = get_sinusoid_encoding_table(n, 64)
                def forward(self, h):
                    h = h + self.pos.detach().type_as(h)
                    q = self.dequantise(self.quantise(h))
                    commit = torch.linalg.norm(q.detach() - h) ** 2
                    q = h + (q - h).detach()
                    return q, commit
        """),
        # Mask2Former: point coordinates sampled under no_grad; AutoAugment's `.item()` magnitudes
        Valid("""
            import torch
            from torch import nn
            class Criterion(nn.Module):
                def loss_masks(self, masks_queries_logits, target_masks):
                    with torch.no_grad():
                        point_coordinates = self.sample_points(masks_queries_logits)
                        point_labels = sample_point(target_masks, point_coordinates)
                    point_logits = sample_point(masks_queries_logits, point_coordinates)
                    return sigmoid_ce(point_logits, point_labels)
            class AutoAugment(nn.Module):
                def forward(self, img):
                    magnitudes = self._augmentation_space(10)
                    magnitude = float(magnitudes[3].item())
                    return rotate(img, magnitude)
        """),
        # Reformer's reversible layer: forward under no_grad, gradients from its own backward
        Valid("""
            import torch
            from torch import nn
            class ReversibleLayer(nn.Module):
                def forward(self, x1, x2):
                    with torch.no_grad():
                        y1 = x1 + self.attention(x2)
                        y2 = x2 + self.feed_forward(y1)
                    return y1, y2
                def backward_pass(self, y1, y2, grad1, grad2):
                    return grad1, grad2
        """),
        # an inference-only forward
        Valid("""
            import torch
            from torch import nn
            class EMA(nn.Module):
                @torch.no_grad()
                def forward(self, x):
                    return self.model(x).detach()
        """),
        # self-conditioning (diffusion): a first pass under no_grad, then the same model trains
        Valid("""
            import random
            import torch
            import torch.nn.functional as F
            from torch import nn
            class Diffusion(nn.Module):
                def __init__(self, unet):
                    super().__init__()
                    self.unet = unet
                def predict_start(self, x, t, cond=None):
                    return self.unet(x, t, cond)
                def p_losses(self, x_t, t, noise):
                    cond = None
                    if random.random() < 0.5:
                        with torch.no_grad():
                            cond = self.predict_start(x_t, t).detach()
                    out = self.unet(x_t, t, cond)
                    return F.mse_loss(out, noise)
        """),
        # a pretrained CNN kept fixed as a feature extractor; a spectrogram front end
        Valid("""
            import torch
            import torchvision.models as models
            from torch import nn
            class EncoderCNN(nn.Module):
                def __init__(self, embed_size):
                    super().__init__()
                    resnet = models.resnet50(weights="IMAGENET1K_V2")
                    layers = list(resnet.children())[:-1]
                    self.cnn = nn.Sequential(*layers)
                    self.proj = nn.Linear(resnet.fc.in_features, embed_size)
                    self.spec = MelSpectrogram(n_mels=80)
                def forward(self, images):
                    with torch.no_grad():
                        feats = self.cnn(images).flatten(1)
                    return self.proj(feats)
                def encode_audio(self, wav):
                    with torch.no_grad():
                        mel = self.spec(wav)
                    return self.proj(mel)
        """),
        # a mean teacher updated from the student's weights
        Valid("""
            import torch
            from torch import nn
            class MeanTeacher(nn.Module):
                def update(self, decay):
                    for t_p, s_p in zip(self.net_t.parameters(), self.net_s.parameters()):
                        t_p.data.mul_(decay).add_(s_p.data, alpha=1 - decay)
                def forward(self, x):
                    s_out = self.net_s(x)
                    with torch.no_grad():
                        t_out = self.net_t(x)
                    return s_out, t_out
        """),
        # training code: TBPTT, a detached discriminator input, logging, a teacher target
        Valid("""
            import torch
            import torch.nn.functional as F
            def train(model, G, D, teacher, loader, hidden):
                for x, y in loader:
                    hidden = hidden.detach()
                    out, hidden = model(x, hidden)
                    loss = F.cross_entropy(out, y)
                    loss.backward()
                    print(loss.item())
                    fake = G(x)
                    d_loss = F.binary_cross_entropy_with_logits(D(fake.detach()), y)
                    d_loss.backward()
                    with torch.no_grad():
                        soft = teacher(x)
                    kd = F.mse_loss(model(x)[0], soft)
                    kd.backward()
        """),
        # SAC temperature: the target term is detached, the trained parameter is log_alpha
        Valid("""
            class Agent:
                def train_alpha(self, log_prob, target_entropy):
                    bonus = (log_prob + target_entropy).detach()
                    alpha_loss = -(self.log_alpha.exp() * bonus).mean()
                    self.alpha_optimizer.zero_grad()
                    alpha_loss.backward()
        """),
        # the same branches with the adversarial term kept in the graph; a logged float
        Valid("""
            def train_epoch(net, disc, loader, opt, l1, bce, adapt):
                for x, y, domain in loader:
                    opt.zero_grad()
                    out, feats = net(x)
                    rec = l1(out, y)
                    if adapt:
                        adv = bce(disc(feats), domain)
                        loss = rec + adv
                        logged = adv.item()
                    else:
                        loss = rec
                    loss.backward()
                    opt.step()
        """),
    ]
    INVALID = [
        Invalid(
            """
            import torch
            from torch import nn
            class Regressor(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.body = nn.Linear(16, 16)
                    self.head = nn.Linear(16, 1)
                def forward(self, x):
                    h = torch.relu(self.body(x)).detach()
                    return self.head(h)
        """,
            line=9,
            message="`.detach()` cuts the graph",
        ),
        Invalid(
            """
            import torch.nn as nn
            class Net(nn.Module):
                def forward(self, x):
                    return self.fc(x).detach()
        """,
            line=4,
        ),
        Invalid(
            """
            import torch
            from torch import nn
            class Encoder(nn.Module):
                def forward(self, x):
                    with torch.no_grad():
                        h = self.conv(x)
                    h = torch.flatten(h, 1)
                    return self.fc(h)
        """,
            line=6,
            message="torch.no_grad()",
        ),
        Invalid(
            """
            import numpy as np
            import torch
            from torch import nn
            class Scorer(nn.Module):
                def forward(self, x):
                    s = self.score(x).cpu().numpy()
                    return torch.tensor(np.tanh(s))
        """,
            line=6,
            message=".numpy()",
        ),
        Invalid(
            """
            import torch
            from torch import nn
            class Model(nn.Module):
                def compute_loss(self, batch):
                    logits = self.model(batch["x"])
                    probs = torch.tensor(logits.softmax(-1))
                    return -(probs * batch["y"]).sum()
        """,
            line=6,
            message="torch.tensor(...)",
        ),
        Invalid(
            """
            import torch.nn.functional as F
            from torch import nn
            class FocalLoss(nn.Module):
                def forward(self, logits, y):
                    p = logits.data.sigmoid()
                    return F.binary_cross_entropy(p, y)
        """,
            line=5,
            message=".data",
        ),
        # multi-scale features collected detached from a loop over blocks
        Invalid(
            """
            import torch
            from torch import nn
            class Pyramid(nn.Module):
                def forward(self, x):
                    feats = []
                    for blk in self.blocks:
                        x = blk(x)
                        feats.append(x.detach())
                    return torch.cat(feats, 1)
        """,
            line=8,
        ),
        # "my loss has no grad_fn": the loss re-created as a leaf that requires grad
        Invalid(
            """
            import torch
            import torch.nn as nn
            model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 1))
            criterion = nn.MSELoss()
            optimizer = torch.optim.Adam(model.parameters())
            for x, y in loader:
                loss = criterion(model(x), y)
                loss = torch.tensor(loss.item(), requires_grad=True)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        """,
            line=8,
            message="`.item()` cuts the graph on a value that reaches `loss.backward()`",
        ),
        # predictions taken out with .data and wrapped in a new Variable
        Invalid(
            """
            import torch.nn.functional as F
            from torch.autograd import Variable
            def train_epoch(net, loader, optimizer):
                for x, y in loader:
                    scores = net(x)
                    pred = Variable(scores.data, requires_grad=True)
                    loss = F.mse_loss(pred, y)
                    optimizer.zero_grad()
                    loss.backward()
        """,
            line=6,
        ),
        # attention-transfer distillation: each feature-map term detached before the sum
        Invalid(
            """
            import torch.nn.functional as F
            def train_step(snet, tnet, criterion_at, img, target, beta):
                f_s, out_s = snet(img)
                f_t, _ = tnet(img)
                cls_loss = F.cross_entropy(out_s, target)
                at_loss = criterion_at(f_s, f_t).detach() * beta
                loss = cls_loss + at_loss
                loss.backward()
        """,
            line=6,
            message="this term of the loss adds nothing to the gradient",
        ),
        # a regulariser computed under no_grad and added to the training loss
        Invalid(
            """
            import torch
            import torch.nn.functional as F
            class Trainer:
                def step(self, x, y):
                    out = self.model(x)
                    with torch.no_grad():
                        smooth = self.model.encoder(x).diff(dim=1).abs().mean()
                    loss = F.cross_entropy(out, y)
                    loss += 0.1 * smooth
                    loss.backward()
        """,
            line=7,
        ),
        # a domain-adversarial term made a float in one branch, added to the loss in another
        Invalid(
            """
            def train_epoch(net, disc, loader, opt, l1, bce, adapt):
                for x, y, domain in loader:
                    opt.zero_grad()
                    out, feats = net(x)
                    if adapt:
                        adv = bce(disc(feats), domain)
                        adv = adv.detach().item()
                    rec = l1(out, y)
                    if adapt:
                        loss = rec + adv
                    else:
                        loss = rec
                    loss.backward()
                    opt.step()
        """,
            line=7,
            message="this term of the loss adds nothing to the gradient",
        ),
    ]

    def visit_Module(self, node: cst.Module) -> None:
        self._steps = step_cuts.may_cut_in_steps(self.index.source)
        self._classes: list[cst.ClassDef] = []

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self._classes.append(node)

    def leave_ClassDef(self, original_node: cst.ClassDef) -> None:
        self._classes.pop()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        owner = next(
            (c for c in self.index.module_classes.values() if cut_flow.is_graph_function(c, node)),
            None,
        )
        if owner is not None:  # forward / a loss method / training_step of an nn.Module
            for cut in cut_flow.cuts_reaching_return(self.index, owner, node):
                severity = Severity.ERROR if cut.direct else Severity.WARNING
                target = f"what `{node.name.value}()` returns"
                self.report(
                    cut.node,
                    severity=severity,
                    operation=cut.operation,
                    target=target,
                    consequence=UPSTREAM,
                )
            return
        if not self._steps or not isinstance(node.body, cst.IndentedBlock):
            return  # no backward() next to a cut anywhere in the file
        if any(gradient_cuts.is_no_grad_context(self.index, d.decorator) for d in node.decorators):
            return  # inference only
        cls = self._classes[-1] if self._classes else None
        info = self.index.module_classes.get(cls.name.value) if cls is not None else None
        if info is not None and info.node is not cls:
            info = None
        self._report_steps(step_cuts.cuts_reaching_backward(self.index, node.body.body, info))

    def leave_Module(self, original_node: cst.Module) -> None:
        if self._steps:  # a script or notebook: the training loop at module level
            self._report_steps(
                step_cuts.cuts_reaching_backward(self.index, original_node.body, None)
            )

    def _report_steps(self, found: list[step_cuts.StepCut]) -> None:
        for step in found:
            code = cst.Module([]).code_for_node(step.backward)
            target = f"`{code}`"
            consequence = DEAD_TERM if step.term else NO_GRADIENT
            severity = Severity.WARNING if step.term else Severity.ERROR
            self.report(
                step.cut.node,
                severity=severity,
                operation=step.cut.operation,
                target=target,
                consequence=consequence,
            )
