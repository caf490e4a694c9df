from __future__ import annotations

import libcst as cst

from gradlint import Invalid, Rule, Severity, Valid
from gradlint.semantics.training import training_facts
from gradlint.semantics.training_order import cleared_before_step


class GradientsClearedBeforeStep(Rule):
    """
    ## What it does
    Flags a `zero_grad()` that runs after `backward()` and before the `step()` of the same
    optimizer in the same pass: `loss.backward(); optimizer.zero_grad(); optimizer.step()`.
    A `model.zero_grad()` counts when the optimizer was built over `model.parameters()`.

    ## Why is this bad?
    `step()` reads `.grad`, and `zero_grad()` has just wiped it: to `None` by default, and
    every optimizer skips a parameter without a gradient; with `set_to_none=False` the zeros
    leave momentum or Adam replaying only stale state. The loss is computed and
    backpropagated every batch, yet the weights never learn from it, and nothing raises.
    Clear before `backward()`, or right after `step()`.

    ## Known limitations
    Only the order inside one function is read. A clearing behind its own `if` or in another
    loop than the step, or a call of a helper of this file between the clearing and the step
    (it may run `backward()` itself), leaves the order unknown and the rule quiet.
    """

    CODE = "GL119"
    NEEDS = ("zero_grad",)
    SEVERITY = Severity.ERROR
    MESSAGE = (
        "`{clear}` runs after `backward()` and before `{step}`; the step applies gradients "
        "that were just cleared"
    )
    HINT = "Call zero_grad() before backward() (or right after step())"

    VALID = [
        Valid("""
            import torch
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            for x, y in loader:
                loss = criterion(model(x), y)
                loss.backward()
                optimizer.step()
                optimizer.zero_grad()
        """),
        # gradient accumulation: cleared every k batches, right after the step
        Valid("""
            import torch
            optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5)
            for i, batch in enumerate(loader):
                (model(**batch).loss / accum).backward()
                if (i + 1) % accum == 0:
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
        """),
        # DCGAN: the generator's gradients are cleared between the discriminator's passes
        Valid("""
            import torch.optim as optim
            optimizerD = optim.Adam(netD.parameters(), lr=2e-4)
            optimizerG = optim.Adam(netG.parameters(), lr=2e-4)
            for real in dataloader:
                netD.zero_grad()
                errD = criterion(netD(real), ones) + criterion(netD(netG(z).detach()), zeros)
                errD.backward()
                netG.zero_grad()
                optimizerD.step()
                errG = criterion(netD(netG(z)), ones)
                errG.backward()
                optimizerG.step()
        """),
        # AMP: unscale, clip, step, then clear
        Valid("""
            import torch
            scaler = torch.cuda.amp.GradScaler()
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            for images, target in loader:
                scaler.scale(criterion(model(images), target)).backward()
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad()
        """),
        # the clearing sits in its own branch: the order is not known
        Valid("""
            import torch
            optimizer = torch.optim.Adam(model.parameters())
            for batch in loader:
                loss = model(batch)
                loss.backward()
                if torch.isnan(loss):
                    optimizer.zero_grad()
                optimizer.step()
        """),
        # a helper of this file runs backward between the clearing and the step
        Valid("""
            import torch
            def backprop(model, batch):
                model(batch).mean().backward()
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            for batch in loader:
                backprop(model, warmup)
                optimizer.zero_grad()
                backprop(model, batch)
                optimizer.step()
        """),
        # LBFGS: the closure clears and backpropagates for the step
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
    ]
    INVALID = [
        Invalid(
            """
            import torch
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            for x, y in loader:
                loss = criterion(model(x), y)
                loss.backward()
                optimizer.zero_grad()
                optimizer.step()
        """,
            line=6,
            message="`optimizer.zero_grad()` runs after `backward()` and before `optimizer.step()`",
        ),
        # the model's zero_grad, for an optimizer over that model
        Invalid(
            """
            from torch import nn, optim
            net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
            opt = optim.Adam(net.parameters(), lr=1e-3)
            for epoch in range(100):
                loss = nn.functional.mse_loss(net(x), y)
                loss.backward()
                net.zero_grad()
                opt.step()
        """,
            line=7,
        ),
        # AMP, in a per-batch helper
        Invalid(
            """
            import torch
            def train_step(model, batch, optimizer, scaler):
                with torch.autocast("cuda"):
                    loss = model(batch).mean()
                scaler.scale(loss).backward()
                optimizer.zero_grad(set_to_none=True)
                scaler.step(optimizer)
                scaler.update()
                return loss.item()
        """,
            line=6,
        ),
    ]

    def visit_Module(self, node: cst.Module) -> None:
        code = self.context.module.code_for_node
        for found in cleared_before_step(training_facts(self.index)):
            self.report(found.zero_grad, clear=code(found.zero_grad), step=code(found.step))
