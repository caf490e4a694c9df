"""A hand-written autograd Function whose backward is never checked numerically."""

import torch


class ClampedExp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        out = torch.exp(x.clamp(max=10.0))
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> torch.Tensor:
        (out,) = ctx.saved_tensors
        return grad_output * out


def clamped_exp(x: torch.Tensor) -> torch.Tensor:
    return ClampedExp.apply(x)
