"""A minimal transcription of the paper's release model, written apart from engines.model.

ntoussaint/fetalnav: fetalnav/models/spn_models.py (SPNetWSL, vgg13_sp, resnet18_sp; branch
MultiLinearClassifier for the per-class variant), fetalnav/models/{vgg,resnet}.py (one input
channel); yeezhu/SPN.pytorch: the SoftProposal module (factor 0.15·N, tolerance 1e-4, at most 20
iterations, coupled output U ⊙ M), SpatialSumOverMap, and hook_spn's class response maps
(the coupled maps convolved with the classifier's weights).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

VGG13 = [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]


def vgg_features(batch_norm: bool) -> nn.Sequential:
    layers, cin = [], 1
    for v in VGG13:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        layers += [nn.Conv2d(cin, v, kernel_size=3, padding=1)]
        layers += [nn.BatchNorm2d(v), nn.ReLU(inplace=True)] if batch_norm else [nn.ReLU(inplace=True)]
        cin = v
    return nn.Sequential(*layers[:-1])  # SPNetWSL drops the last child (the last max-pool)


class Block(nn.Module):
    def __init__(self, cin, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or cin != planes:
            self.downsample = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, bias=False),
                                            nn.BatchNorm2d(planes))

    def forward(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + residual)


def resnet18_features() -> nn.Sequential:
    def layer(cin, planes, stride):
        return nn.Sequential(Block(cin, planes, stride), Block(planes, planes))

    return nn.Sequential(  # the release's ResNet.features without its final AvgPool2d
        nn.Conv2d(1, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2, 1), layer(64, 64, 1), layer(64, 128, 2), layer(128, 256, 2),
        layer(256, 512, 2))


class SoftProposal(nn.Module):
    def __init__(self, factor=None):
        super().__init__()
        self.factor = factor

    def forward(self, u):
        b, k, h, w = u.shape
        n = h * w
        f = 0.15 * n if self.factor is None else self.factor
        grid = torch.stack(torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij"), -1)
        p = grid.reshape(n, 2).double()
        kernel = torch.exp(-((p[:, None] - p[None]) ** 2).sum(-1) / (2 * f * f))
        out = []
        for i in range(b):
            x = u[i].reshape(k, n).t().double()
            dist = torch.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
            weights = dist * kernel
            t = weights / weights.sum(dim=0, keepdim=True)
            m = torch.full((n, 1), 1.0 / n, dtype=torch.float64)
            for _ in range(20):
                nxt = t @ m
                done = torch.linalg.vector_norm(nxt - m) < 1e-4
                m = nxt
                if done:
                    break
            out.append(u[i] * m.reshape(1, h, w).to(u.dtype))
        return torch.stack(out)


class SpatialSumOverMap(nn.Module):
    def forward(self, x):
        return x.sum(dim=(2, 3), keepdim=True)


def pooling(cin: int, num_maps: int) -> nn.Sequential:
    p = nn.Sequential()
    p.add_module("adconv", nn.Conv2d(cin, num_maps, 3, 1, 1, groups=2, bias=True))
    p.add_module("maps", nn.ReLU())
    p.add_module("sp", SoftProposal())
    p.add_module("sum", SpatialSumOverMap())
    return p


class SPNetWSL(nn.Module):
    """The release's shared head; ``forward`` also gives hook_spn's class response maps."""

    def __init__(self, features, cin, num_classes, num_maps):
        super().__init__()
        self.features = features
        self.spatial_pooling = pooling(cin, num_maps)
        self.classifier = nn.Sequential(nn.Linear(num_maps, num_classes))

    def forward(self, x):
        p = self.spatial_pooling
        coupled = p.sp(p.maps(p.adconv(self.features(x))))
        scores = self.classifier(p.sum(coupled).view(x.size(0), -1))
        maps = F.conv2d(coupled, self.classifier[0].weight[:, :, None, None])
        return scores, maps


class MultiLinearSPNetWSL(nn.Module):
    """Branch MultiLinearClassifier: each class its own pooling and Linear(num_maps, 1)."""

    def __init__(self, features, cin, num_classes, num_maps):
        super().__init__()
        self.features = features
        self.spatial_poolings = nn.ModuleList([pooling(cin, num_maps) for _ in range(num_classes)])
        self.classifiers = nn.ModuleList([nn.Linear(num_maps, 1) for _ in range(num_classes)])

    def forward(self, x):
        f = self.features(x)
        scores, maps = [], []
        for p, c in zip(self.spatial_poolings, self.classifiers, strict=True):
            coupled = p.sp(p.maps(p.adconv(f)))
            scores.append(c(p.sum(coupled).view(x.size(0), -1)))
            maps.append(F.conv2d(coupled, c.weight[:, :, None, None]))
        return torch.cat(scores, dim=1), torch.cat(maps, dim=1)


def randomise(model: nn.Module, seed: int = 0) -> None:
    """Trained-looking running statistics (so that a misplaced BatchNorm key shows) and
    classifier weights that give logits of a few units either side of 0."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.Linear):
            m.weight.data.copy_(torch.randn(m.weight.shape, generator=g) * 3 / m.in_features**0.5)
            m.bias.data.copy_(torch.randn(m.bias.shape, generator=g))
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
