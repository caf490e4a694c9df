from __future__ import annotations

import libcst as cst

from gradlint import Invalid, Rule, Severity, Valid
from gradlint.semantics.training import training_facts
from gradlint.semantics.training_order import backward_without_step
from gradlint.semantics.unstepped import unstepped_optimizers

UNSTEPPED = (
    "`{call}` fills gradients for `{optimizer}`, which clears them every pass and is never "
    "stepped anywhere in this file; the weights it holds never change"
)


class BackwardWithoutStep(Rule):
    """
    ## What it does
    Flags a `backward()` in a loop that clears the gradients every pass (`zero_grad()`) but
    never steps an optimizer, never updates anything and never reads `.grad`, in the whole
    function around it.

    ## Why is this bad?
    `backward()` only fills `.grad`; the weights change when `optimizer.step()` reads it.
    Without the step, every batch is forwarded, backpropagated and then wiped by the next
    `zero_grad()`: the loss curve stays flat while the loop looks complete and burns the
    full training time.

    In a GAN trainer the same happens to one model only: `optimizer_D.zero_grad()` and
    `loss_D.backward()` run every pass, but only `optimizer_G.step()` is ever called, so the
    discriminator keeps its initial weights. This is flagged when the optimizer is built in
    the file and every use of it there is known: no `.step`, not handed to code of another
    file or kept in a container.

    ## Known limitations
    Only loops that also clear the gradients are considered, so a loop that accumulates
    gradients for a step after it is never flagged. Any `.step`, `.update` or `.grad` in the
    function, a call of a helper of this file, or a call that receives something named like an
    optimizer keeps the rule quiet: the step may happen there.
    """

    CODE = "GL125"
    NEEDS = ("backward",)
    SEVERITY = Severity.ERROR
    MESSAGE = (
        "`{call}` runs in a loop that clears the gradients and never steps an optimizer; "
        "the weights never change"
    )
    HINT = "Call optimizer.step() after backward() (and before the next zero_grad())"

    VALID = [
        Valid("""
            import torch
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
            for x, y in loader:
                optimizer.zero_grad()
                loss = criterion(model(x), y)
                loss.backward()
                optimizer.step()
        """),
        # manual SGD: the update reads .grad by hand
        Valid("""
            import torch
            for t in range(500):
                loss = (model(x) - y).pow(2).sum()
                model.zero_grad()
                loss.backward()
                with torch.no_grad():
                    for param in model.parameters():
                        param -= 1e-4 * param.grad
        """),
        # an adversarial attack: gradients of the input, no optimizer at all
        Valid("""
            import torch
            def pgd(model, x, y, eps, steps):
                delta = torch.zeros_like(x, requires_grad=True)
                for _ in range(steps):
                    model.zero_grad()
                    loss = torch.nn.functional.cross_entropy(model(x + delta), y)
                    loss.backward()
                    delta.data = (delta + eps * delta.grad.sign()).clamp(-eps, eps)
                return delta
        """),
        # the step lives in a helper of this file
        Valid("""
            import torch
            def apply_update(optimizer, scheduler):
                optimizer.step()
                scheduler.step()
            for batch in loader:
                optimizer.zero_grad()
                model(batch).loss.backward()
                apply_update(optimizer, scheduler)
        """),
        # micro-batches accumulate; the step comes after the inner loop
        Valid("""
            import torch
            for it in range(max_iters):
                for micro in range(accum):
                    loss = model(*get_batch("train"))
                    scaler.scale(loss / accum).backward()
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
        """),
        # the optimizer is handed to a library call
        Valid("""
            import torch
            from trainer_lib import finish
            for batch in loader:
                optimizer.zero_grad()
                model(batch).mean().backward()
                finish(model, optimizer)
        """),
        # no clearing in the loop: gradients may be summed for a later step
        Valid("""
            import torch
            def accumulate(model, batches):
                for batch in batches:
                    model(batch).mean().backward()
        """),
        # the discriminator's optimizer is stepped by a helper of this file
        Valid("""
            import torch
            optimizer_D = torch.optim.Adam(D.parameters(), lr=2e-4)
            optimizer_G = torch.optim.Adam(G.parameters(), lr=2e-4)
            def update(optimizer):
                optimizer.step()
            for real in loader:
                optimizer_D.zero_grad()
                d_loss(D, G, real).backward()
                update(optimizer_D)
                optimizer_G.zero_grad()
                g_loss(D, G).backward()
                optimizer_G.step()
        """),
        # both optimizers kept in a list and stepped through it
        Valid("""
            import torch
            opt_d = torch.optim.Adam(D.parameters())
            opt_g = torch.optim.Adam(G.parameters())
            optimizers = [opt_d, opt_g]
            for real in loader:
                opt_d.zero_grad()
                d_loss(real).backward()
                for opt in optimizers:
                    opt.step()
        """),
    ]
    INVALID = [
        Invalid(
            """
            import torch
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
            for x, y in loader:
                optimizer.zero_grad()
                loss = criterion(model(x), y)
                loss.backward()
        """,
            line=6,
            message="`loss.backward()` runs in a loop",
        ),
        Invalid(
            """
            import torch
            from torch import nn
            def train_epoch(model, loader, optimizer):
                model.train()
                total = 0.0
                for images, labels in loader:
                    optimizer.zero_grad()
                    loss = nn.functional.cross_entropy(model(images), labels)
                    loss.backward()
                    total += loss.item()
                return total / len(loader)
        """,
            line=9,
        ),
        Invalid(
            """
            import torch
            scaler = torch.cuda.amp.GradScaler()
            for epoch in range(epochs):
                for batch in loader:
                    model.zero_grad(set_to_none=True)
                    with torch.autocast("cuda"):
                        loss = model(batch)
                    scaler.scale(loss).backward()
        """,
            line=8,
        ),
        # the discriminator's extra loop: cleared and backpropagated, never stepped
        Invalid(
            """
            import torch
            optimizer_G = torch.optim.Adam(generator.parameters(), lr=1e-4)
            optimizer_D = torch.optim.Adam(discriminator.parameters(), lr=1e-4)
            def adjust_learning_rate(optimizer, lr):
                for group in optimizer.param_groups:
                    group["lr"] = lr
            for epoch in range(epochs):
                for x, y in loader:
                    for _ in range(d_iters):
                        optimizer_D.zero_grad()
                        loss_D = mse(discriminator(x, generator(x).detach()), fake)
                        loss_D.backward()
                    optimizer_G.zero_grad()
                    loss_G = l1(generator(x), y)
                    loss_G.backward()
                    optimizer_G.step()
                adjust_learning_rate(optimizer_D, lr * 0.5)
        """,
            line=12,
            message="fills gradients for `optimizer_D`",
        ),
    ]

    def visit_Module(self, node: cst.Module) -> None:
        code = self.context.module.code_for_node
        facts = training_facts(self.index)
        reported = set()
        for call in backward_without_step(facts):
            reported.add(call)
            self.report(call, call=code(call))
        for found in unstepped_optimizers(facts):
            if found.backward not in reported:
                reported.add(found.backward)
                self.report(
                    found.backward,
                    message=UNSTEPPED.format(call=code(found.backward), optimizer=found.optimizer),
                )
