from __future__ import annotations

import libcst as cst

from gradlint import Invalid, Rule, Severity, Valid
from gradlint.semantics.nodes import descendants
from gradlint.semantics.training import TrainingFacts, TrainingStep, training_facts
from gradlint.semantics.training_extra import (
    cleared_by_siblings,
    clears_gradients,
    hands_optimizer_away,
    stepped_elsewhere,
)

LIGHTNING_STEP_METHODS = frozenset({"training_step"})  # called once per batch by the Trainer


class MissingZeroGrad(Rule):
    """
    ## What it does
    Flags an optimizer `step()` that repeats in a loop with `backward()` when nothing in that
    loop clears the gradients: no `optimizer.zero_grad()` / `model.zero_grad()`, no
    `p.grad = None` or `p.grad.zero_()`, no helper of this file that does so.

    ## Why is this bad?
    `backward()` does not overwrite `.grad`, it adds to it. Without clearing, the gradient
    used at step t is the sum of the gradients of all t batches so far: the update grows
    with training time, points along stale directions and soon diverges. Gradient
    accumulation is this behaviour on purpose and still clears after every `step()`
    (`if (i + 1) % k == 0: optimizer.step(); optimizer.zero_grad()`). A single
    `zero_grad()` before the loop clears only once.

    ## Known limitations
    Any clearing call in the loop counts, whichever model it names; only the `zero_grad()`
    of another optimizer stepped in the same loop (a GAN's `opt_d` beside `opt_g`) does not
    count for this one, unless the models it clears hold all of this one's parameters (an
    InfoGAN optimizer over G and D, cleared by G's and D's own optimizers). When the step
    sits in a helper without a loop, the loops that call the helper in this file are
    checked; a helper never called here is left alone, except Lightning's `training_step`
    (manual optimization). A call to an unknown function that receives the optimizer
    (`trainer.update(model, optimizer)`) may clear it, so the rule stays quiet, unless its name
    says it does something else (`clip_gradient`, `adjust_learning_rate`, `save_checkpoint`). Closure
    steps (`optimizer.step(closure)`) are assumed to clear inside the closure.
    """

    CODE = "GL111"
    # a training step is a `backward()` (or `manual_backward()`) followed by `step()`
    NEEDS = ("backward",)
    SEVERITY = Severity.ERROR
    MESSAGE = (
        "`{optimizer}.step()` repeats in a loop that never clears gradients; `backward()` "
        "adds into `.grad`, so every step applies the sum of all gradients so far"
    )
    HINT = (
        "Call optimizer.zero_grad() (set_to_none=True is the default) once per step, "
        "e.g. right after optimizer.step()"
    )

    VALID = [
        Valid("""
            import torch
            from torch import nn
            model = nn.Linear(10, 2)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            for x, y in loader:
                optimizer.zero_grad()
                loss = nn.functional.cross_entropy(model(x), y)
                loss.backward()
                optimizer.step()
        """),
        # gradient accumulation: clears only every k steps, right after stepping
        Valid("""
            import torch
            optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5)
            for step, batch in enumerate(train_dataloader):
                loss = model(**batch).loss / accumulation_steps
                loss.backward()
                if (step + 1) % accumulation_steps == 0:
                    optimizer.step()
                    lr_scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
        """),
        # accelerate, with the model's zero_grad
        Valid("""
            from accelerate import Accelerator
            from torch.optim import AdamW
            accelerator = Accelerator(gradient_accumulation_steps=4)
            optimizer = AdamW(model.parameters(), lr=3e-4)
            model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
            for epoch in range(3):
                for batch in loader:
                    with accelerator.accumulate(model):
                        loss = model(**batch).loss
                        accelerator.backward(loss)
                        optimizer.step()
                        model.zero_grad()
        """),
        # AMP GradScaler, clearing by setting every .grad to None
        Valid("""
            import torch
            scaler = torch.cuda.amp.GradScaler()
            opt = torch.optim.Adam(net.parameters(), lr=1e-3)
            for images, labels in loader:
                with torch.autocast("cuda", dtype=torch.float16):
                    loss = criterion(net(images), labels)
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
                for p in net.parameters():
                    p.grad = None
        """),
        # Lightning manual optimization
        Valid("""
            import lightning.pytorch as pl
            import torch
            class GAN(pl.LightningModule):
                def __init__(self):
                    super().__init__()
                    self.automatic_optimization = False
                def training_step(self, batch, batch_idx):
                    opt_g, opt_d = self.optimizers()
                    loss_d = self.discriminator_loss(batch)
                    opt_d.zero_grad()
                    self.manual_backward(loss_d)
                    opt_d.step()
                def configure_optimizers(self):
                    g, d = self.generator, self.discriminator
                    return torch.optim.Adam(g.parameters()), torch.optim.Adam(d.parameters())
        """),
        # timm style: the step sits in a nested helper, the loop clears after calling it
        Valid("""
            import torch
            def train_one_epoch(model, loader, optimizer, loss_fn, accum_steps):
                for batch_idx, (input, target) in enumerate(loader):
                    need_update = (batch_idx + 1) % accum_steps == 0
                    def _backward(_loss):
                        _loss.backward()
                        if need_update:
                            optimizer.step()
                    _backward(loss_fn(model(input), target))
                    if not need_update:
                        continue
                    optimizer.zero_grad()
        """),
        # the clearing lives in a helper of this file
        Valid("""
            import torch
            def reset_grads(model):
                for p in model.parameters():
                    if p.grad is not None:
                        p.grad.detach_()
                        p.grad.zero_()
            optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            for x, y in loader:
                reset_grads(model)
                criterion(model(x), y).backward()
                optimizer.step()
        """),
        # the optimizer goes to an unknown function that may clear it
        Valid("""
            import torch
            from mylib.engine import finish_step
            optimizer = torch.optim.Adam(policy.parameters(), lr=3e-4)
            while not done:
                loss = -(log_probs * returns).mean()
                loss.backward()
                optimizer.step()
                finish_step(policy, optimizer)
        """),
        # LBFGS: the closure clears
        Valid("""
            from torch import optim
            optimizer = optim.LBFGS(model.parameters(), lr=1)
            for i in range(20):
                def closure():
                    optimizer.zero_grad()
                    loss = criterion(model(x), y)
                    loss.backward()
                    return loss
                optimizer.step(closure)
        """),
        # a scheduler's step, and an environment's step, are no optimizer steps
        Valid("""
            import torch
            for t in range(1000):
                obs, reward, done, info = env.step(action)
                loss = agent.loss(obs, reward)
                loss.backward()
                scheduler.step()
        """),
        # DCGAN: each network cleared through the model before its own step
        Valid("""
            import torch.optim as optim
            from torch import nn
            optimizerD = optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
            optimizerG = optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
            for epoch in range(25):
                for i, (real, _) in enumerate(dataloader):
                    netD.zero_grad()
                    errD = criterion(netD(real), label) + criterion(netD(fake.detach()), fake_label)
                    errD.backward()
                    optimizerD.step()
                    netG.zero_grad()
                    errG = criterion(netD(fake), label)
                    errG.backward()
                    optimizerG.step()
        """),
        # one step, no loop: nothing accumulates
        Valid("""
            import torch
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            loss = model(x).sum()
            loss.backward()
            optimizer.step()
        """),
    ]
    # diffusers pix2pix-zero: a new leaf tensor and a new optimizer on every denoising step
    VALID.append(
        Valid("""
        import torch
        def steer(latents, timesteps, unet, loss_fn):
            for t in timesteps:
                x_in = latents.detach().clone()
                x_in.requires_grad = True
                opt = torch.optim.SGD([x_in], lr=0.1)
                loss = loss_fn(unet(x_in, t))
                loss.backward()
                opt.step()
                latents = x_in.detach()
            return latents
    """)
    )

    INVALID = [
        # cleared once before the epochs; the helper the optimizer goes to only clips
        Invalid(
            """
            import torch.optim as optim
            import utils
            optimizer = optim.Adam(model.parameters(), lr=1e-3)
            optimizer.zero_grad()
            for epoch in range(max_epoch):
                for batch in train_iter:
                    loss = loss_fun(model(batch.text), batch.label)
                    loss.backward()
                    utils.clip_gradient(optimizer, grad_clip)
                    optimizer.step()
        """,
            line=10,
        ),
        Invalid(
            """
            import torch
            from torch import nn
            model = nn.Linear(10, 2)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            for x, y in loader:
                loss = nn.functional.cross_entropy(model(x), y)
                loss.backward()
                optimizer.step()
        """,
            line=8,
            message="`optimizer.step()`",
        ),
        # cleared once before the loop only
        Invalid(
            """
            import torch.optim as optim
            opt = optim.Adam(net.parameters(), lr=1e-3)
            opt.zero_grad()
            for epoch in range(10):
                for images, labels in loader:
                    loss = criterion(net(images), labels)
                    loss.backward()
                    opt.step()
        """,
            line=8,
        ),
        # cleared once per epoch, stepped once per batch
        Invalid(
            """
            from torch.optim import AdamW
            optimizer = AdamW(model.parameters(), lr=3e-4)
            for epoch in range(10):
                optimizer.zero_grad()
                for batch in loader:
                    model(**batch).loss.backward()
                    optimizer.step()
        """,
            line=7,
        ),
        # AMP without clearing
        Invalid(
            """
            import torch
            scaler = torch.cuda.amp.GradScaler()
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
            for images, target in loader:
                with torch.autocast("cuda"):
                    loss = criterion(model(images), target)
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                scaler.step(optimizer)
                scaler.update()
        """,
            line=10,
        ),
        # a per-batch helper called from the epoch loop
        Invalid(
            """
            import torch
            def train_step(model, batch, optimizer):
                loss = model(batch).mean()
                loss.backward()
                optimizer.step()
                return loss.item()
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
            for epoch in range(5):
                for batch in loader:
                    train_step(model, batch, optimizer)
        """,
            line=5,
        ),
        # Lightning manual optimization without zero_grad
        Invalid(
            """
            import lightning.pytorch as pl
            import torch
            class Model(pl.LightningModule):
                def __init__(self):
                    super().__init__()
                    self.automatic_optimization = False
                def training_step(self, batch, batch_idx):
                    opt = self.optimizers()
                    loss = self.compute_loss(batch)
                    self.manual_backward(loss)
                    opt.step()
                def configure_optimizers(self):
                    return torch.optim.Adam(self.parameters(), lr=1e-3)
        """,
            line=11,
        ),
        # GAN: only the discriminator's optimizer is cleared
        Invalid(
            """
            import torch
            opt_g = torch.optim.Adam(G.parameters(), lr=2e-4)
            opt_d = torch.optim.Adam(D.parameters(), lr=2e-4)
            for real in loader:
                opt_d.zero_grad()
                d_loss(D, G, real).backward()
                opt_d.step()
                g_loss(D, G).backward()
                opt_g.step()
        """,
            line=9,
            message="`opt_g.step()`",
        ),
    ]

    def visit_Module(self, node: cst.Module) -> None:
        facts = training_facts(self.index)
        reported: set[cst.Call] = set()
        for step in facts.steps:
            if step.step in reported:
                continue  # one step paired with several backward calls
            if self._is_closure(step):
                continue  # `optimizer.step(closure)`: the closure clears
            if step.construction is not None and step.construction.in_loop:
                continue  # a fresh optimizer each pass, usually over fresh tensors (latent steering)
            regions = self._regions(facts, step)
            if not regions:
                continue  # not repeated in a loop this file shows
            if any(
                clears_gradients(self.index, region, stepped_elsewhere(region, step.optimizer))
                or hands_optimizer_away(self.index, region, step.optimizer)
                or cleared_by_siblings(facts, region, step)
                for region in regions
            ):
                continue  # cleared, or maybe cleared by a call this file cannot see
            reported.add(step.step)
            self.report(step.step, optimizer=self.context.module.code_for_node(step.optimizer))

    def _is_closure(self, step: TrainingStep) -> bool:
        """`optimizer.step(closure)` / `step(closure=...)`, not `scaler.step(optimizer)`."""
        if not step.step.args:
            return False
        first = step.step.args[0]
        if first.keyword is not None:
            return first.keyword.value == "closure"
        code = self.context.module.code_for_node
        return code(first.value) != code(step.optimizer)

    def _regions(self, facts: TrainingFacts, step: TrainingStep) -> list[cst.CSTNode]:
        """The code that repeats with the step; a clearing in any of it counts."""
        for loop in reversed(step.loops):
            if _contains(loop, step.backward):
                return [loop]  # innermost loop holding both backward and step
        if step.loops or step.function is None:
            return []  # backward outside the loop, or a one-off at module level
        function = step.function
        owner = facts.walk.owner.get(function)
        if function.name.value in LIGHTNING_STEP_METHODS and self._is_lightning(owner):
            return [function]  # Lightning calls training_step once per batch
        callers = facts.walk.callers.get(function.name.value, [])
        if not callers or any(not loops for _, loops in callers):
            return []  # helper never called here, or called once
        return [function] + [loops[-1] for _, loops in callers]

    def _is_lightning(self, name: str | None, depth: int = 4) -> bool:
        """A LightningModule subclass of this file (directly or through local bases)."""
        info = self.index.module_classes.get(name or "")
        if info is None or depth == 0:
            return False
        for base in info.node.bases:
            qualified = self.index.qualified(base.value) or ""
            if qualified.startswith("lightning"):
                return True
            if isinstance(base.value, cst.Name) and self._is_lightning(base.value.value, depth - 1):
                return True
        return False


def _contains(region: cst.CSTNode, target: cst.CSTNode) -> bool:
    return region is target or any(node is target for node in descendants(region))
