"""Finding the ultrasound fan on a scanner screen and fitting its sector.

A real screen carries more than the fan: a body mark and measurement boxes inside the image area,
calipers, text and arrows on the image, a grey-scale bar, a black or a grey UI, a second (frozen)
view. What sets the live image apart from all of them is that it changes from frame to frame, so
the evidence for the fan is where the screen *moves*; brightness is the fallback only while the
screen has not moved (a still image, the first frame of a stream). A fan found from brightness
alone is never reported as settled.

Searches (:meth:`FanTracker.look`) run off the served frames; the per-frame work on the hot path
is :meth:`FanTracker.due` (counting) and :class:`EdgeWatch` (a few hundred pixel reads that notice
a depth or zoom change at once instead of at the next periodic search).
"""

from streamer.fan.find import ScreenMotion, find_fan, grey_of
from streamer.fan.fit import FIT_EVERY, FIT_FRAMES, SectorFitter, fit_quality, sector_mask
from streamer.fan.tracker import ARC_LOOKS, WATCH_LOOK_EVERY, FanTracker, Geometry
from streamer.fan.watch import EdgeWatch

__all__ = ["ARC_LOOKS", "FIT_EVERY", "FIT_FRAMES", "WATCH_LOOK_EVERY", "EdgeWatch", "FanTracker",
           "Geometry", "ScreenMotion", "SectorFitter", "find_fan", "fit_quality", "grey_of",
           "sector_mask"]
