"""Compact replicas of stock vision architectures, for probing healthy models.

Each keeps the original's block structure and initialisation recipe (He/fan-out convs,
BatchNorm at ones/zeros, truncated-normal transformers, layer scale at 1e-6, squeeze-and-
excitation with a ReLU after global pooling, zero-initialised heads where the original has
one); widths and depths are reduced so a CPU probes each in about a second.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def conv_init(model: nn.Module, linear_std: float | None = 0.01) -> None:
    """The torchvision CNN recipe: He fan-out convs, unit BatchNorm, small Linear heads."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and linear_std is not None:
            nn.init.normal_(m.weight, 0, linear_std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def trunc_init(model: nn.Module, std: float = 0.02) -> None:
    """The transformer recipe: truncated-normal Linear/conv weights, zero biases."""
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.trunc_normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1,
            act: type[nn.Module] | None = nn.ReLU) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if act is not None:
        layers.append(act(inplace=True) if act in (nn.ReLU, nn.Hardswish, nn.SiLU) else act())
    return nn.Sequential(*layers)


# -- ResNet ---------------------------------------------------------------------------------

class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = (
            conv_bn(cin, cout, 1, stride, act=None) if stride != 1 or cin != cout else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (x if self.down is None else self.down(x)))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1) -> None:
        super().__init__()
        cout = width * 4
        self.conv1 = conv_bn(cin, width, 1)
        self.conv2 = conv_bn(width, width, 3, stride)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.down = (
            conv_bn(cin, cout, 1, stride, act=None) if stride != 1 or cin != cout else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv3(self.conv2(self.conv1(x))))
        return self.relu(out + (x if self.down is None else self.down(x)))


