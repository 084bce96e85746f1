"""The model an adaptation starts from, narrowed to the classes the user labelled.

Any checkpoint loads (ours, or a release checkpoint of the paper's code, whose layout is detected);
the classes are matched by name in any case (the release's "Head" is a labels file's "head") and
keep the starting model's spelling and order.
"""

from __future__ import annotations

from pathlib import Path

from engines.errors import UserError


def start_path(init: str) -> Path:
    """The checkpoint to start from: ``init``, or the bundled model's."""
    from engines.defaults import default_checkpoint

    return Path(init) if init else default_checkpoint()


def load_start(init: str, **overrides):
    """The starting SPNModel, or one UserError line naming the file."""
    from engines.checkpoint import load_checkpoint

    path = start_path(init)
    if not path.is_file():
        raise UserError(f"checkpoint to start from not found: {path}")
    try:
        return load_checkpoint(path, **overrides)
    except (ValueError, RuntimeError, KeyError) as exc:
        raise UserError(f"cannot start from {path}: {str(exc).strip().splitlines()[0]}") from exc


def matched_classes(model_classes, labelled, where: str) -> tuple[str, ...]:
    """The starting model's names of the labelled classes, in its order; a labelled class it does
    not know is one UserError naming the labels file."""
    known = {c.lower(): c for c in model_classes}
    unknown = [c for c in labelled if c.lower() not in known]
    if unknown:
        raise UserError(f"{where}: {', '.join(unknown)} not among the classes the starting model "
                        f"knows ({', '.join(model_classes)})")
    wanted = {c.lower() for c in labelled}
    return tuple(c for c in model_classes if c.lower() in wanted)


def narrowed(model, classes: tuple[str, ...]):
    """The model with only ``classes`` (a subset of its own) in its head: the same outputs for
    them, the backbone untouched."""
    import torch

    from engines.checkpoint import fuse_grouped, split_grouped
    from engines.model import SPNModel

    if tuple(classes) == tuple(model.cfg.classes):
        return model
    keep = [model.cfg.classes.index(c) for c in classes]
    state = model.state_dict()
    if model.cfg.head == "shared":
        for key in ("head.classifier.0.weight", "head.classifier.0.bias"):
            state[key] = state[key][keep]
    else:
        for key in ("head.conv.weight", "head.conv.bias"):
            parts = split_grouped(state[key], len(model.cfg.classes))
            state[key] = fuse_grouped([parts[i] for i in keep])
        for key in ("head.weight", "head.bias"):
            state[key] = state[key][keep]
    out = SPNModel(model.cfg.replace(classes=tuple(classes)))
    out.load_state_dict({k: torch.as_tensor(v) for k, v in state.items()})
    return out.eval()
