"""Simulated fetal ultrasound scanner: labelled B-mode frames, scanner screens and a live feed.

numpy + OpenCV only (no torch), so the runtime and the demo feed can import it.
"""

from .feed import LiveFeed, ReplayFeed
from .render import FanGeometry
from .scanner import ScannerSimulator, SimConfig, SimFrame
from .screen import ScreenFrame, ScreenRenderer

__all__ = ["FanGeometry", "LiveFeed", "ReplayFeed", "ScannerSimulator", "ScreenFrame", "ScreenRenderer",
           "SimConfig", "SimFrame"]
