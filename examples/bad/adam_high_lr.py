"""Fine-tuning with Adam at a learning rate meant for SGD."""

import torch
from torch import nn

model = nn.Sequential(nn.Linear(768, 256), nn.GELU(), nn.Linear(256, 2))
optimizer = torch.optim.Adam(model.parameters(), lr=0.5)
