"""A vanilla RNN over long sequences, trained without gradient clipping."""

import torch
from torch import nn


class LongSequenceRNN(nn.Module):
    def __init__(self, inputs: int = 8, hidden: int = 32):
        super().__init__()
        self.rnn = nn.RNN(inputs, hidden, batch_first=True)
        with torch.no_grad():
            self.rnn.weight_hh_l0.mul_(3.0)  # recurrent weights scaled up
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def train(loader) -> None:
    model = LongSequenceRNN()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    for x, y in loader:
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
