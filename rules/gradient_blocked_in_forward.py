from __future__ import annotations

import libcst as cst

from gradlint import Invalid, Rule, Severity, Valid
from gradlint.semantics import cut_flow


class GradientBlockedInForward(Rule):
    """
    ## What it does
    Flags `.detach()`, `.data`, `.item()`, `.numpy()`, `.tolist()`, `torch.tensor(t)` and
    `with torch.no_grad():` inside `forward()`, a loss method or a Lightning `training_step`
    of an `nn.Module` when the value they cut depends on the module's parameters and reaches
    the returned output or loss, and those parameters reach it through no other path.

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
    way (SimSiam returns `z.detach()` next to `predictor(z)`).

    ## Known limitations
    Values are followed through local variables of one method; a cut inside a helper
    method, or on `self.<attr>` between methods, is not seen.
    """

    CODE = "GL110"
    SEVERITY = Severity.WARNING
    MESSAGE = (
        "`{operation}` cuts the graph on a value that reaches what `{function}()` returns; "
        "parameters upstream of it get no gradient from this path"
    )
    HINT = (
        "Drop the cut on the training path (log `x.detach()` / `x.item()` separately), or "
        "freeze the submodule explicitly with requires_grad_(False) if that is the intent"
    )

    VALID = [
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
    ]

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        owner = next(
            (c for c in self.index.module_classes.values() if cut_flow.is_graph_function(c, node)),
            None,
        )
        if owner is None:
            return  # not forward / a loss method / training_step of an nn.Module
        for cut in cut_flow.cuts_reaching_return(self.index, owner, node):
            severity = Severity.ERROR if cut.direct else Severity.WARNING
            self.report(
                cut.node, severity=severity, operation=cut.operation, function=node.name.value
            )
