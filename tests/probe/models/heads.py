"""Models with several outputs, a user loss, and a factory around a library model."""

import torch
from torch import nn


class TwoHeads(nn.Module):
    """Returns a dict: class scores and a reconstruction; `aux` is only in the dict."""

    def __init__(self):
        super().__init__()
        self.body = nn.Linear(32, 64)
        self.classes = nn.Linear(64, 10)
        self.aux = nn.Linear(64, 32)

    def forward(self, x: torch.Tensor) -> dict:
        h = torch.relu(self.body(x))
        return {"logits_main": self.classes(h), "recon": self.aux(h)}


def main_only(output: dict) -> torch.Tensor:
    """A loss that reads one head only: `aux` then gets no gradient."""
    return output["logits_main"].logsumexp(dim=1).mean()


def not_a_scalar(output: dict) -> torch.Tensor:
    return output["logits_main"]


class TokenTagger(nn.Module):
    """Token ids and a float feature per token; the vocabulary comes from the embedding."""

    def __init__(self, vocab: int = 500):
        super().__init__()
        self.embed = nn.Embedding(vocab, 16)
        self.feature = nn.Linear(1, 16)
        self.head = nn.Linear(16, 5)

    def forward(self, ids: torch.Tensor, feature: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(ids) + self.feature(feature.unsqueeze(-1)))


def library_bert():
    """A factory around a model class from an installed package."""
    import transformers

    config = transformers.BertConfig(vocab_size=300, hidden_size=32, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=64)
    return transformers.BertModel(config)
