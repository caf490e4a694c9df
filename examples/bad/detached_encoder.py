"""A regressor that detaches its hidden features, so the encoder never learns."""

import torch
from torch import nn


class Regressor(nn.Module):
    def __init__(self, n_in: int = 32) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(n_in, 64), nn.ReLU())
        self.head = nn.Linear(64, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encoder(x).detach()
        return self.head(features)
