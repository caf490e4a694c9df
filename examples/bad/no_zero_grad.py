"""A training loop that never clears the gradients between steps."""

import torch
from torch import nn

model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 2))
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=10)


def train(loader) -> None:
    for features, labels in loader:
        loss = nn.functional.cross_entropy(model(features), labels)
        loss.backward()
        optimizer.step()
    scheduler.step()
