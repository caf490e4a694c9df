from __future__ import annotations

import re

import libcst as cst

from gradlint import Invalid, Rule, Severity, Valid
from gradlint.semantics import tables
from gradlint.semantics.names import dotted_name
from gradlint.semantics.training import training_facts
from gradlint.semantics.training_extra import (
    ABSOLUTE_LR_SCHEDULERS,
    SCALING_LR_SCHEDULERS,
    FACTORY_FAMILIES,
    LR_LIMITS,
    numeric_literal,
    optimizer_family,
)

# `group["lr"] = rate(step)`: the rate is set by hand (warmup, Noam), the built value is unused
MANUAL_LR = re.compile(r"\[\s*['\"]lr['\"]\s*\]\s*=[^=]")
LR_FLAGS = frozenset({"--lr", "--learning-rate", "--learning_rate", "--base-lr", "--base_lr"})


class ExcessiveLearningRate(Rule):
    """
    ## What it does
    Flags an optimizer built with a literal learning rate far above what its family
    tolerates: SGD ≥ 1, Adam/AdamW/Adamax/NAdam/RAdam ≥ 0.1, RMSprop ≥ 0.1, Adagrad ≥ 1,
    Adadelta ≥ 10. The literal may sit in the call (`lr=0.5`, second positional argument),
    in a constant assigned once in the file (`LR = 0.5` ... `lr=LR`), in the default of a
    function parameter that the optimizer receives (`def fit(self, opt="LBFGS", lr=1.0)`
    building Adam when `opt="Adam"`), or in the default of an argparse `--lr` option read as
    `args.lr`.

    ## Why is this bad?
    Gradient descent moves `w ← w − lr·∂L/∂w`. Along a direction of curvature `h` the
    distance to the minimum is multiplied by `(1 − lr·h)` each step, so with `lr > 2/h`
    every step overshoots the minimum by more than it was away and the iterates diverge.
    On `L = x⁴` at x = 10 (gradient 4000) one step with lr = 0.1 lands at x = −390 and the
    loss explodes. Adam-style optimizers normalise the gradient, so their lr is roughly the
    per-weight step itself: 0.1 moves every weight by about its own size at every step.
    Typical values: SGD with momentum 0.01–0.1, Adam/AdamW 1e-4–1e-3.

    ## Known limitations
    The limits are options (`sgd`, `adam`, `rmsprop`, `adagrad`, `adadelta`). Not checked:
    LBFGS (line search, default lr=1), LARS/LAMB/Lion/Adafactor and other optimizers
    outside the table; a list of named tensors (`Adam([image], lr=5)` in style transfer,
    adversarial or latent search, where the input has its own scale); per-group
    `{"params": ..., "lr": ...}` values; computed rates (`0.1 * batch_size / 256`). SGD is
    left alone when the file clips gradients (clipped SGD at lr 1–30 is the AWD-LSTM /
    Zaremba language-model recipe: the clip bounds each update), and every optimizer when
    the file uses `OneCycleLR` or `CyclicLR`, which overwrite lr with their own values,
    `LambdaLR` or `MultiplicativeLR`, whose factor turns lr into a scale (the Transformer's
    Noam schedule builds Adam with lr=1), or writes `group["lr"] = ...` by hand (warmup);
    their `max_lr` is not checked either (the super-convergence recipe peaks at SGD lr
    1–3 for a short while, starting from max_lr/25).
    """

    CODE = "GL115"
    SEVERITY = Severity.WARNING
    PREVIEW = True  # below 9 in 10 right on labelled real code (benchmarks/quality)
    MESSAGE = (
        "`{optimizer}` gets lr={lr}{source}, far above what {family} can take (flagged from "
        "{limit}): a step larger than 2/curvature overshoots and diverges (on L = x⁴ at "
        "x = 10, lr = 0.1 lands at x = −390); typical is {typical}"
    )
    HINT = (
        "Use a typical learning rate (SGD with momentum 0.01–0.1, Adam/AdamW 1e-4–1e-3), "
        "add warmup, or pick it with a short LR range test"
    )
    OPTIONS = {family: limit.limit for family, limit in LR_LIMITS.items()}

    VALID = [
        Valid("""
            import torch
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        """),
        # Adadelta is designed around lr=1.0 (pytorch/examples mnist)
        Valid("""
            import torch.optim as optim
            from torch.optim.lr_scheduler import StepLR
            optimizer = optim.Adadelta(model.parameters(), lr=1.0)
            scheduler = StepLR(optimizer, step_size=1, gamma=0.7)
        """),
        # LBFGS: line search, lr=1 is its default
        Valid("""
            from torch.optim import LBFGS
            optimizer = LBFGS([x], lr=1, max_iter=20, line_search_fn="strong_wolfe")
        """),
        # ImageNet-style SGD: 0.1 with momentum, scaled by batch size (not a literal)
        Valid("""
            import torch
            lr = 0.1 * args.batch_size / 256
            optimizer = torch.optim.SGD(model.parameters(), lr, momentum=0.9, weight_decay=1e-4)
        """),
        # clipped SGD at lr 20 for an LSTM language model (AWD-LSTM / pytorch examples)
        Valid("""
            import torch
            from torch import nn
            model = nn.LSTM(400, 1150)
            optimizer = torch.optim.SGD(model.parameters(), lr=20)
            for x, y in loader:
                optimizer.zero_grad()
                criterion(model(x)[0], y).backward()
                nn.utils.clip_grad_norm_(model.parameters(), 0.25)
                optimizer.step()
        """),
        # OneCycleLR sets the lr itself; max_lr is a peak reached after warmup
        Valid("""
            import torch
            from torch.optim.lr_scheduler import OneCycleLR
            optimizer = torch.optim.SGD(model.parameters(), lr=1.0, momentum=0.9)
            scheduler = OneCycleLR(optimizer, max_lr=1.0, total_steps=10000)
        """),
        # timm: LAMB/LARS tolerate large rates (trust ratio)
        Valid("""
            from timm.optim import create_optimizer_v2
            optimizer = create_optimizer_v2(model, "lamb", lr=5e-3 * 8, weight_decay=0.02)
            optimizer = create_optimizer_v2(model, opt="lars", lr=2.0)
        """),
        # a constant assigned twice is unknown; a per-group lr is not read
        Valid("""
            from torch.optim import AdamW
            LR = 0.5
            if finetune:
                LR = 1e-5
            optimizer = AdamW(model.parameters(), lr=LR)
            optimizer = AdamW([{"params": head.parameters(), "lr": 0.5}], lr=1e-4)
        """),
        # style transfer: optimizing the pixels of an image, not weights
        Valid("""
            import torch
            image = content.clone().requires_grad_(True)
            optimizer = torch.optim.Adam([image], lr=5.0)
        """),
        # not torch's optimizer
        Valid("""
            from mylib.optim import SGD
            optimizer = SGD(model.parameters(), lr=5.0)
        """),
        # Noam schedule: LambdaLR multiplies lr=1 by d_model**-0.5 * min(...)
        Valid("""
            import torch
            from torch.optim.lr_scheduler import LambdaLR
            def noam(step, d_model=512, warmup=4000):
                step = max(step, 1)
                return d_model ** -0.5 * min(step ** -0.5, step * warmup ** -1.5)
            optimizer = torch.optim.Adam(model.parameters(), lr=1.0, betas=(0.9, 0.98))
            scheduler = LambdaLR(optimizer, lr_lambda=noam)
        """),
        # warmup written into the param groups by hand at every step
        Valid("""
            import torch
            optimizer = torch.optim.Adam(model.parameters(), lr=1)
            for step, batch in enumerate(loader):
                for group in optimizer.param_groups:
                    group["lr"] = 512 ** -0.5 * min((step + 1) ** -0.5, (step + 1) * 4000 ** -1.5)
                train_step(batch)
        """),
        # argparse default below the limit; Adagrad at 0.5
        Valid("""
            import argparse
            import torch
            parser = argparse.ArgumentParser()
            parser.add_argument("--lr", type=float, default=0.01)
            args = parser.parse_args()
            optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
            sparse = torch.optim.Adagrad(embedding.parameters(), lr=0.5)
        """),
    ]
    # a parameter default that suits the optimizer, and one the file sets twice
    VALID.append(
        Valid("""
            import torch
            def train(model, lr=1e-3, epochs=10):
                return torch.optim.Adam(model.parameters(), lr=lr)
            def probe(model, lr=0.5):
                return torch.optim.SGD(model.parameters(), lr=lr * 0.01)
            def tune(model, rate=0.5):
                rate = rate / 100
                return torch.optim.Adam(model.parameters(), lr=rate)
        """)
    )

    INVALID = [
        Invalid(
            """
            import torch
            optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
        """,
            line=2,
            message="lr=0.1",
        ),
        # second positional argument, `from torch.optim import SGD`
        Invalid(
            """
            from torch.optim import SGD
            optimizer = SGD(net.parameters(), 1.0, momentum=0.9)
        """,
            line=2,
            message="SGD",
        ),
        # a module constant
        Invalid(
            """
            import torch.optim as optim
            LEARNING_RATE = 0.5
            opt = optim.RMSprop(policy.parameters(), lr=LEARNING_RATE)
        """,
            line=3,
            message="from `LEARNING_RATE`",
        ),
        # argparse default read through args.lr
        Invalid(
            """
            import argparse
            from torch import optim
            def main():
                parser = argparse.ArgumentParser()
                parser.add_argument("--lr", type=float, default=1.0, help="learning rate")
                args = parser.parse_args()
                optimizer = optim.AdamW(model.parameters(), lr=args.lr)
        """,
            line=7,
            message="--lr",
        ),
        # timm factory, integer literal
        Invalid(
            """
            from timm.optim import create_optimizer_v2
            optimizer = create_optimizer_v2(model, "sgd", lr=2, momentum=0.9)
        """,
            line=2,
        ),
        # one fit() for two optimizers: the default suits LBFGS's line search, not Adam
        Invalid(
            """
            import torch
            from torch import nn
            class Spline(nn.Module):
                def fit(self, data, opt="LBFGS", steps=50, lr=1.0):
                    if opt == "Adam":
                        optimizer = torch.optim.Adam(self.parameters(), lr=lr)
                    else:
                        optimizer = torch.optim.LBFGS(self.parameters(), lr=lr)
                    return optimizer
        """,
            line=6,
            message="the default of the parameter `lr`",
        ),
    ]

    def visit_Module(self, node: cst.Module) -> None:
        self.optimizers: list[tuple[cst.Call, str, str, cst.BaseExpression]] = []
        self.constants: dict[str, list[cst.BaseExpression]] = {}
        # argparse dest -> (flag, default) of each `add_argument("--lr", default=...)`
        self.defaults: dict[str, list[tuple[str, cst.BaseExpression | None]]] = {}
        self.parsed: set[str] = set()  # names assigned from parse_args()
        self.absolute_schedule = False
        self.param_defaults: set[str] = set()  # names that are parameters with a default

    def visit_Call(self, node: cst.Call) -> None:
        name = self.index.call_name(node)
        if name in ABSOLUTE_LR_SCHEDULERS or name in SCALING_LR_SCHEDULERS:
            self.absolute_schedule = True
        keywords = {a.keyword.value: a.value for a in node.args if a.keyword is not None}
        positional = [a.value for a in node.args if a.keyword is None and a.star == ""]
        if name in tables.OPTIMIZER_FACTORIES:
            opt = keywords.get("opt", positional[1] if len(positional) > 1 else None)
            if isinstance(opt, cst.SimpleString) and "lr" in keywords:
                family = FACTORY_FAMILIES.get(str(opt.evaluated_value).lower())
                if family is not None:
                    self.optimizers.append((node, str(opt.evaluated_value), family, keywords["lr"]))
            return
        family = optimizer_family(name)
        lr = keywords.get("lr", positional[1] if len(positional) > 1 else None)
        params = keywords.get("params", positional[0] if positional else None)
        if (
            family is not None
            and name is not None
            and lr is not None
            and not _is_tensor_list(
                params  # `Adam([image], lr=10)`: optimizes an input tensor on its own scale
            )
        ):
            self.optimizers.append((node, name.rsplit(".", 1)[-1], family, lr))
        if isinstance(node.func, cst.Attribute) and node.func.attr.value == "add_argument":
            flags = {str(a.evaluated_value) for a in positional if isinstance(a, cst.SimpleString)}
            dest = keywords.get("dest")
            for flag in flags & LR_FLAGS:
                key = dest.evaluated_value if isinstance(dest, cst.SimpleString) else None
                key = str(key or flag.lstrip("-").replace("-", "_"))
                self.defaults.setdefault(key, []).append((flag, keywords.get("default")))

    def visit_Assign(self, node: cst.Assign) -> None:
        for target in node.targets:
            if isinstance(target.target, cst.Name):
                self.constants.setdefault(target.target.value, []).append(node.value)
                if _calls(node.value, "parse_args"):
                    self.parsed.add(target.target.value)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if isinstance(node.target, cst.Name) and node.value is not None:
            self.constants.setdefault(node.target.value, []).append(node.value)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        if isinstance(node.target, cst.Name):  # `lr *= 0.1`: no longer one value
            self.constants.setdefault(node.target.value, []).append(node.value)

    def visit_Param(self, node: cst.Param) -> None:
        # `def fit(self, opt="LBFGS", lr=1.0)`: the default is the rate whenever the caller
        # leaves it out, so it counts like a constant (when the name has no other value)
        default = node.default if node.default is not None else cst.Name("parameter")
        self.constants.setdefault(node.name.value, []).append(default)
        if node.default is not None:
            self.param_defaults.add(node.name.value)

    def leave_Module(self, original_node: cst.Module) -> None:
        if self.absolute_schedule:
            return  # OneCycleLR / CyclicLR replace the optimizer's lr; LambdaLR scales it
        if MANUAL_LR.search(self.index.source or ""):
            return  # the rate is written into the param groups by hand (warmup, Noam)
        clipped: bool | None = None
        for call, optimizer, family, expr in self.optimizers:
            found = self._literal(expr)
            if found is None:
                continue  # computed, or a name with several values
            value, source = found
            if value < self.options[family]:
                continue  # within what the family tolerates
            if family == "sgd":
                if clipped is None:
                    clipped = _file_clips(self)
                if clipped:
                    continue  # clipped SGD: each update is bounded by lr·max_norm
            shown = _number(value) if source else self.context.module.code_for_node(expr)
            self.report(
                call,
                optimizer=optimizer,
                lr=shown,
                source=source,
                limit=_number(self.options[family]),
                family="Adam-style optimizers" if family == "adam" else optimizer,
                typical=LR_LIMITS[family].typical,
            )

    def _literal(self, expr: cst.BaseExpression) -> tuple[float, str] | None:
        """The learning rate's value and where it comes from ("" when written in the call)."""
        value = numeric_literal(expr)
        if value is not None:
            return value, ""
        if isinstance(expr, cst.Name):
            values = self.constants.get(expr.value, [])
            value = numeric_literal(values[0]) if len(values) == 1 else None
            if expr.value in self.param_defaults:
                where = f" (the default of the parameter `{expr.value}`)"
            else:
                where = f" (from `{expr.value}`)"
            return (value, where) if value is not None else None
        key = dotted_name(expr)
        if key is None or key.count(".") != 1:
            return None  # `cfg.optim.lr`, `get_lr()`: not an argparse option
        base, dest = key.split(".")
        defaults = self.defaults.get(dest, [])
        if base not in self.parsed or len(defaults) != 1:
            return None  # not from parse_args here, or the option is unknown or repeated
        flag, default = defaults[0]
        value = numeric_literal(default)
        return (value, f" (the {flag} default)") if value is not None else None


def _is_tensor_list(params: cst.BaseExpression | None) -> bool:
    """`[x]`, `[self.image, noise]`: named tensors rather than a model's parameters."""
    return (
        isinstance(params, (cst.List, cst.Tuple))
        and all(dotted_name(e.value) is not None for e in params.elements)
        and bool(params.elements)
    )


def _calls(expr: cst.BaseExpression, method: str) -> bool:
    """`parser.parse_args()` or a local `parse_args()` wrapper."""
    if not isinstance(expr, cst.Call):
        return False
    func = expr.func
    if isinstance(func, cst.Attribute):
        return func.attr.value == method
    return isinstance(func, cst.Name) and func.value == method


def _file_clips(rule: Rule) -> bool:
    facts = training_facts(rule.index)
    events = (e for es in facts.walk.events.values() for e in es)
    return facts.clipping_elsewhere or any(e.kind == "clip" for e in events)


def _number(value: float) -> str:
    return f"{value:g}"
