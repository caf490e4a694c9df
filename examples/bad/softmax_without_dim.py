"""An attention-pooling head whose softmax leaves the dimension to be guessed."""

import torch
from torch import nn


class AttentionPool(nn.Module):
    def __init__(self, dim: int = 128) -> None:
        super().__init__()
        self.score = nn.Linear(dim, 1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        weights = torch.nn.functional.softmax(self.score(tokens))
        return (weights * tokens).sum(dim=1)
