from __future__ import annotations

import libcst as cst

from gradlint import Invalid, Rule, Severity, Valid
from gradlint.findings import Fix
from gradlint.semantics import tables
from gradlint.semantics.nodes import findall


class FunctionalDropoutInEval(Rule):
    """
    ## What it does
    Flags `F.dropout(x, p)` (and `dropout1d/2d/3d`, `alpha_dropout`,
    `feature_alpha_dropout`) inside a method of an `nn.Module` subclass when it is not told
    whether the module is training: no `training=` argument, no third positional argument.

    ## Why is this bad?
    `model.eval()` only flips `self.training` on every submodule; a functional dropout never
    reads it. `F.dropout` defaults to `training=True`, so it keeps zeroing activations at
    validation and inference: accuracy looks worse than it is and predictions are random from
    run to run. The alpha dropouts default to `training=False`, so the opposite happens: they
    never drop at all, not even while training. `nn.Dropout` modules, or passing
    `training=self.training`, follow the mode.

    ## Fix
    `--fix` adds `training=self.training` to the call.

    ## Known limitations
    Only `forward` of `nn.Module` subclasses defined in the file, and the methods it calls on
    `self`, are checked (a plain helper function has no `self.training` to pass, and a sampling
    method may drop on purpose at inference). A call that passes `training` in any way,
    `**kwargs` included, is trusted, so deliberate Monte-Carlo dropout (`training=True`) is
    left alone.
    """

    CODE = "GL122"
    NEEDS = ("dropout",)
    SEVERITY = Severity.WARNING
    MESSAGE = "`{name}` ignores `model.eval()`; {consequence}"
    HINT = "Pass training=self.training, or use an nn.Dropout module built in __init__"

    VALID = [
        Valid("""
            import torch.nn.functional as F
            from torch import nn
            class Classifier(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc1 = nn.Linear(784, 256)
                    self.fc2 = nn.Linear(256, 10)
                def forward(self, x):
                    x = F.relu(self.fc1(x))
                    x = F.dropout(x, 0.5, training=self.training)
                    return self.fc2(x)
        """),
        # passed positionally; Monte-Carlo dropout on purpose; a module built in __init__
        Valid("""
            from torch import nn
            from torch.nn import functional as F
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.drop = nn.Dropout2d(0.25)
                def forward(self, x, mc=False):
                    x = self.drop(x)
                    x = F.dropout(x, 0.2, self.training)
                    return F.dropout(x, p=0.1, training=True) if mc else x
        """),
        # the mode is checked right above (kuangliu's EfficientNet)
        Valid("""
            import torch.nn.functional as F
            from torch import nn
            class EfficientNet(nn.Module):
                def forward(self, x):
                    out = self.pool(self.layers(x)).flatten(1)
                    if self.training and self.dropout_rate > 0:
                        out = F.dropout(out, p=self.dropout_rate)
                    return self.linear(out)
        """),
        Valid("""
            import torch.nn.functional as F
            from torch import nn
            class Head(nn.Module):
                def forward(self, x):
                    return self.fc(F.dropout(x, 0.3) if self.training else x)
        """),
        # `training` forwarded through **kwargs
        Valid("""
            import torch.nn.functional as F
            from torch import nn
            class Block(nn.Module):
                def forward(self, x, **drop_args):
                    return F.dropout(self.fc(x), **drop_args)
        """),
        # a staticmethod has no `self.training`
        Valid("""
            import torch.nn.functional as F
            from torch import nn
            class Block(nn.Module):
                @staticmethod
                def drop(x, p, training):
                    return F.dropout(x, p, training)
        """),
        # a diffusion sampler drops its noise on purpose, outside forward
        Valid("""
            import torch
            class Diffusion(torch.nn.Module):
                def forward(self, x, t):
                    return self.denoiser(x, t)
                @torch.no_grad()
                def sample_step(self, x, t, noise_dropout=0.0):
                    noise = torch.randn_like(x)
                    if noise_dropout > 0:
                        noise = torch.nn.functional.dropout(noise, p=noise_dropout)
                    return self(x, t) + noise
        """),
        # a plain function, not a module method: the caller decides
        Valid("""
            import torch.nn.functional as F
            def augment(x, p):
                return F.dropout(x, p)
        """),
    ]
    INVALID = [
        Invalid(
            """
            import torch.nn.functional as F
            from torch import nn
            class Classifier(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc1 = nn.Linear(784, 256)
                    self.fc2 = nn.Linear(256, 10)
                def forward(self, x):
                    x = F.relu(self.fc1(x))
                    x = F.dropout(x, 0.5)
                    return self.fc2(x)
        """,
            line=10,
            message="stays on at evaluation",
            fixed="""
            import torch.nn.functional as F
            from torch import nn
            class Classifier(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc1 = nn.Linear(784, 256)
                    self.fc2 = nn.Linear(256, 10)
                def forward(self, x):
                    x = F.relu(self.fc1(x))
                    x = F.dropout(x, 0.5, training=self.training)
                    return self.fc2(x)
        """,
        ),
        Invalid(
            """
            import torch
            class Attention(torch.nn.Module):
                def forward(self, s, v):
                    return self.attend(s, v)
                def attend(self, s, v):
                    weights = torch.nn.functional.dropout2d(s, p=self.p)
                    return weights @ v
        """,
            line=6,
            fixed="""
            import torch
            class Attention(torch.nn.Module):
                def forward(self, s, v):
                    return self.attend(s, v)
                def attend(self, s, v):
                    weights = torch.nn.functional.dropout2d(s, p=self.p, training=self.training)
                    return weights @ v
        """,
        ),
        Invalid(
            """
            from torch import nn
            from torch.nn.functional import alpha_dropout, selu
            class SelfNormalizing(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(64, 64)
                def forward(self, x):
                    return alpha_dropout(selu(self.fc(x)), 0.1)
        """,
            line=8,
            message="never drops, not even in training",
        ),
        # an attention block's helper method (flash-attention's reference benchmark style)
        Invalid(
            """
            import math
            import torch
            from torch.nn import functional
            class SelfAttention(torch.nn.Module):
                def forward(self, q, k, v):
                    return self.scores(q, k) @ v
                def scores(self, q, k):
                    attn = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
                    return functional.dropout(attn, self.dropout_p)
        """,
            line=9,
        ),
    ]

    def visit_Module(self, node: cst.Module) -> None:
        for info in self.index.module_classes.values():
            for method in _forward_and_helpers(info.methods):
                params = method.params.params
                if not params or params[0].name.value != "self":
                    continue  # a staticmethod: no `self.training` to pass
                guarded = _guarded_by_training(method)
                for call in findall(method.body, cst.Call):
                    if call not in guarded:
                        self._check(cst.ensure_type(call, cst.Call))

    def _check(self, call: cst.Call) -> None:
        name = self.index.call_name(call)
        if name not in tables.FUNCTIONAL_DROPOUT:
            return  # not a functional dropout
        if any(a.star for a in call.args):
            return  # `*args` / `**kwargs` may carry `training`
        if any(a.keyword is not None and a.keyword.value == "training" for a in call.args):
            return  # told the mode
        if len([a for a in call.args if a.keyword is None]) >= 3:
            return  # `F.dropout(x, p, self.training)`
        consequence = (
            "it stays on at evaluation and keeps zeroing activations"
            if tables.FUNCTIONAL_DROPOUT[name]
            else "it never drops, not even in training"
        )
        short = name.rsplit(".", 1)[-1]
        arg = cst.Arg(
            keyword=cst.Name("training"),
            value=cst.parse_expression("self.training"),
            equal=cst.AssignEqual(
                whitespace_before=cst.SimpleWhitespace(""),
                whitespace_after=cst.SimpleWhitespace(""),
            ),
        )
        args = list(call.args)
        if args:
            args[-1] = args[-1].with_changes(
                comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
            )
        fixed = call.with_changes(args=[*args, arg])
        fix = Fix("pass training=self.training", (self.replace(call, self._code(fixed)),))
        self.report(call, name=short, consequence=consequence, fix=fix)

    def _code(self, node: cst.CSTNode) -> str:
        return self.context.module.code_for_node(node)


