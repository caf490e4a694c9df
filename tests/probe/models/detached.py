"""A forward that cuts one branch out of the graph with .detach()."""

import torch
from torch import nn


class DetachedBranch(nn.Module):
    def __init__(self, inputs: int = 32, hidden: int = 64, classes: int = 10):
        super().__init__()
        self.branch = nn.Linear(inputs, hidden)
        self.main = nn.Linear(inputs, hidden)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        side = self.branch(x).detach()  # the bug: branch never receives a gradient
        return self.head(torch.relu(self.main(x) + side))
