"""A transformer fine-tuning loop that clips the gradients after the update is applied."""

import torch
from torch import nn

model = nn.TransformerEncoder(nn.TransformerEncoderLayer(64, 4, batch_first=True), 2)
head = nn.Linear(64, 2)
optimizer = torch.optim.AdamW([*model.parameters(), *head.parameters()], lr=3e-4)
loss_fn = nn.CrossEntropyLoss()


def train(loader, epochs: int = 3) -> None:
    for _ in range(epochs):
        for tokens, labels in loader:
            optimizer.zero_grad()
            loss = loss_fn(head(model(tokens).mean(dim=1)), labels)
            loss.backward()
            optimizer.step()
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