class ResNet(nn.Module):
    """torchvision's ResNet: 7x7 stem, max-pool, four stages, global pool, Linear head."""

    def __init__(self, block: str = "basic", layers: tuple[int, ...] = (2, 2, 2, 2),
                 width: int = 16, classes: int = 1000, zero_init_residual: bool = False,
                 features_only: bool = False) -> None:
        super().__init__()
        kind = BasicBlock if block == "basic" else Bottleneck
        self.stem = nn.Sequential(
            nn.Conv2d(3, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width),
            nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1),
        )
        stages, cin = [], width
        for i, n in enumerate(layers):
            blocks = []
            for j in range(n):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(kind(cin, width * 2**i, stride))
                cin = width * 2**i * kind.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.out_channels = cin
        self.features_only = features_only  # a segmentation backbone has no classifier
        self.fc = None if features_only else nn.Linear(cin, classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:  # the "bag of tricks" recipe: each block starts as identity
            for m in self.modules():
                if isinstance(m, BasicBlock):
                    nn.init.zeros_(m.bn2.weight)
                elif isinstance(m, Bottleneck):
                    nn.init.zeros_(m.bn3.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        if self.fc is None:
            return x
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# -- MobileNetV3, EfficientNet, RegNet: squeeze-and-excitation ------------------------------

class SqueezeExcite(nn.Module):
    """Global pool -> reduce -> activation -> expand -> gate, as in torchvision."""

    def __init__(self, channels: int, squeeze: int, act: type[nn.Module] = nn.ReLU,
                 gate: type[nn.Module] = nn.Hardsigmoid) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.act = act()
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.gate = gate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.gate(self.fc2(self.act(self.fc1(F.adaptive_avg_pool2d(x, 1)))))
        return x * scale


def make_divisible(v: float, divisor: int = 8) -> int:
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, k: int, exp: int, cout: int, se: bool, act: type[nn.Module],
                 stride: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        if exp != cin:
            layers.append(conv_bn(cin, exp, 1, act=act))
        layers.append(conv_bn(exp, exp, k, stride, groups=exp, act=act))
        if se:
            layers.append(SqueezeExcite(exp, make_divisible(exp // 4)))
        layers.append(conv_bn(exp, cout, 1, act=None))
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return out + x if self.residual else out


# (kernel, expanded, out, SE, activation, stride): MobileNetV3-Small's table
MOBILENET_V3_SMALL = [
    (3, 16, 16, True, "RE", 2), (3, 72, 24, False, "RE", 2), (3, 88, 24, False, "RE", 1),
    (5, 96, 40, True, "HS", 2), (5, 240, 40, True, "HS", 1), (5, 240, 40, True, "HS", 1),
    (5, 120, 48, True, "HS", 1), (5, 144, 48, True, "HS", 1), (5, 288, 96, True, "HS", 2),
    (5, 576, 96, True, "HS", 1), (5, 576, 96, True, "HS", 1),
]


class MobileNetV3(nn.Module):
    def __init__(self, width_mult: float = 0.5, classes: int = 1000) -> None:
        super().__init__()
        acts = {"RE": nn.ReLU, "HS": nn.Hardswish}
        cin = make_divisible(16 * width_mult)
        layers: list[nn.Module] = [conv_bn(3, cin, 3, 2, act=nn.Hardswish)]
        for k, exp, out, se, act, stride in MOBILENET_V3_SMALL:
            exp, out = make_divisible(exp * width_mult), make_divisible(out * width_mult)
            layers.append(InvertedResidual(cin, k, exp, out, se, acts[act], stride))
            cin = out
        last = 6 * cin
        layers.append(conv_bn(cin, last, 1, act=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Linear(last, 1024), nn.Hardswish(inplace=True), nn.Dropout(0.2),
            nn.Linear(1024, classes),
        )
        conv_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(x, 1))


class MBConv(nn.Module):
    """EfficientNet's block: expand, depthwise, SE with SiLU, project, stochastic depth."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, expand: int,
                 drop: float) -> None:
        super().__init__()
        exp = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(conv_bn(cin, exp, 1, act=nn.SiLU))
        layers += [
            conv_bn(exp, exp, k, stride, groups=exp, act=nn.SiLU),
            SqueezeExcite(exp, max(1, cin // 4), act=nn.SiLU, gate=nn.Sigmoid),
            conv_bn(exp, cout, 1, act=None),
        ]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout
        self.drop = drop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        if not self.residual:
            return out
        if self.training and self.drop > 0:  # stochastic depth, per sample
            keep = torch.rand(x.shape[0], 1, 1, 1, device=x.device) >= self.drop
            out = out * keep / (1 - self.drop)
        return out + x


# (expand, channels, repeats, stride, kernel): EfficientNet-B0's stages
EFFICIENTNET_B0 = [(1, 16, 1, 1, 3), (6, 24, 2, 2, 3), (6, 40, 2, 2, 5), (6, 80, 3, 2, 3),
                   (6, 112, 3, 1, 5), (6, 192, 4, 2, 5), (6, 320, 1, 1, 3)]


class EfficientNet(nn.Module):
    def __init__(self, width_mult: float = 0.25, depth_mult: float = 0.5,
                 classes: int = 1000) -> None:
        super().__init__()
        cin = make_divisible(32 * width_mult)
        layers: list[nn.Module] = [conv_bn(3, cin, 3, 2, act=nn.SiLU)]
        total = sum(math.ceil(r * depth_mult) for _, _, r, _, _ in EFFICIENTNET_B0)
        index = 0
        for expand, ch, repeats, stride, k in EFFICIENTNET_B0:
            cout = make_divisible(ch * width_mult)
            for i in range(math.ceil(repeats * depth_mult)):
                layers.append(MBConv(cin, cout, k, stride if i == 0 else 1, expand,
                                     0.2 * index / total))
                cin, index = cout, index + 1
        last = 4 * cin
        layers.append(conv_bn(cin, last, 1, act=nn.SiLU))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(x, 1))


class RegNetBlock(nn.Module):
    """RegNetY's bottleneck: 1x1, grouped 3x3, SE (ReLU after pooling), 1x1, residual."""

    def __init__(self, cin: int, cout: int, stride: int, group_width: int) -> None:
        super().__init__()
        self.a = conv_bn(cin, cout, 1)
        self.b = conv_bn(cout, cout, 3, stride, groups=max(1, cout // group_width))
        self.se = SqueezeExcite(cout, max(1, cin // 4), act=nn.ReLU, gate=nn.Sigmoid)
        self.c = conv_bn(cout, cout, 1, act=None)
        self.proj = conv_bn(cin, cout, 1, stride, act=None) if stride != 1 or cin != cout else None
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.c(self.se(self.b(self.a(x))))
        return self.relu(out + (x if self.proj is None else self.proj(x)))


class RegNetY(nn.Module):
    def __init__(self, widths: tuple[int, ...] = (24, 56, 152, 368), depths: tuple[int, ...] = (
            1, 1, 2, 2), group_width: int = 8, classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = [conv_bn(3, 32, 3, 2)]
        cin = 32
        for w, d in zip(widths, depths):
            for i in range(d):
                layers.append(RegNetBlock(cin, w, 2 if i == 0 else 1, group_width))
                cin = w
        self.trunk = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, classes)
        conv_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.trunk(x), 1), 1))


class DenseLayer(nn.Module):
    def __init__(self, cin: int, growth: int, bn_size: int = 4) -> None:
        super().__init__()
        self.norm1, self.relu1 = nn.BatchNorm2d(cin), nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(cin, bn_size * growth, 1, bias=False)
        self.norm2, self.relu2 = nn.BatchNorm2d(bn_size * growth), nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth, growth, 3, 1, 1, bias=False)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = torch.cat(features, 1)
        return self.conv2(self.relu2(self.norm2(self.conv1(self.relu1(self.norm1(x))))))


class DenseBlock(nn.Module):
    def __init__(self, layers: int, cin: int, growth: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(DenseLayer(cin + i * growth, growth) for i in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(features))
        return torch.cat(features, 1)


class DenseNet(nn.Module):
    """DenseNet-121's layout (BN-ReLU-conv dense layers, transitions) at reduced growth."""

    def __init__(self, growth: int = 8, blocks: tuple[int, ...] = (3, 6, 12, 8),
                 init_features: int = 16, classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(3, init_features, 7, 2, 3, bias=False), nn.BatchNorm2d(init_features),
            nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1),
        ]
        c = init_features
        for i, n in enumerate(blocks):
            layers.append(DenseBlock(n, c, growth))
            c += n * growth
            if i != len(blocks) - 1:
                layers += [nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                           nn.Conv2d(c, c // 2, 1, bias=False), nn.AvgPool2d(2, 2)]
                c //= 2
        layers.append(nn.BatchNorm2d(c))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c, classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.features(x), inplace=True)
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# -- ConvNeXt: layer scale at 1e-6 ----------------------------------------------------------

class LayerNorm2d(nn.LayerNorm):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim: int, layer_scale: float = 1e-6) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.layer_scale = nn.Parameter(torch.ones(dim, 1, 1) * layer_scale)  # (C, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.pwconv2(self.act(self.pwconv1(self.norm(y)))).permute(0, 3, 1, 2)
        return x + self.layer_scale * y


class ConvNeXt(nn.Module):
    def __init__(self, dims: tuple[int, ...] = (24, 48, 96, 192),
                 depths: tuple[int, ...] = (2, 2, 4, 2), classes: int = 1000) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, dims[0], 4, 4), LayerNorm2d(dims[0], eps=1e-6))
        stages: list[nn.Module] = []
        for i, (dim, depth) in enumerate(zip(dims, depths)):
            if i > 0:
                stages.append(nn.Sequential(LayerNorm2d(dims[i - 1], eps=1e-6),
                                            nn.Conv2d(dims[i - 1], dim, 2, 2)))
            stages += [ConvNeXtBlock(dim) for _ in range(depth)]
        self.stages = nn.Sequential(*stages)
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.head = nn.Linear(dims[-1], classes)
        trunc_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x)).mean(dim=(2, 3))
        return self.head(self.norm(x))


# -- ViT, DeiT, Swin ------------------------------------------------------------------------

class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class EncoderBlock(nn.Module):
    """Pre-norm transformer block; optional layer scale as in DeiT-III/CaiT."""

    def __init__(self, dim: int, heads: int, layer_scale: float | None = None) -> None:
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim, eps=1e-6), Attention(dim, heads)
        self.norm2, self.mlp = nn.LayerNorm(dim, eps=1e-6), Mlp(dim, 4 * dim)
        scale = 1.0 if layer_scale is None else layer_scale
        self.ls1 = nn.Parameter(torch.full((dim,), scale), requires_grad=layer_scale is not None)
        self.ls2 = nn.Parameter(torch.full((dim,), scale), requires_grad=layer_scale is not None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1 * self.attn(self.norm1(x))
        return x + self.ls2 * self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    """torchvision's ViT: conv patch embedding, class token, learned positions, pre-norm
    encoder, and a zero-initialised head (`zero_head=False`: timm's truncated normal);
    `distilled` adds DeiT's distillation token and
    second head (both heads are returned while training), `token_std` sets the class
    token's init (timm draws it at 1e-6)."""

    def __init__(self, image: int = 224, patch: int = 16, dim: int = 96, depth: int = 4,
                 heads: int = 3, classes: int = 1000, distilled: bool = False,
                 token_std: float = 0.0, layer_scale: float | None = None,
                 zero_head: bool = True) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, dim)) if distilled else None
        tokens = (image // patch) ** 2 + 1 + int(distilled)
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens, dim))
        self.blocks = nn.Sequential(*(EncoderBlock(dim, heads, layer_scale) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, classes)
        self.head_dist = nn.Linear(dim, classes) if distilled else None
        trunc_init(self)
        fan_in = 3 * patch * patch
        nn.init.trunc_normal_(self.patch_embed.weight, std=math.sqrt(1 / fan_in))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        if token_std:
            nn.init.normal_(self.cls_token, std=token_std)
        if distilled:
            nn.init.trunc_normal_(self.dist_token, std=0.02)
            nn.init.trunc_normal_(self.cls_token, std=0.02)
        elif zero_head:
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        tokens = [self.cls_token.expand(x.shape[0], -1, -1)]
        if self.dist_token is not None:
            tokens.append(self.dist_token.expand(x.shape[0], -1, -1))
        x = self.norm(self.blocks(torch.cat([*tokens, x], dim=1) + self.pos_embed))
        if self.head_dist is None:
            return self.head(x[:, 0])
        out, dist = self.head(x[:, 0]), self.head_dist(x[:, 1])
        return (out, dist) if self.training else (out + dist) / 2


def window_partition(x: torch.Tensor, w: int) -> torch.Tensor:
    b, h, wd, c = x.shape
    x = x.view(b, h // w, w, wd // w, w, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, w * w, c)


def window_merge(x: torch.Tensor, w: int, b: int, h: int, wd: int) -> torch.Tensor:
    x = x.view(b, h // w, wd // w, w, w, -1).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h, wd, -1)


class WindowAttention(nn.Module):
    """Windowed self-attention with a learned relative-position bias table."""

    def __init__(self, dim: int, window: int, heads: int) -> None:
        super().__init__()
        self.window, self.heads = window, heads
        self.bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.bias_table, std=0.02)
        coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window),
                                            indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + window - 1
        self.register_buffer("index", rel[..., 0] * (2 * window - 1) + rel[..., 1],
                             persistent=False)
        self.attn = Attention(dim, heads)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        n = self.window * self.window
        bias = self.bias_table[self.index.view(-1)].view(n, n, -1).permute(2, 0, 1)
        bias = bias.unsqueeze(0)
        if mask is not None:  # (windows, n, n) per image, repeated over the batch
            bias = bias + mask.repeat(x.shape[0] // mask.shape[0], 1, 1).unsqueeze(1)
        return self.attn(x, bias)


class SwinBlock(nn.Module):
    def __init__(self, dim: int, heads: int, window: int, shift: int, size: int) -> None:
        super().__init__()
        self.window, self.shift = window, shift
        self.norm1, self.attn = nn.LayerNorm(dim), WindowAttention(dim, window, heads)
        self.norm2, self.mlp = nn.LayerNorm(dim), Mlp(dim, 4 * dim)
        mask = None
        if shift:  # windows straddling the rolled border must not attend across it
            region = torch.zeros(1, size, size, 1)
            cuts = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
            for i, (hs, ws) in enumerate((h, w) for h in cuts for w in cuts):
                region[:, hs, ws, :] = i
            ids = window_partition(region, window).squeeze(-1)
            mask = (ids[:, None, :] != ids[:, :, None]).float() * -100.0
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        y = self.norm1(x)
        if self.shift:
            y = torch.roll(y, (-self.shift, -self.shift), (1, 2))
        y = window_merge(self.attn(window_partition(y, self.window), self.mask),
                         self.window, b, h, w)
        if self.shift:
            y = torch.roll(y, (self.shift, self.shift), (1, 2))
        x = x + y
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm, self.reduction = nn.LayerNorm(4 * dim), nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x))


