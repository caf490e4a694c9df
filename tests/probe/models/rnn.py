"""Recurrent models over long sequences: a vanilla RNN with enlarged recurrent weights, and
an LSTM trained with gradient clipping."""

import torch
from torch import nn


class VanillaRNN(nn.Module):
    def __init__(self, inputs: int = 8, hidden: int = 32, scale: float = 3.0,
                 nonlinearity: str = "tanh"):
        super().__init__()
        self.rnn = nn.RNN(inputs, hidden, batch_first=True, nonlinearity=nonlinearity)
        with torch.no_grad():
            self.rnn.weight_hh_l0.mul_(scale)  # spectral radius well above 1
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


class ClippedLSTM(nn.Module):
    def __init__(self, inputs: int = 8, hidden: int = 32):
        super().__init__()
        self.lstm = nn.LSTM(inputs, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


def train_step(model: ClippedLSTM, optimizer: torch.optim.Optimizer, x: torch.Tensor,
               y: torch.Tensor) -> None:
    optimizer.zero_grad()
    loss = nn.functional.mse_loss(model(x), y)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
    optimizer.step()