def _guarded_by_training(method: cst.FunctionDef) -> set[cst.CSTNode]:
    """Calls under `if self.training:` (or `... if self.training else ...`): the mode is
    already checked, so dropping there is right."""
    guarded: set[cst.CSTNode] = set()
    for node in findall(method.body, (cst.If, cst.IfExp)):
        if isinstance(node, (cst.If, cst.IfExp)) and _mentions_training(node.test):
            guarded.update(findall(node.body, cst.Call))
    return guarded


def _mentions_training(test: cst.BaseExpression) -> bool:
    return any(
        isinstance(n, cst.Attribute) and n.attr.value == "training"
        for n in findall(test, cst.Attribute)
    ) or any(isinstance(n, cst.Name) and n.value == "training" for n in findall(test, cst.Name))


def _forward_and_helpers(methods: dict[str, cst.FunctionDef]) -> list[cst.FunctionDef]:
    """`forward` and the methods it calls as `self.<name>(...)`: what runs under `model(x)`.
    Sampling or augmentation methods may drop on purpose at inference."""
    forward = methods.get("forward")
    if forward is None:
        return []
    called = {
        call.func.attr.value
        for call in findall(forward.body, cst.Call)
        if isinstance(call, cst.Call)
        and isinstance(call.func, cst.Attribute)
        and isinstance(call.func.value, cst.Name)
        and call.func.value.value == "self"
    }
    return [forward] + [m for name, m in methods.items() if name in called and name != "forward"]
