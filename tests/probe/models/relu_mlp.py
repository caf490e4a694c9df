"""Deep ReLU MLPs whose only difference is the weight initialisation."""

import torch
from torch import nn

INITS = {
    "kaiming": lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"),
    "xavier": nn.init.xavier_normal_,
    "normal": nn.init.normal_,  # N(0, 1): far too large for fan-in 64
}


class DeepReluMLP(nn.Module):
    def __init__(self, depth: int = 30, width: int = 64, inputs: int = 32, init: str = "kaiming"):
        super().__init__()
        sizes = [inputs] + [width] * depth
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))
        for layer in self.layers:
            INITS[init](layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[:-1]:
            x = torch.relu(layer(x))
        return self.layers[-1](x)


def kaiming_sigmoid_free() -> nn.Module:
    """A factory returning a stock nn.Sequential (findings point at this function)."""
    return nn.Sequential(nn.Linear(32, 64), nn.ReLU(inplace=True), nn.Linear(64, 10))


class TokenClassifier(nn.Module):
    """Token ids in, one score per class out (needs --input-dtype long --input-range)."""

    def __init__(self, vocab: int = 30000, dim: int = 16, classes: int = 4):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(ids).mean(dim=1))


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(32, 16)
        self.b = nn.Linear(8, 16)
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.a(x) + self.b(y)))


def example_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    """An input function for [tool.gradlint.probe] (input-fn)."""
    return torch.randn(16, 32), torch.randn(16, 8)