class SwinTransformer(nn.Module):
    def __init__(self, image: int = 224, patch: int = 4, dim: int = 32,
                 depths: tuple[int, ...] = (2, 2, 2, 2), heads: tuple[int, ...] = (1, 2, 4, 8),
                 window: int = 7, classes: int = 1000) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        self.embed_norm = nn.LayerNorm(dim)
        layers: list[nn.Module] = []
        size = image // patch
        for i, (depth, h) in enumerate(zip(depths, heads)):
            if i > 0:
                layers.append(PatchMerging(dim))
                dim, size = dim * 2, size // 2
            for j in range(depth):
                shift = window // 2 if j % 2 and size > window else 0
                layers.append(SwinBlock(dim, h, min(window, size), shift, size))
        self.layers = nn.Sequential(*layers)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)
        trunc_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed_norm(self.patch_embed(x).permute(0, 2, 3, 1))
        x = self.norm(self.layers(x))
        return self.head(x.mean(dim=(1, 2)))


class MlpMixer(nn.Module):
    """MLP-Mixer as timm builds it: token- and channel-mixing MLPs, zero-initialised head."""

    def __init__(self, image: int = 224, patch: int = 16, dim: int = 96, depth: int = 4,
                 classes: int = 1000) -> None:
        super().__init__()
        tokens = (image // patch) ** 2
        self.stem = nn.Conv2d(3, dim, patch, patch)
        self.blocks = nn.ModuleList()
        for _ in range(depth):
            self.blocks.append(nn.ModuleDict({
                "norm1": nn.LayerNorm(dim, eps=1e-6), "tokens": Mlp(tokens, tokens // 2),
                "norm2": nn.LayerNorm(dim, eps=1e-6), "channels": Mlp(dim, 4 * dim),
            }))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, classes)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.normal_(m.bias, std=1e-6)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x).flatten(2).transpose(1, 2)
        for b in self.blocks:
            x = x + b["tokens"](b["norm1"](x).transpose(1, 2)).transpose(1, 2)
            x = x + b["channels"](b["norm2"](x))
        return self.head(self.norm(x).mean(dim=1))


