"""An LSTM tagger trained with gradient clipping and a cosine learning-rate schedule."""

import torch
from torch import nn
from torch.optim.lr_scheduler import CosineAnnealingLR


class Tagger(nn.Module):
    def __init__(self, vocab: int = 10000, tags: int = 17, hidden: int = 256) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)
        self.lstm = nn.LSTM(hidden, hidden, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * hidden, tags)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.embed(tokens))
        return self.head(out)


def train(loader, epochs: int = 10) -> Tagger:
    model = Tagger()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    scheduler = CosineAnnealingLR(optimizer, T_max=epochs)
    criterion = nn.CrossEntropyLoss()
    for epoch in range(epochs):
        for tokens, tags in loader:
            optimizer.zero_grad(set_to_none=True)
            loss = criterion(model(tokens).transpose(1, 2), tags)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
            optimizer.step()
        scheduler.step()
    return model
