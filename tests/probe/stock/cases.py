"""Healthy stock architectures at their usual input sizes, and the inputs to probe them with."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from . import text, vision

BATCH = 8  # the smallest batch the dead-unit test accepts


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[], nn.Module]
    inputs: Callable[[torch.Generator], Any]  # a tensor, a tuple or a dict of keyword inputs
    needs: str | None = None  # an extra package the case needs
    options: dict[str, Any] = field(default_factory=dict)  # ProbeSpec fields


def images(size: int) -> Callable[[torch.Generator], torch.Tensor]:
    return lambda gen: torch.randn(BATCH, 3, size, size, generator=gen)


def tokens(length: int = 256, vocab: int = 2000, **extra: int) -> Callable[[torch.Generator], Any]:
    def make(gen: torch.Generator) -> Any:
        ids = torch.randint(0, vocab, (BATCH, length), generator=gen)
        if not extra:
            return ids
        kwargs = {"input_ids": ids}
        for name, n in extra.items():
            kwargs[name] = torch.randint(0, vocab, (BATCH, n), generator=gen)
        return kwargs

    return make


CASES = [
    Case("resnet18", lambda: vision.ResNet("basic", (2, 2, 2, 2)), images(224)),
    Case("resnet50", lambda: vision.ResNet("bottleneck", (3, 4, 6, 3), width=8), images(224)),
    Case("resnet50-zero-init-residual",
         lambda: vision.ResNet("bottleneck", (2, 2, 2, 2), width=8, zero_init_residual=True),
         images(224)),
    Case("mobilenet_v3_small-224", vision.MobileNetV3, images(224)),
    Case("mobilenet_v3_small-256", vision.MobileNetV3, images(256)),
    Case("efficientnet_b0", vision.EfficientNet, images(224)),
    Case("regnet_y", vision.RegNetY, images(224)),
    Case("densenet121", vision.DenseNet, images(224)),
    Case("convnext", vision.ConvNeXt, images(224)),
    Case("vit_b16", vision.VisionTransformer, images(224)),
    Case("vit-token-1e-6", lambda: vision.VisionTransformer(token_std=1e-6), images(224)),
    Case("deit_distilled", lambda: vision.VisionTransformer(distilled=True), images(224)),
    Case("swin_t", vision.SwinTransformer, images(224)),
    Case("mlp_mixer", vision.MlpMixer, images(224)),
    Case("fcn_resnet", lambda: vision.Segmenter("fcn"), images(256)),
    Case("deeplabv3_resnet", lambda: vision.Segmenter("deeplab"), images(256)),
    Case("unet", vision.UNet, images(256)),
    Case("lstm_lm", lambda: text.RecurrentLM("lstm"), tokens()),
    Case("gru_lm", lambda: text.RecurrentLM("gru"), tokens()),
    Case("transformer_lm", text.TransformerLM, tokens()),
    Case("bert", lambda: text.hf_model("bert"), tokens(128), "transformers"),
    Case("bert-classifier", lambda: text.hf_model("bert-cls"), tokens(128), "transformers"),
    Case("bert-mlm", lambda: text.hf_model("bert-mlm"), tokens(128), "transformers"),
    Case("gpt2", lambda: text.hf_model("gpt2"), tokens(256), "transformers"),
    Case("t5", lambda: text.hf_model("t5"), tokens(128, decoder_input_ids=64), "transformers"),
]
