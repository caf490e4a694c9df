"""A stack of 20 Linear+Sigmoid layers: the textbook vanishing-gradient model."""

import torch
from torch import nn


class DeepSigmoidMLP(nn.Module):
    def __init__(self, width: int = 64, inputs: int = 32, classes: int = 10):
        super().__init__()
        layers = [nn.Linear(inputs, width), nn.Sigmoid()]
        for _ in range(18):
            layers += [nn.Linear(width, width), nn.Sigmoid()]
        layers.append(nn.Linear(width, classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
