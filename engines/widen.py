"""Widen a trained plain conv stack into a wider one that computes the same function (Net2WiderNet,
Chen et al. 2016), so that a wider model starts from what the narrow one learnt, not from scratch.

Each new channel of a conv + BN + ReLU layer copies an existing channel. The next conv reads a
copied channel through all its copies with weights that sum to the original one: shares drawn at
random around 1/copies, so the output is unchanged while the copies, reached through different
weights, get different gradients and can learn apart (equal shares would keep them equal forever).
"""

from __future__ import annotations

import torch
from torch import nn

from engines.model import SPNModel


def _layers(model: SPNModel) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
    modules = list(model.features)
    pairs = [(m, modules[i + 1]) for i, m in enumerate(modules) if isinstance(m, nn.Conv2d)]
    if not all(isinstance(bn, nn.BatchNorm2d) for _, bn in pairs):
        raise ValueError(f"{model.cfg.arch}: widening needs a plain conv + batch-norm stack")
    return pairs


def _check(narrow: list, wide: list, names: tuple[str, str]) -> None:
    def same_shape(a: nn.Conv2d, b: nn.Conv2d) -> bool:
        return (a.kernel_size, a.stride, a.padding, a.groups) == (b.kernel_size, b.stride, b.padding, b.groups)

    if len(narrow) != len(wide) or not all(same_shape(a, b) for (a, _), (b, _) in zip(narrow, wide, strict=True)):
        raise ValueError(f"cannot widen {names[0]} into {names[1]}: the layers differ beyond width")
    if any(b.out_channels < a.out_channels for (a, _), (b, _) in zip(narrow, wide, strict=True)):
        raise ValueError(f"cannot widen {names[0]} into {names[1]}: a layer of it is narrower")
    if narrow[-1][0].out_channels != wide[-1][0].out_channels:
        raise ValueError(f"cannot widen {names[0]} into {names[1]}: the features the head reads "
                         f"({narrow[-1][0].out_channels} → {wide[-1][0].out_channels}) must keep their width")


def _shares(source: torch.Tensor, spread: float, gen: torch.Generator) -> torch.Tensor:
    """Each new channel's share of its source channel; the shares of one source sum to 1."""
    raw = 1.0 + spread * torch.randn(len(source), generator=gen).clamp(-2, 2)
    total = torch.zeros(int(source.max()) + 1).index_add_(0, source, raw)
    return raw / total[source]


@torch.no_grad()
def widen(model: SPNModel, arch: str, spread: float = 0.1, seed: int = 0) -> SPNModel:
    """A model of backbone ``arch`` (same layers, each at least as wide, the same last width) whose
    outputs equal ``model``'s; its head is ``model``'s."""
    wide = SPNModel(model.cfg.replace(arch=arch))
    narrow_layers, wide_layers = _layers(model), _layers(wide)
    _check(narrow_layers, wide_layers, (model.cfg.arch, arch))
    gen = torch.Generator().manual_seed(seed)
    source, share = torch.zeros(1, dtype=torch.long), torch.ones(1)  # the one input channel
    for (conv, bn), (new_conv, new_bn) in zip(narrow_layers, wide_layers, strict=True):
        old, new = conv.out_channels, new_conv.out_channels
        out_source = torch.cat([torch.arange(old), torch.randint(old, (new - old,), generator=gen)])
        new_conv.weight.copy_(conv.weight[out_source][:, source] * share[None, :, None, None])
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(new_bn, name).copy_(getattr(bn, name)[out_source])
        new_bn.num_batches_tracked.copy_(bn.num_batches_tracked)
        source, share = out_source, _shares(out_source, spread, gen)
    wide.head.load_state_dict(model.head.state_dict())
    return wide.train(model.training)
