"""The soft-proposal network of Toussaint et al. (2018), as its public release builds it.

features → 3×3 conv (groups=2) → ReLU → soft proposal (coupled) → spatial sum → linear.
``head="shared"``: one proposal map for all classes (the release).
``head="per_class"``: each class its own conv, proposal map and linear(num_maps→1), fused into one
grouped conv, one batched soft proposal and one einsum.
Outputs: ``scores`` [B, C] logits and ``maps`` [B, C, h, w] class localisation maps.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from torch import nn

from engines.backbones import BACKBONES, build_backbone
from engines.classes import ACTIVATIONS, REGIONS
from engines.model_info import HEADS, REPRESENTATIONS
from engines.soft_proposal import DEFAULT_UNROLLED_ITERATIONS, MODES, SoftProposal

MAP_KINDS = ("cam", "proposal")
"""cam: Σ_k w_ck·(U_k ⊙ M) as the paper's code computes it; proposal: the proposal map M itself."""

_DEFAULT_NUM_MAPS = {"compact": 128, "compact_wide": 128}


@dataclass(frozen=True)
class ModelConfig:
    arch: str = "compact"
    classes: tuple[str, ...] = REGIONS
    activation: str = "sigmoid"
    head: str = "shared"
    num_maps: int = 0  # 0: 512 for the paper's backbones, 128 for compact ones
    input_size: int = 224
    proposal_mode: str = "converge"
    iterations: int = DEFAULT_UNROLLED_ITERATIONS
    factor: float = 0.15
    map_kind: str = "cam"
    representation: str = "sector"  # what the model was trained on: sector crops or polar frames
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "classes", tuple(self.classes))
        if not self.num_maps:
            object.__setattr__(self, "num_maps", _DEFAULT_NUM_MAPS.get(self.arch, 512))
        checks = [
            (self.arch in BACKBONES, f"arch must be one of {sorted(BACKBONES)}"),
            (self.activation in ACTIVATIONS, f"activation must be one of {ACTIVATIONS}"),
            (self.head in HEADS, f"head must be one of {HEADS}"),
            (self.proposal_mode in MODES, f"proposal_mode must be one of {MODES}"),
            (self.map_kind in MAP_KINDS, f"map_kind must be one of {MAP_KINDS}"),
            (self.representation in REPRESENTATIONS, f"representation must be one of {REPRESENTATIONS}"),
            (len(self.classes) >= 1, "classes must not be empty"),
            (len(set(self.classes)) == len(self.classes), "class names must be unique"),
            (self.num_maps > 0 and self.num_maps % 2 == 0, "num_maps must be a positive even number"),
            (self.input_size >= 32 and self.input_size % 32 == 0, "input_size must be a multiple of 32"),
            (self.iterations >= 1, "iterations must be ≥ 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"invalid model config: {message}")

    def replace(self, **changes) -> ModelConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["classes"] = list(self.classes)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"invalid model config: unknown keys {sorted(unknown)}")
        return cls(**d)


class SharedHead(nn.Module):
    """The release's head; module names match its checkpoints (spatial_pooling.adconv, classifier.0)."""

    def __init__(self, in_channels: int, cfg: ModelConfig):
        super().__init__()
        self.adconv = nn.Conv2d(in_channels, cfg.num_maps, 3, padding=1, groups=2)
        self.classifier = nn.Sequential(nn.Linear(cfg.num_maps, len(cfg.classes)))

    def u(self, f: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.adconv(f))

    def forward(self, f: torch.Tensor, sp: SoftProposal, map_kind: str):
        coupled, m = sp(self.u(f))
        linear = self.classifier[0]
        scores = linear(coupled.sum(dim=(2, 3)))
        if map_kind == "cam":
            maps = torch.einsum("ck,bkhw->bchw", linear.weight, coupled)
        else:
            maps = m.expand(-1, len(linear.weight), -1, -1)
        return scores, maps


class PerClassHead(nn.Module):
    """Per-class heads fused: one grouped conv, one batched soft proposal, one einsum.

    Output channel order of ``conv``: [group, class, map-in-group], so that class c's conv is
    the groups=2 conv with rows conv.weight[g*C*K/2 + c*K/2 : ... + K/2] of each group g.
    """

    def __init__(self, in_channels: int, cfg: ModelConfig):
        super().__init__()
        self.num_classes, self.num_maps = len(cfg.classes), cfg.num_maps
        self.conv = nn.Conv2d(in_channels, self.num_classes * cfg.num_maps, 3, padding=1, groups=2)
        self.weight = nn.Parameter(torch.empty(self.num_classes, cfg.num_maps))
        self.bias = nn.Parameter(torch.zeros(self.num_classes))
        nn.init.uniform_(self.weight, -cfg.num_maps**-0.5, cfg.num_maps**-0.5)

    def u(self, f: torch.Tensor) -> torch.Tensor:
        """Per-class maps as a batch [B·C, K, h, w] in each class's own channel order."""
        b, c, k = f.shape[0], self.num_classes, self.num_maps
        y = torch.relu(self.conv(f))
        h, w = y.shape[-2:]
        return y.reshape(b, 2, c, k // 2, h, w).transpose(1, 2).reshape(b * c, k, h, w)

    def forward(self, f: torch.Tensor, sp: SoftProposal, map_kind: str):
        b, c, k = f.shape[0], self.num_classes, self.num_maps
        u = self.u(f)
        h, w = u.shape[-2:]
        coupled, m = sp(u)
        coupled = coupled.reshape(b, c, k, h, w)
        scores = torch.einsum("bck,ck->bc", coupled.sum(dim=(3, 4)), self.weight) + self.bias
        if map_kind == "cam":
            maps = torch.einsum("ck,bckhw->bchw", self.weight, coupled)
        else:
            maps = m.reshape(b, c, h, w)
        return scores, maps


class SPNModel(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        backbone = build_backbone(cfg.arch)
        self.features = backbone.features
        head = SharedHead if cfg.head == "shared" else PerClassHead
        self.head = head(backbone.channels, cfg)
        self.soft_proposal = SoftProposal(cfg.proposal_mode, cfg.iterations, cfg.factor)

    def set_proposal_mode(self, mode: str, iterations: int | None = None) -> None:
        iterations = iterations or self.cfg.iterations
        self.cfg = self.cfg.replace(proposal_mode=mode, iterations=iterations)
        self.soft_proposal = SoftProposal(mode, iterations, self.cfg.factor)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.features(x), self.soft_proposal, self.cfg.map_kind)

    def proposal_input(self, x: torch.Tensor) -> torch.Tensor:
        """U, the maps the soft proposal runs on ([B, K, h, w], or [B·C, K, h, w] per class)."""
        return self.head.u(self.features(x))

    def proposal_maps(self, x: torch.Tensor) -> torch.Tensor:
        """The proposal maps M [B, 1 or C, h, w], for evaluating which map localises best."""
        m = self.soft_proposal.proposal(self.proposal_input(x))
        return m.reshape(x.shape[0], -1, *m.shape[-2:])
