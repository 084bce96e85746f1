"""Training's settings, torch-free so that the CLI can build its flags and check a config file
from them (the defaults are written here once).

The paper's recipe as defaults (its code: SGD lr 0.05, momentum 0.6, weight decay 5e-4, batch 7,
30 epochs, lr ×0.1 every 5, class-balanced sampling, horizontal flips, [0,1] scaling).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engines.model_info import HEADS, REPRESENTATIONS


@dataclass(frozen=True)
class TrainConfig:
    data: str = field(metadata={"help": "training data spec, e.g. sim:n=4000,seed=1"})
    val: str = field(metadata={"help": "validation data spec, e.g. sim:n=400,seed=2"})
    out: str = field(metadata={"help": "output folder (best.pt, last.pt, model.pt)"})
    arch: str = field(default="compact", metadata={"help": "backbone"})
    head: str = field(default="shared", metadata={"help": "one proposal map for all classes (the "
                                                          "release) or one per class",
                                                  "choices": HEADS})
    input_size: int = 224
    epochs: int = 30
    batch_size: int = 7
    lr: float = 0.05
    momentum: float = 0.6
    weight_decay: float = 5e-4
    lr_step: int = field(default=5, metadata={"help": "epochs between lr ×gamma"})
    lr_gamma: float = 0.1
    patience: int = field(default=0, metadata={
        "help": "early stopping: stop after this many epochs without a better validation score "
                "(mean accuracy, ties to the lower loss); the best epoch is kept (0: off)"})
    balanced: bool = field(default=True, metadata={"help": "class-balanced sampling",
                                                   "off": "--no-balance"})
    hflip: bool = field(default=True, metadata={"help": "random horizontal flips",
                                                "off": "--no-flip"})
    augment: float = field(default=0.0, metadata={
        "help": "photometric augmentation strength in [0, 1]: each pass redraws every frame's "
                "gamma, contrast, gain, blur and noise (0: off, the paper's recipe)"})
    keep_start: bool = field(default=False, metadata={
        "help": "fine-tuning: score the starting weights as epoch 0 and keep them unless an "
                "epoch does better on validation"})
    seed: int = 0
    threads: int = field(default=0, metadata={"help": "torch threads (0: default)"})
    resume: bool = field(default=False, metadata={"help": "continue from OUT/last.pt"})
    init: str = field(default="", metadata={"help": "start from this checkpoint's weights "
                                                    "(fine-tuning) instead of random ones; a "
                                                    "narrower compact one is widened first"})
    progress: bool = field(default=True, metadata={"help": "progress bars", "off": "--quiet"})
    representation: str = field(default="", metadata={
        "help": "what the frames are (default: as the data spec says; sim:...,polar=1 is polar)",
        "choices": REPRESENTATIONS})

    def __post_init__(self):
        for name in ("epochs", "batch_size", "lr_step", "input_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be ≥ 1")
        if self.patience < 0:
            raise ValueError(f"patience must be ≥ 0, got {self.patience}")
        if self.lr <= 0 or not 0 < self.lr_gamma <= 1:
            raise ValueError("lr must be > 0 and lr_gamma in (0, 1]")
        if not 0.0 <= self.augment <= 1.0:
            raise ValueError(f"augment must be in [0, 1], got {self.augment}")
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {self.head!r}")
        if self.representation and self.representation not in REPRESENTATIONS:
            raise ValueError(f"representation must be one of {REPRESENTATIONS}, "
                             f"got {self.representation!r}")
