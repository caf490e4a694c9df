from __future__ import annotations

import libcst as cst

from gradlint import Invalid, Rule, Severity, Valid
from gradlint.semantics import custom_backward, syntax


class UncheckedCustomBackward(Rule):
    """
    ## What it does
    Flags a `torch.autograd.Function` subclass with a hand-written `backward` when no
    `torch.autograd.gradcheck` / `gradgradcheck` call in the same file exercises it.

    ## Why is this bad?
    Autograd trusts a custom `backward` blindly. A wrong sign, a missing factor or a
    transposed product gives gradients that look plausible but point the wrong way: the
    model trains worse or not at all, and nothing raises. `torch.autograd.gradcheck`
    compares the analytic Jacobian with central differences `(f(x+ε) - f(x-ε)) / 2ε` in
    double precision and fails loudly when they disagree.

    A backward with nothing hand-derived to check is not flagged: one that passes the
    gradient through (straight-through), scales or reverses it (`-grad_output`,
    `grad_output.neg() * ctx.alpha`, `grad_output * ctx.scale`), runs a `torch.distributed`
    collective (`all_reduce`, `all_gather`, `reduce_scatter`, which a single-process gradcheck
    cannot run), or raises instead of returning. Test files are not flagged either.

    ## Known limitations
    Only the linted file is searched for a gradcheck call; a test elsewhere in the project
    is not seen, hence the INFO severity.
    """

    CODE = "GL117"
    NEEDS = ("backward",)  # a hand-written `backward` staticmethod
    SEVERITY = Severity.INFO
    PREVIEW = True  # below 9 in 10 right on labelled real code (benchmarks/quality)
    MESSAGE = (
        "`{name}` defines its own backward, but no gradcheck in this file compares it with "
        "numerical gradients; run `gradlint gradcheck {path}:{name} --input-shape ...`"
    )
    HINT = (
        "Call torch.autograd.gradcheck({name}.apply, inputs) on double-precision inputs "
        "with requires_grad=True"
    )

    VALID = [
        Valid("""
            import torch
            class Square(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x):
                    ctx.save_for_backward(x)
                    return x * x
                @staticmethod
                def backward(ctx, grad_output):
                    (x,) = ctx.saved_tensors
                    return 2 * x * grad_output
            x = torch.randn(4, dtype=torch.double, requires_grad=True)
            assert torch.autograd.gradcheck(Square.apply, (x,))
        """),
        # checked through a lambda and a wrapper function, with gradgradcheck
        Valid("""
            import torch
            from torch.autograd import Function, gradcheck, gradgradcheck
            class Scale(Function):
                @staticmethod
                def forward(ctx, x, s):
                    ctx.s = s
                    return x * s
                @staticmethod
                def backward(ctx, g):
                    return g * ctx.s, None
            class Cube(Function):
                @staticmethod
                def forward(ctx, x):
                    ctx.save_for_backward(x)
                    return x ** 3
                @staticmethod
                def backward(ctx, g):
                    (x,) = ctx.saved_tensors
                    return 3 * x ** 2 * g
            def cube(x):
                return Cube.apply(x)
            def test():
                x = torch.randn(3, dtype=torch.float64, requires_grad=True)
                gradcheck(lambda t: Scale.apply(t, 2.0), (x,))
                gradgradcheck(cube, (x,))
        """),
        # straight-through and not-implemented backwards have nothing to check
        Valid("""
            import torch
            class RoundSTE(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x):
                    return x.round()
                @staticmethod
                def backward(ctx, grad_output):
                    return grad_output.clone()
            class WeightQuant(torch.autograd.Function):
                @staticmethod
                def forward(ctx, w):
                    return w.sign()
                @staticmethod
                def backward(ctx, grad_output):
                    grad_input = grad_output.clone()
                    return grad_input
            class NoGrad(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x):
                    return x.sign()
                @staticmethod
                def backward(ctx, grad_output):
                    raise NotImplementedError("sign has no gradient")
        """),
        # no hand-written backward: autograd derives it
        Valid("""
            from torch.autograd.function import Function
            class Identity(Function):
                @staticmethod
                def forward(ctx, x):
                    return x.view_as(x)
        """),
        # a class named Function that is not torch's
        Valid("""
            from sympy import Function
            class MyFunc(Function):
                @staticmethod
                def backward(ctx, g):
                    return g * 2
        """),
        # checked through a module-level alias
        Valid("""
            import torch
            class Swish(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x):
                    ctx.save_for_backward(x)
                    return x * torch.sigmoid(x)
                @staticmethod
                def backward(ctx, g):
                    (x,) = ctx.saved_tensors
                    s = torch.sigmoid(x)
                    return g * (s * (1 + x * (1 - s)))
            swish = Swish.apply
            if __name__ == "__main__":
                x = torch.randn(5, dtype=torch.double, requires_grad=True)
                torch.autograd.gradcheck(swish, (x,))
        """),
        # gradient reversal and gradient scaling: the incoming gradient times a constant
        Valid("""
            from torch.autograd import Function
            class ReverseGrad(Function):
                @staticmethod
                def forward(ctx, x, lambd):
                    ctx.lambd = lambd
                    return x.view_as(x)
                @staticmethod
                def backward(ctx, grad_output):
                    return grad_output.neg() * ctx.lambd, None
            class Flip(Function):
                @staticmethod
                def forward(ctx, x):
                    return x.clone()
                @staticmethod
                def backward(ctx, g):
                    flipped = g.neg()
                    return flipped
            class ScaleGrad(Function):
                @staticmethod
                def forward(ctx, x, scale):
                    ctx.scale = scale
                    return x
                @staticmethod
                def backward(ctx, grad_output):
                    return grad_output * ctx.scale, None
        """),
        # tensor-parallel copies: the backward is a collective a gradcheck cannot run
        Valid("""
            import torch
            import torch.distributed as dist
            class CopyToParallel(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x):
                    return x
                @staticmethod
                def backward(ctx, grad_output):
                    grad_output = grad_output.contiguous()
                    dist.all_reduce(grad_output, group=get_group())
                    return grad_output
        """),
        # a backward that refuses to run
        Valid("""
            import torch
            class Quantize(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x):
                    return torch.round(x * 127) / 127
                @staticmethod
                def backward(ctx, grad_output):
                    raise RuntimeError("Quantize is for inference only")
        """),
    ]
    INVALID = [
        Invalid(
            """
            import torch
            class Square(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x):
                    ctx.save_for_backward(x)
                    return x * x
                @staticmethod
                def backward(ctx, grad_output):
                    (x,) = ctx.saved_tensors
                    return 2 * x * grad_output
        """,
            line=2,
            message="gradlint gradcheck snippet.py:Square",
        ),
        # a gradient handed in from outside and returned without the incoming gradient
        Invalid(
            """
            import torch
            class InjectGradient(torch.autograd.Function):
                @staticmethod
                def forward(ctx, latents, target_grad):
                    ctx.save_for_backward(target_grad)
                    return torch.zeros(1, device=latents.device)
                @staticmethod
                def backward(ctx, grad):
                    (target_grad,) = ctx.saved_tensors
                    return target_grad / len(target_grad), None
        """,
            line=2,
        ),
        # the gradient name starts as None and is then filled by a hand-derived adjoint
        Invalid(
            """
            import torch
            class Wavelet(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x, filters):
                    ctx.save_for_backward(filters)
                    return analysis(x, filters)
                @staticmethod
                def backward(ctx, dy):
                    dx = None
                    if ctx.needs_input_grad[0]:
                        (filters,) = ctx.saved_tensors
                        dx = synthesis(dy, filters)
                    return dx, None
        """,
            line=2,
        ),
        # a custom loss backward that never multiplies by grad_output
        Invalid(
            """
            from torch.autograd import Function
            class CenterPull(Function):
                @staticmethod
                def forward(ctx, feats, labels, centers):
                    ctx.save_for_backward(feats, labels, centers)
                    return (feats - centers[labels]).pow(2).sum() / 2
                @staticmethod
                def backward(ctx, grad_output):
                    feats, labels, centers = ctx.saved_tensors
                    diff = centers[labels] - feats
                    return -grad_output * diff, None, diff
        """,
            line=2,
        ),
        # gradcheck of another function does not cover this one
        Invalid(
            """
            import torch
            import torch.autograd as autograd
            class Clamp(autograd.Function):
                @staticmethod
                def forward(ctx, x):
                    ctx.save_for_backward(x)
                    return x.clamp(0, 1)
                @staticmethod
                def backward(ctx, g):
                    (x,) = ctx.saved_tensors
                    return g * ((x > 0) & (x < 1))
            x = torch.randn(3, dtype=torch.double, requires_grad=True)
            autograd.gradcheck(torch.sigmoid, (x,))
        """,
            line=3,
        ),
        Invalid(
            """
            from torch.autograd.function import Function
            class Base(Function):
                pass
            class LogSumExp(Base):
                @staticmethod
                def forward(ctx, x):
                    out = x.exp().sum().log()
                    ctx.save_for_backward(x, out)
                    return out
                @staticmethod
                def backward(ctx, g):
                    x, out = ctx.saved_tensors
                    return g * (x - out).exp()
        """,
            line=4,
        ),
    ]

    def visit_Module(self, node: cst.Module) -> None:
        self._checked: set[str] = set()
        self._aliases: dict[str, set[str]] = {}
        # "backward" in a docstring is common; a Function subclass to check is not
        self._functions = custom_backward.autograd_functions(self.index)

    def visit_Call(self, node: cst.Call) -> None:
        if self._functions and custom_backward.is_gradcheck_call(self.index, node):
            for arg in node.args:
                self._checked |= syntax.mentioned_names(arg.value)

    def visit_Assign(self, node: cst.Assign) -> None:
        if not self._functions:
            return  # aliases matter only on the way from a gradcheck call to a Function
        for target in node.targets:
            if isinstance(target.target, cst.Name):
                self._aliases.setdefault(target.target.value, set()).update(
                    syntax.mentioned_names(node.value)
                )

    def leave_Module(self, original_node: cst.Module) -> None:
        if not self._functions or custom_backward.is_test_path(self.context.path):
            return  # no Function subclass; or tests, which exercise the backward their own way
        checked = self._expand(self._checked)
        for name, node in self._functions.items():
            backward = next(
                (
                    s
                    for s in node.body.body
                    if isinstance(s, cst.FunctionDef) and s.name.value == "backward"
                ),
                None,
            )
            if backward is None or custom_backward.nothing_to_check(self.index, backward):
                continue  # autograd derives it, or there is nothing hand-derived to check
            if name in checked:
                continue  # a gradcheck call reaches it
            self.report(node.name, name=name, path=self.context.path)

    def _expand(self, names: set[str]) -> set[str]:
        """Follow wrapper functions and aliases (`def cube(x): return Cube.apply(x)`)."""
        seen: set[str] = set()
        todo = list(names)
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            function = self.index.functions.get(name)
            if function is not None:
                todo.extend(syntax.mentioned_names(function.body))
            todo.extend(self._aliases.get(name, ()))
        return seen
