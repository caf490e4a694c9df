"""Language models: recurrent LMs in plain torch, transformers from small configs."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class RecurrentLM(nn.Module):
    """The word-language-model recipe: embedding, LSTM/GRU, dropout, tied-size decoder,
    uniform(-0.1, 0.1) init of the embedding and decoder."""

    def __init__(self, cell: str = "lstm", vocab: int = 2000, dim: int = 64, layers: int = 2,
                 dropout: float = 0.2) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn(dim, dim, layers, dropout=dropout, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.decoder = nn.Linear(dim, vocab)
        nn.init.uniform_(self.embed.weight, -0.1, 0.1)
        nn.init.uniform_(self.decoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.drop(self.embed(ids)))
        return self.decoder(self.drop(out))


class TransformerLM(nn.Module):
    """nn.TransformerEncoder with a causal mask, learned positions, and a vocabulary head."""

    def __init__(self, vocab: int = 2000, dim: int = 64, layers: int = 2, heads: int = 4,
                 length: int = 256) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.pos = nn.Parameter(torch.zeros(1, length, dim))
        nn.init.normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, 0.1, batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = nn.Transformer.generate_square_subsequent_mask(ids.shape[1])
        x = self.embed(ids) + self.pos[:, : ids.shape[1]]
        return self.head(self.norm(self.encoder(x, mask=mask, is_causal=True)))


def hf_model(kind: str, **overrides: Any) -> nn.Module:
    """A transformers model built from a small config: no weights, no network."""
    import transformers

    small = dict(vocab_size=2000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                 intermediate_size=128, max_position_embeddings=512)
    if kind in ("bert", "bert-cls", "bert-mlm"):
        config = transformers.BertConfig(**{**small, **overrides})
        cls = {"bert": transformers.BertModel,
               "bert-cls": transformers.BertForSequenceClassification,
               "bert-mlm": transformers.BertForMaskedLM}[kind]
        return cls(config)
    if kind == "gpt2":
        config = transformers.GPT2Config(vocab_size=2000, n_embd=64, n_layer=2, n_head=4,
                                         n_positions=512, bos_token_id=0,
                                         eos_token_id=0, **overrides)
        return transformers.GPT2LMHeadModel(config)
    if kind == "t5":
        config = transformers.T5Config(vocab_size=2000, d_model=64, d_kv=16, d_ff=128,
                                       num_layers=2, num_heads=4, **overrides)
        return transformers.T5ForConditionalGeneration(config)
    raise ValueError(kind)
