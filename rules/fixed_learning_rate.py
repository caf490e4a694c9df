from __future__ import annotations

import libcst as cst

from gradlint import Invalid, Rule, Severity, Valid
from gradlint.semantics import tables
from gradlint.semantics.training import training_facts


class FixedLearningRate(Rule):
    """
    ## What it does
    Flags an optimizer created with a learning rate and stepped for many epochs (inside an
    epoch loop, two nested loops, or a function called from one) when the file sets up no
    learning-rate schedule at all: no `torch.optim.lr_scheduler`, no `get_*_schedule*`
    helper, no manual `param_group["lr"] = ...` decay.

    ## Why is this bad?
    Gradient descent moves each weight by `lr * gradient`. Early in training a large step
    makes fast progress; near a minimum the same step overshoots it and the loss keeps
    bouncing around instead of settling, because the gradient noise of each mini-batch is
    multiplied by the same large factor forever. Lowering the learning rate as training
    goes on (step decay, cosine annealing, one-cycle, reduce-on-plateau, usually after a
    short warmup) lets the model take big steps first and small ones to converge, and
    typically gives a lower final loss. Adaptive optimizers such as Adam still benefit:
    they rescale each parameter, but the global step size is still `lr`. `LBFGS` chooses
    its step by line search and is not flagged.

    ## Known limitations
    Only one file is analysed (cross-file analysis is planned): an optimizer built in another
    module is not checked, and a schedule created elsewhere is seen only when this file
    names it (`build_scheduler(...)`, `self.lr_scheduler.step()`). Any schedule in the file
    quiets the rule for every optimizer in it. Optimizers built without an explicit `lr`,
    optimizers rebuilt inside a loop, and Lightning's automatic optimization are not checked.
    """

    CODE = "GL105"
    # a training step is a `backward()` (or `manual_backward()`) followed by `step()`
    NEEDS = ("backward",)
    SEVERITY = Severity.INFO
    MESSAGE = (
        "`{optimizer}` keeps lr={lr} for every epoch and nothing in this file schedules it; "
        "a step size that makes fast progress early keeps overshooting near the minimum"
    )
    HINT = (
        "Add a schedule stepped once per epoch or iteration: torch.optim.lr_scheduler.StepLR, "
        "CosineAnnealingLR, OneCycleLR, ReduceLROnPlateau, or a warmup schedule "
        "(LinearLR + SequentialLR, transformers.get_cosine_schedule_with_warmup)"
    )

    VALID = [
        Valid("""
            import torch
            from torch import nn, optim
            from torch.optim.lr_scheduler import StepLR
            def train(model, loader, optimizer):
                model.train()
                for data, target in loader:
                    optimizer.zero_grad()
                    loss = nn.functional.nll_loss(model(data), target)
                    loss.backward()
                    optimizer.step()
            def main():
                model = Net()
                optimizer = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
                scheduler = StepLR(optimizer, step_size=10, gamma=0.1)
                for epoch in range(1, 31):
                    train(model, train_loader, optimizer)
                    scheduler.step()
        """),
        # Hugging Face style: accelerator, warmup schedule stepped after the optimizer
        Valid("""
            import torch
            from accelerate import Accelerator
            from transformers import get_linear_schedule_with_warmup
            accelerator = Accelerator()
            optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.01)
            lr_scheduler = get_linear_schedule_with_warmup(optimizer, 500, total_steps)
            model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
            for epoch in range(num_epochs):
                for batch in loader:
                    loss = model(**batch).loss
                    accelerator.backward(loss)
                    optimizer.step()
                    lr_scheduler.step()
                    optimizer.zero_grad()
        """),
        # manual step decay on the param groups
        Valid("""
            import torch.optim as optim
            optimizer = optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
            for epoch in range(90):
                if epoch in (30, 60):
                    for group in optimizer.param_groups:
                        group["lr"] *= 0.1
                for x, y in loader:
                    optimizer.zero_grad()
                    criterion(net(x), y).backward()
                    optimizer.step()
        """),
        # the classic ImageNet-example helper
        Valid("""
            import torch
            def adjust_learning_rate(optimizer, epoch, args):
                lr = args.lr * (0.1 ** (epoch // 30))
                for param_group in optimizer.param_groups:
                    param_group['lr'] = lr
            optimizer = torch.optim.SGD(model.parameters(), args.lr, momentum=0.9)
            for epoch in range(args.epochs):
                adjust_learning_rate(optimizer, epoch, args)
                for images, target in loader:
                    loss = criterion(model(images), target)
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
        """),
        # LBFGS picks its own step size by line search
        Valid("""
            from torch.optim import LBFGS
            optimizer = LBFGS(model.parameters(), lr=1.0)
            for epoch in range(20):
                def closure():
                    optimizer.zero_grad()
                    loss = criterion(model(x), y)
                    loss.backward()
                    return loss
                loss = closure()
                loss.backward()
                optimizer.step(closure)
        """),
        # a single pass over the data (one fine-tuning epoch): nothing to decay across
        Valid("""
            import torch
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
            for x, y in loader:
                optimizer.zero_grad()
                loss_fn(model(x), y).backward()
                optimizer.step()
        """),
        # ReduceLROnPlateau stepped on the validation loss, AMP training
        Valid("""
            import torch
            from torch.optim.lr_scheduler import ReduceLROnPlateau
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
            plateau = ReduceLROnPlateau(optimizer, patience=3)
            scaler = torch.cuda.amp.GradScaler()
            for epoch in range(100):
                for x, y in loader:
                    with torch.autocast("cuda"):
                        loss = loss_fn(model(x), y)
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                plateau.step(validate(model))
        """),
        # inference only
        Valid("""
            import torch
            model = torch.load("model.pt")
            model.eval()
            with torch.no_grad():
                for epoch in range(3):
                    for x in loader:
                        preds = model(x).argmax(-1)
        """),
        # Lightning: configure_optimizers returns a scheduler with the optimizer
        Valid("""
            import lightning.pytorch as pl
            import torch
            class Lit(pl.LightningModule):
                def configure_optimizers(self):
                    opt = torch.optim.Adam(self.parameters(), lr=1e-3)
                    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)
                    return {"optimizer": opt, "lr_scheduler": sched}
                def training_step(self, batch, idx):
                    opt = self.optimizers()
                    for epoch_chunk in batch:
                        for x in epoch_chunk:
                            self.manual_backward(self(x).sum())
                            opt.step()
        """),
        # default learning rate (no `lr=`): not checked
        Valid("""
            from torch import optim
            optimizer = optim.Adam(model.parameters())
            for epoch in range(10):
                for x in loader:
                    model(x).sum().backward()
                    optimizer.step()
        """),
        # optimizer built by a factory in another module: its lr is not visible here
        Valid("""
            import torch
            from mytrainer import build_optimizer
            optimizer = build_optimizer(cfg, model)
            for epoch in range(cfg.epochs):
                for x in loader:
                    model(x).sum().backward()
                    optimizer.step()
        """),
        # OneCycleLR through `import torch.optim as optim`
        Valid("""
            import torch.optim as optim
            optimizer = optim.SGD(model.parameters(), lr=0.1)
            sched = optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=1000)
            for epoch in range(10):
                for x in loader:
                    model(x).sum().backward()
                    optimizer.step()
                    sched.step()
        """),
        # rebuilt every epoch with a decayed lr
        Valid("""
            from torch import optim
            lr = 0.1
            for epoch in range(30):
                optimizer = optim.SGD(model.parameters(), lr=lr)
                for x, y in loader:
                    optimizer.zero_grad()
                    criterion(model(x), y).backward()
                    optimizer.step()
                lr *= 0.95
        """),
        # the schedule comes from a project factory; stepped once per epoch
        Valid("""
            import torch
            from mytrainer.solver import make_lr_scheduler
            class Trainer:
                def __init__(self, model, cfg):
                    self.optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr)
                    self.lr_sched = make_lr_scheduler(cfg, self.optimizer)
                def run(self, loader, epochs):
                    for epoch in range(epochs):
                        for x in loader:
                            self.model(x).mean().backward()
                            self.optimizer.step()
                        self.lr_sched.step()
        """),
        # stochastic weight averaging with its own LR schedule
        Valid("""
            import torch
            from torch.optim.swa_utils import SWALR, AveragedModel
            optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
            swa_model = AveragedModel(model)
            swa_scheduler = SWALR(optimizer, swa_lr=0.05)
            for epoch in range(300):
                for x, y in loader:
                    optimizer.zero_grad()
                    loss_fn(model(x), y).backward()
                    optimizer.step()
                swa_scheduler.step()
        """),
    ]
    INVALID = [
        Invalid(
            """
            import torch
            from torch import nn, optim
            def train(model, loader, optimizer):
                model.train()
                for data, target in loader:
                    optimizer.zero_grad()
                    loss = nn.functional.nll_loss(model(data), target)
                    loss.backward()
                    optimizer.step()
            def main():
                model = Net()
                optimizer = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
                for epoch in range(1, 31):
                    train(model, train_loader, optimizer)
        """,
            line=12,
            message="lr=0.01",
        ),
        # two nested loops, `from torch.optim import Adam`
        Invalid(
            """
            from torch.optim import Adam
            opt = Adam(net.parameters(), 3e-4)
            for _ in range(200):
                for x, y in loader:
                    opt.zero_grad()
                    loss_fn(net(x), y).backward()
                    opt.step()
        """,
            line=2,
            message="lr=3e-4",
        ),
        # a trainer class: optimizer built in __init__, stepped in an epoch loop
        Invalid(
            """
            import torch.optim as optim
            class Trainer:
                def __init__(self, model, lr):
                    self.model = model
                    self.optimizer = optim.AdamW(model.parameters(), lr=lr)
                def fit(self, loader, epochs):
                    for epoch in range(epochs):
                        for batch in loader:
                            self.optimizer.zero_grad()
                            self.model(batch).mean().backward()
                            self.optimizer.step()
        """,
            line=5,
            message="AdamW",
        ),
        # AMP with GradScaler, epoch loop as `while`
        Invalid(
            """
            import torch
            optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
            scaler = torch.cuda.amp.GradScaler()
            epoch = 0
            while epoch < max_epochs:
                for x, y in loader:
                    with torch.autocast("cuda"):
                        loss = loss_fn(model(x), y)
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                epoch += 1
        """,
            line=2,
        ),
    ]

    def visit_Module(self, node: cst.Module) -> None:
        facts = training_facts(self.index)
        if facts.has_lr_schedule:
            return  # some schedule exists in this file
        reported: set[cst.Call] = set()
        for step in facts.steps:
            built = step.construction
            if built is None or built.call in reported:
                continue  # optimizer built elsewhere, or already reported
            if built.lr is None:
                continue  # default learning rate: not checked
            if built.in_loop:
                continue  # rebuilt every pass, typically with a new lr
            if built.name in tables.NO_SCHEDULE_OPTIMIZERS:
                continue  # LBFGS: line search picks the step
            if not facts.is_multi_epoch(step):
                continue  # a single pass over the data
            reported.add(built.call)
            lr = self.context.module.code_for_node(built.lr)
            self.report(built.call, optimizer=built.name.rsplit(".", 1)[-1], lr=lr)
