"""Fine-tuning a pretrained CNN whose new head is never trained: the optimizer came first."""

import torch
from torch import nn
from torchvision import models

model = models.resnet18(weights="IMAGENET1K_V1")
optimizer = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
model.fc = nn.Linear(model.fc.in_features, 5)
criterion = nn.CrossEntropyLoss()


def finetune(loader, epochs: int = 3) -> None:
    model.train()
    for _ in range(epochs):
        for images, labels in loader:
            optimizer.zero_grad()
            loss = criterion(model(images), labels)
            loss.backward()
            optimizer.step()
