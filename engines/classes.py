"""The anatomical classes and how scores become decisions."""

from __future__ import annotations

REGIONS: tuple[str, ...] = ("head", "spine", "thorax", "abdomen", "limbs", "placenta")
"""The six fetal regions, in the order every model output uses by default."""

BACKGROUND = "background"
RELEASE_CLASSES: tuple[str, ...] = (*REGIONS, BACKGROUND)
"""The paper's public release: six regions plus Background, trained with softmax."""

ACTIVATIONS = ("sigmoid", "softmax")
