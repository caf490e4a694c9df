"""The pre-1.1 epoch loop: the scheduler steps before the epoch's batches are trained."""

import torch
from torch import nn

model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 4))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=10, gamma=0.1)
loss_fn = nn.CrossEntropyLoss()


def train_epoch(loader) -> None:
    model.train()
    for x, y in loader:
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()


def main(loader, epochs: int = 30) -> None:
    for _ in range(epochs):
        scheduler.step()
        train_epoch(loader)
