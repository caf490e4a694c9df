from __future__ import annotations

import libcst as cst

from gradlint import Invalid, Rule, Severity, Valid
from gradlint.findings import Fix
from gradlint.semantics import softmax_dim, tables
from gradlint.semantics.index import ModuleClass

LEGACY = (
    "PyTorch picks the axis by a legacy rule (dim 0 for 0-, 1- and 3-D input, else dim 1), "
    "which on a batch-first 3-D input normalises across the samples of the batch"
)
RAISES = "it has no default and raises TypeError"


class ImplicitSoftmaxDim(Rule):
    """
    ## What it does
    Flags `nn.Softmax()`, `nn.LogSoftmax()`, `nn.Softmin()`, `F.softmax(x)`,
    `F.log_softmax(x)` and `F.softmin(x)` called without `dim` (or with `dim=None`), and
    `torch.softmax(x)` / `x.softmax()` without the `dim` they require.

    ## Why is this bad?
    Without `dim` PyTorch guesses the axis to normalise with a deprecated rule: dim 0 for
    0-, 1- and 3-D inputs and dim 1 otherwise, and only warns. On a 2-D `(batch, classes)`
    tensor that happens to be right, but on a batch-first 3-D tensor such as
    `(batch, tokens, classes)` it normalises across the samples of the batch: each sample's
    probabilities depend on the rest of the batch, the class scores no longer sum to 1, and
    the gradient mixes samples. The same layer silently changes meaning when the input rank
    changes. `torch.softmax` and `Tensor.softmax` have no default and fail instead.

    ## Fix
    `--fix` adds `dim=-1` when the input clearly comes from a Linear layer or a matrix
    product, and `dim=1` after a convolution; otherwise the axis is left for you to choose.
    Review it: the fix sets the axis the code was most likely meant to use, which differs
    from what PyTorch silently did for 3-D inputs.
    """

    CODE = "GL113"
    SEVERITY = Severity.WARNING
    PREVIEW = True  # below 9 in 10 right on labelled real code (benchmarks/quality)
    MESSAGE = "`{name}` is called without `dim`: {consequence}; pass dim={dim} explicitly"
    HINT = "Pass dim=-1 (or the class axis) explicitly"

    VALID = [
        Valid("""
            from torch import nn
            classifier = nn.Sequential(nn.Linear(512, 128), nn.ReLU(), nn.Linear(128, 10),
                                       nn.Softmax(dim=-1))
        """),
        Valid("""
            import torch.nn.functional as F
            def predict(logits):
                return F.softmax(logits, 1), F.log_softmax(logits, dim=-1)
        """),
        # timm/HF attention: the method and torch.softmax with dim
        Valid("""
            import torch
            def attention(q, k, v, scale):
                attn = (q @ k.transpose(-2, -1)) * scale
                attn = attn.softmax(dim=-1)
                weights = torch.softmax(attn, -1, dtype=torch.float32)
                return weights @ v
        """),
        # the layer is stored with a dim and called through self
        Valid("""
            import torch.nn as nn
            class WindowAttention(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.softmax = nn.Softmax(dim=-1)
                def forward(self, attn):
                    return self.softmax(attn)
        """),
        # Softmax2d always normalises over channels; gumbel_softmax defaults to dim=-1
        Valid("""
            import torch.nn.functional as F
            from torch import nn
            seg = nn.Softmax2d()
            def sample(logits):
                return F.gumbel_softmax(logits, tau=0.5, hard=True)
        """),
        # other libraries default to the last axis
        Valid("""
            import jax
            import torch
            def probs(x):
                return jax.nn.softmax(x)
        """),
        # a local NumPy softmax helper (transformers pipelines)
        Valid("""
            import numpy as np
            import torch
            def softmax(outputs):
                maxes = np.max(outputs, axis=-1, keepdims=True)
                shifted_exp = np.exp(outputs - maxes)
                return shifted_exp / shifted_exp.sum(axis=-1, keepdims=True)
            scores = softmax(np.zeros((1, 3)))
        """),
        # NumPy spelling: `axis` is an alias of `dim` for torch.softmax and Tensor.softmax
        Valid("""
            import torch
            def attend(q, k, v):
                weights = torch.softmax(q @ k.transpose(-2, -1), axis=-1)
                return weights @ v, (q @ k.transpose(-2, -1)).log_softmax(axis=-1)
        """),
        # the dim is forwarded from the caller
        Valid("""
            import torch.nn.functional as F
            def masked_softmax(x, mask, *args, **kwargs):
                return F.softmax(x.masked_fill(~mask, -1e4), *args, **kwargs)
        """),
    ]
    INVALID = [
        Invalid(
            """
            from torch import nn
            classifier = nn.Sequential(nn.Linear(512, 128), nn.ReLU(), nn.Linear(128, 10),
                                       nn.Softmax())
        """,
            line=3,
            message="pass dim=-1",
            fixed="""
            from torch import nn
            classifier = nn.Sequential(nn.Linear(512, 128), nn.ReLU(), nn.Linear(128, 10),
                                       nn.Softmax(dim=-1))
        """,
        ),
        Invalid(
            """
            import torch.nn.functional as F
            def post_process(out_logits):
                scores = F.softmax(out_logits)[:, :, :-1]
                return scores.max(-1)
        """,
            line=3,
            message="dim 0 for 0-, 1- and 3-D input",
        ),
        Invalid(
            """
            import torch.nn as nn
            import torch.nn.functional as F
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(128, 10)
                def forward(self, x):
                    return F.log_softmax(self.fc(x))
        """,
            line=8,
            message="dim=-1",
            fixed="""
            import torch.nn as nn
            import torch.nn.functional as F
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(128, 10)
                def forward(self, x):
                    return F.log_softmax(self.fc(x), dim=-1)
        """,
        ),
        Invalid(
            """
            from torch.nn import Conv1d, LogSoftmax, Sequential
            head = Sequential(Conv1d(256, 40, kernel_size=1), LogSoftmax())
        """,
            line=2,
            message="pass dim=1",
            fixed="""
            from torch.nn import Conv1d, LogSoftmax, Sequential
            head = Sequential(Conv1d(256, 40, kernel_size=1), LogSoftmax(dim=1))
        """,
        ),
        Invalid(
            """
            import torch
            def attend(scores, values):
                return torch.softmax(scores) @ values
        """,
            line=3,
            message="raises TypeError",
        ),
        Invalid(
            """
            import torch
            def attend(q, k):
                return (q @ k.transpose(-2, -1)).softmax()
        """,
            line=3,
            message="raises TypeError",
        ),
        Invalid(
            """
            import torch
            layer = torch.nn.Softmin(dim=None)
        """,
            line=2,
        ),
    ]

    def visit_Module(self, node: cst.Module) -> None:
        self._owners: list[ModuleClass | None] = []
        self._previous: dict[cst.CSTNode, cst.CSTNode] = {}  # layer -> the one before it

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        info = self.index.module_classes.get(node.name.value)
        self._owners.append(info if info is not None and info.node is node else None)

    def leave_ClassDef(self, original_node: cst.ClassDef) -> None:
        self._owners.pop()

    def visit_Call(self, node: cst.Call) -> None:
        if self.index.call_name(node) == tables.SEQUENTIAL:
            items = [arg.value for arg in node.args if arg.keyword is None and not arg.star]
            self._previous.update(zip(items[1:], items[:-1]))
        owner = self._owners[-1] if self._owners else None
        found = softmax_dim.implicit_dim(self.index, node, owner, self._previous.get(node))
        if found is None:
            return  # not a softmax, or its dim is given
        dim = "-1 (or the class axis)" if found.intended is None else str(found.intended)
        consequence = RAISES if found.raises else LEGACY
        self.report(node, name=found.name, consequence=consequence, dim=dim, fix=self._fix(found))

    def _fix(self, found: softmax_dim.ImplicitDim) -> Fix | None:
        """Pass the intended axis explicitly; only when the axis is unambiguous."""
        if found.intended is None:
            return None  # cannot tell the class axis: the user must choose
        tight = cst.AssignEqual(
            whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace("")
        )
        value = cst.Integer(str(abs(found.intended)))
        argument = cst.Arg(
            keyword=cst.Name("dim"),
            equal=tight,
            value=value if found.intended >= 0 else cst.UnaryOperation(cst.Minus(), value),
        )
        args = list(found.call.args)
        given = [i for i, arg in enumerate(args) if arg.keyword and arg.keyword.value == "dim"]
        if given:  # `dim=None`: replace the value
            args[given[0]] = args[given[0]].with_changes(value=argument.value)
        else:
            args.append(argument)
        fixed = found.call.with_changes(args=args)
        code = self.context.module.code_for_node(fixed)
        return Fix(f"pass dim={found.intended} explicitly", (self.replace(found.call, code),))
