"""A character model built on the vanilla (Elman) nn.RNN."""

import torch
from torch import nn


class CharModel(nn.Module):
    def __init__(self, vocab: int = 96, hidden: int = 256) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)
        self.rnn = nn.RNN(hidden, hidden, num_layers=2, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.embed(tokens))
        return self.head(out)
