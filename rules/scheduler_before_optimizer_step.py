from __future__ import annotations

import libcst as cst

from gradlint import Invalid, Rule, Severity, Valid
from gradlint.semantics.training import training_facts
from gradlint.semantics.training_schedule import early_scheduler_steps


class SchedulerBeforeOptimizerStep(Rule):
    """
    ## What it does
    Flags a learning-rate scheduler's `step()` that runs, in a training loop, before the first
    `optimizer.step()`: at the top of the epoch loop ahead of the batches, ahead of a call of
    a `train(...)` function that steps the optimizer, or ahead of `optimizer.step()` in the
    batch loop.

    ## Why is this bad?
    Since PyTorch 1.1 a scheduler's `step()` moves the learning rate on to the *next* value of
    the schedule, and the optimizer starts at the first one. Stepping the scheduler first
    means the first value is never used and every epoch (or batch) trains with the rate meant
    for the one after it: a warm-up skips its first (smallest) rate and a step decay comes
    one epoch early. PyTorch warns "Detected call of `lr_scheduler.step()` before
    `optimizer.step()`". The pre-1.1 idiom `for epoch ...: scheduler.step(); train(...)` is
    the usual source; move the call after the optimizer's steps (the end of the epoch, or
    right after `optimizer.step()`).

    ## Known limitations
    A scheduler is recognised by its construction (`torch.optim.lr_scheduler.*`,
    `transformers.get_*_schedule*`), or, when it is built elsewhere, by a name containing
    `sched` (a schedule class of this file is left alone). `step(...)` with an argument
    (`ReduceLROnPlateau`, an explicit epoch), a call behind an `if` whose test reads a number
    or a counter (`if epoch > 0:`), and a scheduler stepped once before the loop are left
    alone. Helpers are followed only in this file, and an imported function only when its
    name says it trains and it receives the optimizer.
    """

    CODE = "GL123"
    NEEDS = ("sched",)
    SEVERITY = Severity.WARNING
    MESSAGE = (
        "`{sched}` runs before {first}; the schedule's first learning rate is skipped "
        "and every step uses the next one"
    )
    HINT = "Step the scheduler after optimizer.step() (at the end of the epoch or batch)"

    VALID = [
        Valid("""
            import torch
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
            scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=30, gamma=0.1)
            for epoch in range(90):
                for images, target in loader:
                    optimizer.zero_grad()
                    criterion(model(images), target).backward()
                    optimizer.step()
                scheduler.step()
        """),
        # ReduceLROnPlateau after validation
        Valid("""
            from torch import optim
            optimizer = optim.Adam(model.parameters(), lr=1e-3)
            scheduler = optim.lr_scheduler.ReduceLROnPlateau(optimizer, "min")
            for epoch in range(100):
                val_loss = validate(model)
                scheduler.step(val_loss)
                train_one_epoch(model, optimizer)
        """),
        # a per-batch warm-up stepped right after the optimizer
        Valid("""
            import torch
            from transformers import get_linear_schedule_with_warmup
            optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5)
            scheduler = get_linear_schedule_with_warmup(optimizer, 100, 1000)
            for batch in loader:
                model(**batch).loss.backward()
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
        """),
        # guarded: the first epoch keeps the first rate
        Valid("""
            import torch
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [30, 60])
            def train(epoch):
                for x, y in loader:
                    optimizer.zero_grad()
                    criterion(model(x), y).backward()
                    optimizer.step()
            for epoch in range(90):
                if epoch > 0:
                    scheduler.step()
                train(epoch)
        """),
        # a noise schedule's step is no learning-rate schedule
        Valid("""
            import torch
            optimizer = torch.optim.Adam(model.parameters())
            for epoch in range(10):
                beta_scheduler.step()
                for x in loader:
                    optimizer.zero_grad()
                    model.loss(x, beta_scheduler.value).backward()
                    optimizer.step()
        """),
        # stepped with an explicit epoch: the rate is set for that epoch, not advanced
        Valid("""
            import torch
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=200)
            for epoch in range(200):
                scheduler.step(epoch)
                for x, y in loader:
                    optimizer.zero_grad()
                    criterion(model(x), y).backward()
                    optimizer.step()
        """),
        # stepped once before training starts, on purpose, outside the loop
        Valid("""
            from torch.optim import Adam
            from torch.optim.lr_scheduler import LambdaLR
            optimizer = Adam(model.parameters(), lr=1e-3)
            scheduler = LambdaLR(optimizer, lambda e: min(1.0, (e + 1) / 5))
            def main():
                scheduler.step()
                for epoch in range(50):
                    for x in loader:
                        optimizer.zero_grad()
                        model(x).mean().backward()
                        optimizer.step()
        """),
    ]
    INVALID = [
        Invalid(
            """
            import torch
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
            scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=30, gamma=0.1)
            for epoch in range(90):
                scheduler.step()
                for images, target in loader:
                    optimizer.zero_grad()
                    criterion(model(images), target).backward()
                    optimizer.step()
        """,
            line=5,
            message="`scheduler.step()` runs before `optimizer.step()`",
        ),
        # the pre-1.1 idiom: stepped at the top of the epoch, a train() of this file steps
        Invalid(
            """
            from torch import optim
            from torch.optim import lr_scheduler
            optimizer = optim.SGD(net.parameters(), lr=0.01)
            exp_lr = lr_scheduler.ExponentialLR(optimizer, gamma=0.95)
            def train(epoch):
                net.train()
                for data, target in train_loader:
                    optimizer.zero_grad()
                    loss = criterion(net(data), target)
                    loss.backward()
                    optimizer.step()
            for epoch in range(1, 31):
                exp_lr.step()
                train(epoch)
        """,
            line=13,
            message="runs before `train(...)` steps the optimizer",
        ),
        # in the batch loop, before the optimizer
        Invalid(
            """
            import torch
            from transformers import get_cosine_schedule_with_warmup
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
            sched = get_cosine_schedule_with_warmup(optimizer, 500, 10000)
            for batch in loader:
                loss = model(**batch).loss
                loss.backward()
                sched.step()
                optimizer.step()
                optimizer.zero_grad()
        """,
            line=8,
        ),
        # inside a per-epoch function called from the epoch loop
        Invalid(
            """
            import torch
            def train_epoch(model, loader, optimizer, scheduler):
                scheduler.step()
                model.train()
                for x, y in loader:
                    optimizer.zero_grad()
                    torch.nn.functional.cross_entropy(model(x), y).backward()
                    optimizer.step()
            for epoch in range(epochs):
                train_epoch(model, loader, optimizer, scheduler)
                evaluate(model)
        """,
            line=3,
        ),
        # the transfer-learning recipe: stepped when the train phase starts
        Invalid(
            """
            import torch
            from torch.optim import lr_scheduler
            optimizer_ft = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
            exp_lr_scheduler = lr_scheduler.StepLR(optimizer_ft, step_size=7, gamma=0.1)
            for epoch in range(25):
                for phase in ["train", "val"]:
                    if phase == "train":
                        exp_lr_scheduler.step()
                        model.train()
                    else:
                        model.eval()
                    for inputs, labels in dataloaders[phase]:
                        optimizer_ft.zero_grad()
                        with torch.set_grad_enabled(phase == "train"):
                            loss = criterion(model(inputs), labels)
                            if phase == "train":
                                loss.backward()
                                optimizer_ft.step()
        """,
            line=8,
        ),
        # an imported per-epoch function that is handed the optimizer
        Invalid(
            """
            import torch
            from core.function import train_one_epoch
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
            lr_scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [90, 120], 0.1)
            for epoch in range(140):
                lr_scheduler.step()
                train_one_epoch(model, train_loader, criterion, optimizer, epoch)
        """,
            line=6,
        ),
    ]

    def visit_Module(self, node: cst.Module) -> None:
        code = self.context.module.code_for_node
        for found in early_scheduler_steps(training_facts(self.index)):
            if found.helper:
                first = f"`{found.helper}(...)` steps the optimizer"
            else:
                first = f"`{code(found.optimizer_step)}`"
            self.report(found.scheduler_step, sched=code(found.scheduler_step), first=first)
