"""A character-level language model trained without gradient clipping or an LR schedule."""

import torch
from torch import nn, optim


class CharRNN(nn.Module):
    def __init__(self, vocab: int = 96, hidden: int = 512) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)
        self.rnn = nn.LSTM(hidden, hidden, num_layers=2, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.embed(tokens))
        return self.head(out)


def train(loader, epochs: int = 20) -> CharRNN:
    model = CharRNN()
    optimizer = optim.Adam(model.parameters(), lr=3e-3)
    criterion = nn.CrossEntropyLoss()
    for epoch in range(epochs):
        for inputs, targets in loader:
            optimizer.zero_grad()
            logits = model(inputs)
            loss = criterion(logits.transpose(1, 2), targets)
            loss.backward()
            optimizer.step()
    return model
