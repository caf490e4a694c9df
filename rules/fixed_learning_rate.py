from __future__ import annotations

import re

import libcst as cst

from gradlint import Invalid, Rule, Severity, Valid
from gradlint.semantics import tables
from gradlint.semantics.run_length import run_length, unused_schedule_options
from gradlint.semantics.training import training_facts
from gradlint.semantics.training_extra import hands_optimizer_away

MIN_EPOCHS = 20  # epochs over the data, or
MIN_STEPS = 10_000  # optimizer steps, that a run with one learning rate must last to be flagged
# reinforcement learning: constant learning rates are the norm in its recipes
RL_WORDS = re.compile(r"\b(gym|gymnasium|env\.step|reward|replay_buffer|ReplayBuffer)\b")


class FixedLearningRate(Rule):
    """
    ## What it does
    Flags an optimizer created with a learning rate and stepped for a long run, at least 20
    epochs over the data or 10,000 steps, when the file sets up no learning-rate schedule at
    all: no `torch.optim.lr_scheduler`, no `get_*_schedule*` helper, no manual
    `param_group["lr"] = ...` decay. The length must be stated in the file: `range(30)`, a
    module constant, an `argparse` default, a config dict literal, a parameter default.
    A `--decay_epoch`-style option that is parsed and never read is named in the message.

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
    The rule stays quiet whenever it cannot be sure: a run length read from a config file or
    the command line without a default, an optimizer handed to a helper of another module
    (which may change its learning rate), any schedule anywhere in the file, GAN recipes
    (several optimizers) and reinforcement learning (constant learning rates are their norm),
    optimizers built without an explicit `lr` or rebuilt inside a loop, and Lightning's
    automatic optimization. Test code is not checked (`test-paths`).
    """

    CODE = "GL105"
    # a training step is a `backward()` (or `manual_backward()`) followed by `step()`
    NEEDS = ("backward",)
    SEVERITY = Severity.INFO
    PREVIEW = True  # below 9 in 10 right on labelled real code (benchmarks/quality)
    MESSAGE = (
        "`{optimizer}` keeps lr={lr} for all {length} and nothing in this file schedules it; "
        "a step size that makes fast progress early keeps overshooting near the minimum{unused}"
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
        # a tidy tutorial: five epochs
        Valid("""
            import torch
            optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
            for epoch in range(5):
                for x, y in loader:
                    optimizer.zero_grad()
                    loss_fn(model(x), y).backward()
                    optimizer.step()
        """),
        # the number of epochs comes from a YAML file: unknown here
        Valid("""
            import torch, yaml
            cfg = yaml.safe_load(open("train.yaml"))
            optimizer = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
            for epoch in range(cfg["epochs"]):
                for x, y in loader:
                    optimizer.zero_grad()
                    loss_fn(model(x), y).backward()
                    optimizer.step()
        """),
        # DCGAN recipe: generator and discriminator keep lr=2e-4 by design
        Valid("""
            import torch
            opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
            opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
            for epoch in range(100):
                for real in loader:
                    opt_d.zero_grad()
                    d_loss(D(real), D(G(noise()).detach())).backward()
                    opt_d.step()
                    opt_g.zero_grad()
                    g_loss(D(G(noise()))).backward()
                    opt_g.step()
        """),
        # reinforcement learning: DQN with a constant rate
        Valid("""
            import gym, torch
            env = gym.make("CartPole-v1")
            optimizer = torch.optim.Adam(q_net.parameters(), lr=1e-3)
            for episode in range(500):
                state = env.reset()
                for t in range(200):
                    state, reward, done, _ = env.step(act(state))
                    optimizer.zero_grad()
                    td_loss(q_net, replay.sample()).backward()
                    optimizer.step()
        """),
        # the optimizer goes to a helper of another module that adjusts its rate
        Valid("""
            import torch
            from utils import adjust_learning_rate
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
            for epoch in range(90):
                adjust_learning_rate(optimizer, epoch)
                for x, y in loader:
                    optimizer.zero_grad()
                    loss_fn(model(x), y).backward()
                    optimizer.step()
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
                def fit(self, loader, epochs=50):
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
            max_epochs = 120
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
            line=3,
        ),
        # a GAN-free image-translation script: epochs from argparse, a decay option never read
        Invalid(
            """
            import argparse
            import torch
            parser = argparse.ArgumentParser()
            parser.add_argument("--n_epochs", type=int, default=200)
            parser.add_argument("--decay_epoch", type=int, default=100)
            opt = parser.parse_args()
            optimizer = torch.optim.Adam(net.parameters(), lr=2e-4, betas=(0.5, 0.999))
            for epoch in range(opt.n_epochs):
                for batch in loader:
                    optimizer.zero_grad()
                    criterion(net(batch["A"]), batch["B"]).backward()
                    optimizer.step()
        """,
            line=7,
            message="`--decay_epoch` is parsed but never used",
        ),
        # an iteration-count loop from a config dict
        Invalid(
            """
            import torch
            config = {"iterations": 50000, "lr": 1e-3}
            optimizer = torch.optim.Adam(model.parameters(), lr=config["lr"])
            data = iter(loader)
            for it in range(config["iterations"]):
                x, y = next(data)
                optimizer.zero_grad()
                loss_fn(model(x), y).backward()
                optimizer.step()
        """,
            line=3,
            message="50,000 steps",
        ),
    ]

    def visit_Module(self, node: cst.Module) -> None:
        facts = training_facts(self.index)
        if facts.has_lr_schedule:
            return  # some schedule exists in this file
        if RL_WORDS.search(self.index.source or ""):
            return  # reinforcement learning: a constant learning rate is the recipe
        if len({s.construction.call for s in facts.steps if s.construction}) > 1:
            return  # GANs and other multi-optimizer recipes keep their rates constant
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
            length = run_length(facts, step)
            if (length.epochs or 0) >= MIN_EPOCHS:
                said = f"{length.epochs} epochs"
            elif (length.steps or 0) >= MIN_STEPS:
                said = f"{length.steps:,} steps"
            else:
                continue  # a short run, or one whose length this file does not state
            if hands_optimizer_away(self.index, node, step.optimizer):
                continue  # a helper of another module gets the optimizer and may decay it
            reported.add(built.call)
            unused = unused_schedule_options(self.index)
            note = f"; `--{unused[0]}` is parsed but never used" if unused else ""
            lr = self.context.module.code_for_node(built.lr)
            optimizer = built.name.rsplit(".", 1)[-1]
            self.report(built.call, optimizer=optimizer, lr=lr, length=said, unused=note)
