"""Feature extractors with one input channel and the last max-pool removed.

Layer order and indices follow torchvision's VGG/ResNet so that `features.*` keys of checkpoints
from the paper's public code load unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

_VGG_LAYOUTS = {
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}
_RESNET_BLOCKS = {"resnet18": [2, 2, 2, 2], "resnet34": [3, 4, 6, 3]}


@dataclass(frozen=True)
class Backbone:
    features: nn.Module
    channels: int


def vgg(layout: list, batch_norm: bool) -> Backbone:
    layers: list[nn.Module] = []
    channels = 1
    for item in layout[:-1]:  # the last max-pool is removed
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
            continue
        layers.append(nn.Conv2d(channels, item, 3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(item))
        layers.append(nn.ReLU(inplace=True))
        channels = item
    return Backbone(nn.Sequential(*layers), channels)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


def resnet(blocks: list[int]) -> Backbone:
    layers: list[nn.Module] = [
        nn.Conv2d(1, 64, 7, 2, 3, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2, 1),
    ]
    cin = 64
    for i, (count, cout) in enumerate(zip(blocks, (64, 128, 256, 512), strict=True)):
        stage = [BasicBlock(cin, cout, 1 if i == 0 else 2)]
        stage += [BasicBlock(cout, cout, 1) for _ in range(count - 1)]
        layers.append(nn.Sequential(*stage))
        cin = cout
    return Backbone(nn.Sequential(*layers), 512)


def _conv_bn(cin: int, cout: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def compact(width: int = 32, out_channels: int = 0) -> Backbone:
    """Plain 3×3 conv stack, stride 16 (14×14 at 224), ~0.15 GFLOP: real time on a CPU.

    ``out_channels`` (default 4·width) sets the last conv's width alone, so that a wider stack can
    keep the head of a narrower one (engines/widen.py).
    """
    w, out = width, out_channels or 4 * width
    plan = [(1, w // 2, 2), (w // 2, w, 2), (w, w, 1), (w, 2 * w, 2), (2 * w, 2 * w, 1),
            (2 * w, 4 * w, 2), (4 * w, 4 * w, 1), (4 * w, out, 1)]
    layers: list[nn.Module] = []
    for cin, cout, stride in plan:
        layers += _conv_bn(cin, cout, stride)
    return Backbone(nn.Sequential(*layers), out)


BACKBONES: dict[str, Callable[[], Backbone]] = {
    "compact": compact,
    # 1.5× the compact stack's inner width (~2× its FLOPs), the same 128 features out
    "compact_wide": lambda: compact(48, out_channels=128),
    "vgg13": lambda: vgg(_VGG_LAYOUTS["vgg13"], False),
    "vgg13_bn": lambda: vgg(_VGG_LAYOUTS["vgg13"], True),
    "vgg16": lambda: vgg(_VGG_LAYOUTS["vgg16"], False),
    "vgg16_bn": lambda: vgg(_VGG_LAYOUTS["vgg16"], True),
    "resnet18": lambda: resnet(_RESNET_BLOCKS["resnet18"]),
    "resnet34": lambda: resnet(_RESNET_BLOCKS["resnet34"]),
}


def build_backbone(arch: str) -> Backbone:
    if arch not in BACKBONES:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {sorted(BACKBONES)}")
    return BACKBONES[arch]()
