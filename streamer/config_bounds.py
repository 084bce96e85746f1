"""Bounds on numeric config keys, kept beside each field (``bounded``) so that the check and the
generated reference (docs/configuration.md) read the same numbers."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from streamer.errors import UserError


@dataclass(frozen=True)
class Bounds:
    """The values a numeric field (or each item of a tuple field) may take: finite, low..high,
    either end excluded where ``open`` says so."""

    low: float
    high: float
    open_low: bool = False
    open_high: bool = False

    def __contains__(self, value) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return False
        above = self.low < value if self.open_low else self.low <= value
        return above and (value < self.high if self.open_high else value <= self.high)

    def __str__(self) -> str:
        if isinstance(self.low, int) and isinstance(self.high, int) and not (
                self.open_low or self.open_high):
            return f"{self.low}..{self.high}"
        return (f"{'(' if self.open_low else '['}{self.low:g}, {self.high:g}"
                f"{')' if self.open_high else ']'}")


def bounded(default, low: float, high: float, *, open_low: bool = False, open_high: bool = False):
    """A dataclass field whose value (each item, for a tuple) must lie in the bounds."""
    return field(default=default, metadata={"bounds": Bounds(low, high, open_low, open_high)})


def _check_bounds(config, section: str) -> None:
    """Every bounded field of ``config`` in its bounds: one line naming the first that is not."""
    for f in dataclasses.fields(config):
        bounds, value = f.metadata.get("bounds"), getattr(config, f.name)
        if bounds is None or value is None:
            continue
        for item in value if isinstance(value, tuple) else (value,):
            shown = f"{item:g}" if isinstance(item, float) else repr(item)
            if item not in bounds:
                raise UserError(f"[{section}] {f.name} must be in {bounds}"
                                f"{' (each value)' if isinstance(value, tuple) else ''}, got {shown}")
