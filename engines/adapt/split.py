"""Training and validation by loop: a loop's frames all go to one side.

Loops are taken for validation in a seeded order until they hold about the asked share of the
frames, skipping any loop whose move would leave a class without a training frame: validation may
lack a class (its accuracy then counts the frames without it), training never may.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engines.errors import UserError


@dataclass(frozen=True)
class Split:
    train: tuple[int, ...]  # frame indices
    val: tuple[int, ...]
    train_loops: tuple[str, ...]
    val_loops: tuple[str, ...]

    def as_dict(self) -> dict:
        return {"train_loops": list(self.train_loops), "val_loops": list(self.val_loops),
                "train_frames": len(self.train), "val_frames": len(self.val)}


def split_by_loop(loops: list[str], labels: np.ndarray, fraction: float, seed: int) -> Split:
    """Hold out whole loops, about ``fraction`` of the frames, never a class's last training loop."""
    if not 0 < fraction < 1:
        raise UserError(f"the validation share must be in (0, 1), got {fraction}")
    names = list(dict.fromkeys(loops))
    if len(names) < 2:
        raise UserError(f"{len(names)} loop labelled: a split by loop needs at least 2 (or give "
                        "validation loops of their own)")
    of = np.array([names.index(name) for name in loops])
    per_loop = np.stack([labels[of == k].sum(0) for k in range(len(names))])  # positives
    sizes = np.bincount(of, minlength=len(names))
    left, target, held = per_loop.sum(0), fraction * len(loops), []
    for k in np.random.default_rng(seed).permutation(len(names)):
        total = sizes[held].sum()
        if total >= target or len(held) == len(names) - 1:
            break
        closer = abs(total + sizes[k] - target) < abs(total - target)
        if np.all(left - per_loop[k] > 0) and (closer or not held):
            held.append(int(k))
            left = left - per_loop[k]
    if not held:
        raise UserError("no loop can be held out for validation without leaving a class with no "
                        "training frame: label more loops, or give validation loops of their own")
    val = np.isin(of, held)
    return Split(tuple(np.flatnonzero(~val)), tuple(np.flatnonzero(val)),
                 tuple(n for k, n in enumerate(names) if k not in held),
                 tuple(names[k] for k in sorted(held)))


def check_validation_classes(train: np.ndarray, val: np.ndarray, classes, where: str) -> None:
    """A class shown in validation frames but in no training frame is bad input (nothing could
    learn it); one that validation lacks is fine."""
    only = [c for c, t, v in zip(classes, train.sum(0), val.sum(0), strict=True) if v > 0 and t == 0]
    if only:
        raise UserError(f"{where}: {', '.join(only)} shown in validation frames but in no "
                        "training frame; label training loops that show it")
