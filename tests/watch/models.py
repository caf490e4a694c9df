"""Tiny models and a plain training loop with an injectable fault, for the watch tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import gradlint
from gradlint.watcher.core import Watch


class Mlp(nn.Module):
    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.fc1 = nn.Linear(16, width)
        self.fc2 = nn.Linear(width, width)
        self.out = nn.Linear(width, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.fc1(x))
        x = torch.tanh(self.fc2(x))
        return self.out(x)


class DeepSigmoid(nn.Module):
    """Ten sigmoid layers with a small init: the gradient vanishes from the first step."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(16, 16) for _ in range(10))
        for layer in self.layers:
            nn.init.normal_(layer.weight, std=0.05)
        self.out = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = torch.sigmoid(layer(x))
        return self.out(x)


def train(
    model: nn.Module,
    steps: int,
    *,
    every: int,
    log: Any,
    fault: Callable[[int, nn.Module, torch.optim.Optimizer, torch.Tensor], None] | None = None,
    clip: float | None = None,
    lr: float = 0.05,
    **options: Any,
) -> tuple[Watch, str]:
    """A plain loop with `gradlint.watch` as its one extra line; `fault` may break a step."""
    torch.manual_seed(0)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    watch = gradlint.watch(model, optimizer, every=every, log=log, report=False, **options)
    for step in range(steps):
        x, y = torch.randn(32, 16), torch.randint(0, 4, (32,))
        if fault is not None:
            fault(step, model, optimizer, x)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        if clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
    return watch, watch.close()
