"""`hf:NAME` targets: a transformers model from a model type or a local config JSON (child
side; no weights and no network)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gradlint.probe.stats import Location

if TYPE_CHECKING:
    from torch import nn

PREFIX = "hf:"
# A model type's defaults describe a full-size model; the probe needs its structure, not
# its size. Each key is set only where the config has it.
SMALL = {
    "vocab_size": 2000,
    "hidden_size": 64,
    "d_model": 64,
    "n_embd": 64,
    "num_hidden_layers": 2,
    "num_layers": 2,
    "num_decoder_layers": 2,
    "n_layer": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "num_heads": 4,
    "n_head": 4,
    "d_kv": 16,
    "head_dim": 16,
    "intermediate_size": 128,
    "d_ff": 128,
    "n_inner": 128,
}
SEQUENCE = 128  # default token inputs: (8, SEQUENCE) ids, half as many decoder ids
BATCH = 8


def is_hf_target(text: str) -> bool:
    return text.startswith(PREFIX) and len(text) > len(PREFIX)


def build_hf(
    target: str, init_args: dict[str, Any], cwd: str | None
) -> tuple[nn.Module, Location, dict[str, Any]]:
    """The model, a location naming the target, and default keyword inputs (token ids)."""
    import torch

    try:
        import transformers
    except ImportError:
        raise ImportError(
            "hf: targets need transformers installed (pip install transformers)"
        ) from None
    name = target[len(PREFIX):]
    path = Path(cwd or ".") / name
    if name.endswith(".json") or path.is_file():
        if not path.is_file():
            raise FileNotFoundError(f"no such config file: {name}")
        data = json.loads(path.read_text(encoding="utf-8"))
        model_type = data.pop("model_type", None)
        if not model_type:
            raise ValueError(f"{name} has no 'model_type'")
        architectures = data.pop("architectures", None) or []
        config = transformers.AutoConfig.for_model(model_type, **{**data, **init_args})
    else:
        config = transformers.AutoConfig.for_model(name)
        for key, value in {**SMALL, **init_args}.items():
            if key in init_args or hasattr(config, key):
                setattr(config, key, value)
        architectures = []
    cls = getattr(transformers, architectures[0], None) if architectures else None
    auto: Any = transformers.AutoModel  # untyped in some transformers releases
    model = cls(config) if cls is not None else auto.from_config(config)
    gen = torch.Generator().manual_seed(0)
    vocab = int(getattr(config, "vocab_size", 2))
    inputs = {"input_ids": torch.randint(0, vocab, (BATCH, SEQUENCE), generator=gen)}
    if getattr(config, "is_encoder_decoder", False):
        inputs["decoder_input_ids"] = torch.randint(0, vocab, (BATCH, SEQUENCE // 2),
                                                    generator=gen)
    location = Location(path=f"<{target}>", line=1, name=type(model).__name__)
    return model, location, inputs
