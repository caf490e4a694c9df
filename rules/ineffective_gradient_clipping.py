from __future__ import annotations

import libcst as cst

from gradlint import Invalid, Rule, Severity, Valid
from gradlint.semantics.training import training_facts
from gradlint.semantics.training_schedule import ineffective_clips


class IneffectiveGradientClipping(Rule):
    """
    ## What it does
    Flags gradient clipping (`clip_grad_norm_`, `clip_grad_value_`, `accelerator.clip_grad_norm_`,
    timm's `dispatch_clip_grad`...) that runs before the `backward()` of its training pass or
    after the optimizer's `step()`, instead of between the two.

    ## Why is this bad?
    Clipping rescales what is in `.grad` at the moment it runs. Before `backward()`, that is the
    previous pass's gradient (already applied, and about to be wiped by `zero_grad()`) or
    nothing at all; after `step()`, the update has already been made with the raw gradient.
    Either way the step sees unclipped gradients: the protection against exploding gradients
    that the code seems to have is not there, and one bad batch can still throw the weights
    to Inf/NaN. The order must be `backward()`, clip, `step()` (with AMP:
    `scaler.unscale_(optimizer)` before the clip).

    ## Known limitations
    Only the order inside one function is read, with a loop body taken as a cycle. A clipping
    call in another loop than the backward, in a branch parallel to it, or separated from it
    by a helper of this file that may backpropagate or step, is left alone. Clipping in a
    helper is judged inside the helper only.
    """

    CODE = "GL118"
    NEEDS = ("clip",)
    SEVERITY = Severity.ERROR
    MESSAGE = "`{clip}` runs {where}; the optimizer steps on unclipped gradients"
    HINT = "Clip after backward() and before optimizer.step() (after scaler.unscale_ with AMP)"

    VALID = [
        Valid("""
            import torch
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            for x, y in loader:
                optimizer.zero_grad()
                loss = criterion(model(x), y)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
                optimizer.step()
        """),
        # AMP: unscale, clip, then the scaler's step
        Valid("""
            import torch
            from torch.nn.utils import clip_grad_norm_
            scaler = torch.cuda.amp.GradScaler()
            optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
            for images, target in loader:
                optimizer.zero_grad(set_to_none=True)
                with torch.autocast("cuda"):
                    loss = criterion(model(images), target)
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                clip_grad_norm_(model.parameters(), 1.0)
                scaler.step(optimizer)
                scaler.update()
        """),
        # gradient accumulation: clip and step every k batches, after the backward
        Valid("""
            import torch
            optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5)
            for i, batch in enumerate(loader):
                (model(**batch).loss / accum).backward()
                if (i + 1) % accum == 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                    optimizer.step()
                    optimizer.zero_grad()
        """),
        # GAN: the generator is clipped after the discriminator's step, before its own
        Valid("""
            import torch
            from torch import nn
            opt_d = torch.optim.Adam(disc.parameters(), lr=2e-4)
            opt_g = torch.optim.Adam(gen.parameters(), lr=2e-4)
            for real in loader:
                opt_d.zero_grad()
                opt_g.zero_grad()
                loss_d, loss_g = losses(disc, gen, real)
                loss_d.backward(retain_graph=True)
                loss_g.backward()
                opt_d.step()
                nn.utils.clip_grad_norm_(gen.parameters(), 10.0)
                opt_g.step()
        """),
        # LBFGS: the closure backpropagates and clips for the step that calls it
        Valid("""
            from torch import nn, optim
            optimizer = optim.LBFGS(model.parameters(), lr=1)
            for i in range(20):
                def closure():
                    optimizer.zero_grad()
                    loss = criterion(model(x), y)
                    loss.backward()
                    nn.utils.clip_grad_value_(model.parameters(), 1.0)
                    return loss
                optimizer.step(closure)
        """),
        # Lightning clips in its hook, between its own backward and step
        Valid("""
            import lightning as L
            from torch.nn.utils import clip_grad_norm_
            class Model(L.LightningModule):
                def on_before_optimizer_step(self, optimizer):
                    clip_grad_norm_(self.parameters(), 1.0)
        """),
        # a helper of this file runs the backward: the order is not known here
        Valid("""
            import torch
            def forward_backward(model, batch):
                loss = model(batch).mean()
                loss.backward()
                return loss
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            for batch in loader:
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                forward_backward(model, batch)
                optimizer.step()
        """),
        # the total norm measured for logging, with an infinite bound
        Valid("""
            import torch
            optimizer = torch.optim.Adam(model.parameters())
            for batch in loader:
                optimizer.zero_grad()
                model(batch).backward()
                optimizer.step()
                norm = torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf"))
        """),
        # SAM's two half-steps: the clip sits before each of them
        Valid("""
            import torch
            for x, y in loader:
                criterion(model(x), y).backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 2.0)
                optimizer.first_step(zero_grad=True)
                criterion(model(x), y).backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 2.0)
                optimizer.second_step(zero_grad=True)
        """),
        # an optimizer wrapper that clips inside its own step()
        Valid("""
            from torch.nn.utils import clip_grad_norm_
            class ClippedOptimizer:
                def __init__(self, optimizer, max_norm):
                    self.optimizer = optimizer
                    self.max_norm = max_norm
                def step(self):
                    clip_grad_norm_(self.optimizer.param_groups[0]["params"], self.max_norm)
                    self.optimizer.step()
        """),
        # manual optimization: the order inside training_step is the usual one
        Valid("""
            import lightning as L
            from torch.nn.utils import clip_grad_norm_
            class Model(L.LightningModule):
                def __init__(self):
                    super().__init__()
                    self.automatic_optimization = False
                def training_step(self, batch, batch_idx):
                    opt = self.optimizers()
                    opt.zero_grad()
                    self.manual_backward(self.model(batch).loss)
                    clip_grad_norm_(self.parameters(), 1.0)
                    opt.step()
        """),
    ]
    INVALID = [
        Invalid(
            """
            import torch
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            for x, y in loader:
                optimizer.zero_grad()
                loss = criterion(model(x), y)
                torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
                loss.backward()
                optimizer.step()
        """,
            line=6,
            message=(
                "`torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)` runs before "
                "`loss.backward()`"
            ),
        ),
        # clipped after the update, then wiped by the next pass's zero_grad
        Invalid(
            """
            from torch import nn, optim
            opt = optim.Adam(net.parameters(), lr=1e-3)
            for epoch in range(epochs):
                for src, tgt in batches:
                    opt.zero_grad()
                    loss = crit(net(src), tgt)
                    loss.backward()
                    opt.step()
                    nn.utils.clip_grad_norm_(net.parameters(), 5)
        """,
            line=9,
            message="runs after `opt.step()`",
        ),
        # a per-batch function, clip value spelled through the module
        Invalid(
            """
            import torch.nn.utils as nn_utils
            def train_step(model, batch, optimizer, clip):
                optimizer.zero_grad()
                if clip > 0:
                    nn_utils.clip_grad_value_(model.parameters(), clip)
                loss = model(batch)
                loss.backward()
                optimizer.step()
                return loss.item()
        """,
            line=5,
        ),
        # accelerate: clipped after the step
        Invalid(
            """
            import torch
            from accelerate import Accelerator
            accelerator = Accelerator()
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
            model, optimizer = accelerator.prepare(model, optimizer)
            for batch in loader:
                loss = model(**batch).loss
                accelerator.backward(loss)
                optimizer.step()
                accelerator.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.zero_grad()
        """,
            line=10,
        ),
        # a virtual batch: stepped every few batches, and clipped only after the step
        Invalid(
            """
            from torch import nn
            class Trainer:
                def __init__(self, model, optimizer, loader):
                    self.model = model
                    self.optimizer = optimizer
                    self.loader = loader
                def train(self):
                    for batch_idx, batch in enumerate(self.loader):
                        loss = self.model(batch)
                        loss.backward()
                        seen += len(batch)
                        if seen == self.virtual_batch_size:
                            self.optimizer.step()
                            nn.utils.clip_grad_norm_(self.model.parameters(), self.max_norm)
                            self.optimizer.zero_grad()
                            seen = 0
        """,
            line=14,
        ),
        # Lightning's automatic optimization runs backward() after training_step returns
        Invalid(
            """
            import lightning.pytorch as pl
            from torch.nn.utils import clip_grad_norm_
            class WorldModel(pl.LightningModule):
                def __init__(self, model):
                    super().__init__()
                    self.model = model
                def training_step(self, batch, batch_idx):
                    loss = self.model(batch).loss
                    clip_grad_norm_(self.parameters(), 1.0)
                    self.log("train_loss", loss)
                    return loss
        """,
            line=9,
            message="before the `backward()` Lightning runs after it",
        ),
    ]

    def visit_Module(self, node: cst.Module) -> None:
        code = self.context.module.code_for_node
        for found in ineffective_clips(training_facts(self.index)):
            if found.other is None:
                where = "in `training_step`, before the `backward()` Lightning runs after it"
            elif found.after_step:
                where = f"after `{code(found.other)}`"
            else:
                where = f"before `{code(found.other)}`"
            self.report(found.clip, clip=code(found.clip), where=where)
