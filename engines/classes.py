"""The anatomical classes and how scores become decisions."""

from __future__ import annotations

REGIONS: tuple[str, ...] = ("head", "spine", "thorax", "abdomen", "limbs", "placenta")
"""The six fetal regions, in the order every model output uses by default."""

BACKGROUND = "Background"
RELEASE_CLASSES: tuple[str, ...] = ("Abdomen", "Background", "Head", "Limbs", "Placenta",
                                    "Spine", "Thorax")
"""The paper's public release: the sorted label strings of its data set (its data set class
sorts the labels found in the MetaImage headers; its deployment code lists them in this order).
Trained with multi-label losses (MultiLabelSoftMarginLoss, BCEWithLogitsLoss): independent
sigmoids."""

NON_REGIONS = frozenset({"background"})
"""Class names (any case) that say what is *not* in view: scored, but never given a place."""

ACTIVATIONS = ("sigmoid", "softmax")
"""What a deployed model says about itself, read from ONNX metadata (no torch needed)."""


def is_region(name: str) -> bool:
    """False for a class such as the release's Background, whose map localises nothing."""
    return name.strip().lower() not in NON_REGIONS