# -- segmentation ---------------------------------------------------------------------------

class ASPP(nn.Module):
    """DeepLabV3's atrous pyramid, with its image-level branch (pool -> conv -> BN -> ReLU)."""

    def __init__(self, cin: int, cout: int = 64, rates: tuple[int, ...] = (12, 24, 36)) -> None:
        super().__init__()
        self.branches = nn.ModuleList([conv_bn(cin, cout, 1)])
        for r in rates:
            self.branches.append(nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=r, dilation=r, bias=False),
                nn.BatchNorm2d(cout), nn.ReLU(inplace=True)))
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1, bias=False),
                                  nn.BatchNorm2d(cout), nn.ReLU(inplace=True))
        self.project = nn.Sequential(conv_bn(cout * (len(rates) + 2), cout, 1), nn.Dropout(0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [b(x) for b in self.branches]
        outs.append(F.interpolate(self.pool(x), size=x.shape[-2:], mode="bilinear",
                                  align_corners=False))
        return self.project(torch.cat(outs, dim=1))


class Segmenter(nn.Module):
    """torchvision's FCN or DeepLabV3 on a ResNet backbone, upsampled to the input size."""

    def __init__(self, head: str = "fcn", classes: int = 21) -> None:
        super().__init__()
        self.backbone = ResNet("bottleneck", (1, 1, 2, 1), width=8, features_only=True)
        c = self.backbone.out_channels
        if head == "fcn":
            self.head = nn.Sequential(conv_bn(c, c // 4, 3), nn.Dropout(0.1),
                                      nn.Conv2d(c // 4, classes, 1))
        else:
            self.head = nn.Sequential(ASPP(c), conv_bn(64, 64, 3), nn.Conv2d(64, classes, 1))
        conv_init(self.head)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.head(self.backbone(x))
        return {"out": F.interpolate(out, size=x.shape[-2:], mode="bilinear",
                                     align_corners=False)}


class UNet(nn.Module):
    """Ronneberger et al.'s U-Net (padded convs, BatchNorm as in common ports)."""

    def __init__(self, channels: int = 3, classes: int = 2, base: int = 8,
                 depth: int = 4) -> None:
        super().__init__()

        def double(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(conv_bn(cin, cout), conv_bn(cout, cout))

        widths = [base * 2**i for i in range(depth + 1)]
        self.inc = double(channels, widths[0])
        self.downs = nn.ModuleList(double(a, b) for a, b in zip(widths, widths[1:]))
        self.ups = nn.ModuleList(
            nn.ConvTranspose2d(b, a, 2, 2) for a, b in zip(widths[:-1], widths[1:]))
        self.up_convs = nn.ModuleList(double(2 * a, a) for a in widths[:-1])
        self.outc = nn.Conv2d(widths[0], classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(F.max_pool2d(skips[-1], 2)))
        x = skips.pop()
        for up, conv in zip(reversed(self.ups), reversed(self.up_convs)):
            x = conv(torch.cat([skips.pop(), up(x)], dim=1))
        return self.outc(x)
