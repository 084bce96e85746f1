"""streamer fit-screen: a scanner profile from a recorded screen (the fan's fixed crop and sector).

A site whose scanner layout never changes can write the fan's rectangle and sector into its
config (``[preprocess] mode = "roi"``, ``roi``, ``sector``): ``streamer run`` then crops and
resamples from the first frame, with no search and no start-up frames. This command finds them
as ``streamer run`` does (the Preprocessor's fan search and sector fit, inline, on the
recording's frames in order), confirms the fit over CONFIRM_FRAMES more frames and writes the
profile, checked by loading it back with the config loader ``streamer run`` uses.

A profile is never watched for a layout change, so a fit is only kept when it holds: the same
sector (within CONFIRM_PX) on CONFIRM_FRAMES settled frames, and no live image just outside its
edges. The second check matters on obstetric screens: a fan whose far part is dark fluid for
the first frames is fitted short, settled, and only refitted at the tracker's next periodic
look; the speckle beyond the short fit's edge still changes from frame to frame.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from streamer.cli import CommandError

HELP = "write a scanner profile (the fan's fixed crop and sector) from a recorded screen"

MAX_FRAMES = 100_000
CONFIRM_FRAMES = 30  # settled frames after the fit that must show the same sector
CONFIRM_PX = 3.0  # how far the sector's outline or crop may move and still be the same (px)
# -- the live image just outside the fitted edges: a fit that left part of the fan out ---------
EDGE_POINTS = 60  # pixels read along each edge (far arc, near arc, both sides)
EDGE_STEP = 16  # grey levels a pixel changes between frames to count as live
OUTSIDE_LIVE = 0.1  # live fraction of an edge's outside band above which the fit is short
PROGRESS_EVERY = 30  # frames read between progress lines
INPUT_SIZE = 224  # the polar frame's side while fitting (the geometry does not depend on it)


def add_arguments(p) -> None:
    p.add_argument("video", metavar="VIDEO",
                   help="a recording of the scanner's screen while scanning live: a video file "
                        "(or a file source spec, file:PATH[,...])")
    p.add_argument("--frames", type=int, default=300, metavar="N",
                   help="give up when no sector has settled within the first N frames "
                        f"(default 300; 1..{MAX_FRAMES}); up to {CONFIRM_FRAMES} more confirm it")
    p.add_argument("--out", metavar="FILE.toml",
                   help="write the profile here (default: print it on stdout)")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")


@dataclasses.dataclass(frozen=True)
class Fitted:
    """A settled sector in source-frame pixels, with the rectangle it is cropped from."""

    roi: tuple[int, int, int, int]  # x, y, w, h
    apex: tuple[float, float]
    r_min: float
    r_max: float
    angle_min: float  # radians from straight down, + towards +x
    angle_max: float
    fit: float
    frames: int  # frames read when it settled

    @classmethod
    def of(cls, crop, fit: float, frames: int) -> Fitted:
        """The sector of a polar crop, cropped as the tracker crops it: the fitted sector's own
        rectangle, clipped to the frame, so the profile's polar frames hold the whole fan."""
        g = crop.polar.geometry
        return cls((crop.x, crop.y, crop.w, crop.h), (crop.x + g.apex[0], crop.y + g.apex[1]),
                   g.r_min, g.r_max, g.angle_min, g.angle_max, float(fit), frames)

    def point(self, a: float, r: float) -> tuple[float, float]:
        return self.apex[0] + r * math.sin(a), self.apex[1] + r * math.cos(a)

    def moved(self, other: Fitted) -> float:
        """How far (px) the outline (corners, far arc's middle) or the crop's edges moved."""
        mid = (self.angle_min + self.angle_max) / 2, (other.angle_min + other.angle_max) / 2
        ours = [self.point(a, r) for a in (self.angle_min, self.angle_max) for r in (self.r_min,
                                                                                     self.r_max)]
        theirs = [other.point(a, r) for a in (other.angle_min, other.angle_max)
                  for r in (other.r_min, other.r_max)]
        ours.append(self.point(mid[0], self.r_max))
        theirs.append(other.point(mid[1], other.r_max))
        points = max(math.dist(p, q) for p, q in zip(ours, theirs, strict=True))
        return max(points, *(abs(a - b) for a, b in zip(self.roi, other.roi, strict=True)))

    def outside(self, shape: tuple[int, int]) -> list[tuple[np.ndarray, np.ndarray]]:
        """(ys, xs) per edge (far arc, near arc where it is long enough to read, both sides):
        pixels just outside it in the frame, background while the fit holds the whole fan."""
        span, depth = self.angle_max - self.angle_min, self.r_max - self.r_min
        margin = max(6.0, 0.03 * depth)
        t = np.linspace(0.05, 0.95, EDGE_POINTS)
        da = margin / self.r_max
        edges = [(self.angle_min + t * span, np.full_like(t, self.r_max + margin))]
        if self.r_min * span > 4 * margin:
            edges.append((self.angle_min + t * span, np.full_like(t, self.r_min - margin)))
        edges += [(np.full_like(t, side), self.r_min + t * depth)
                  for side in (self.angle_min - da, self.angle_max + da)]
        out = []
        for a, r in edges:
            xs = np.floor(self.apex[0] + r * np.sin(a)).astype(np.int64)
            ys = np.floor(self.apex[1] + r * np.cos(a)).astype(np.int64)
            ok = (xs >= 0) & (xs < shape[1]) & (ys >= 0) & (ys < shape[0])
            if np.count_nonzero(ok) >= EDGE_POINTS // 4:  # an edge mostly off the frame: unread
                out.append((ys[ok], xs[ok]))
        return out

    def sector(self) -> tuple[float, ...]:
        """The config's sector: apex x, y, radii, angles in degrees, rounded to 0.1."""
        return tuple(round(v, 1) for v in (*self.apex, self.r_min, self.r_max,
                                           math.degrees(self.angle_min),
                                           math.degrees(self.angle_max)))


class Motion:
    """Where the screen changed (EDGE_STEP grey levels between consecutive frames, full
    resolution) since the start or the last layout change the tracker noticed: the live image."""

    def __init__(self):
        self.previous: np.ndarray | None = None
        self.changed: np.ndarray | None = None  # bool [H, W]

    def reset(self) -> None:
        """A new layout: where the old one's fan moved says nothing of the new one's."""
        if self.changed is not None:
            self.changed[:] = False

    def add(self, image: np.ndarray) -> None:
        import cv2

        plane = np.ascontiguousarray(image if image.ndim == 2 else image[:, :, 1])  # green:
        if self.previous is None or self.previous.shape != plane.shape:  # a grey image's grey
            self.changed = np.zeros(plane.shape, bool)
        else:
            self.changed |= cv2.absdiff(plane, self.previous) >= EDGE_STEP
        self.previous = plane

    def live(self, ys: np.ndarray, xs: np.ndarray) -> float:
        """The fraction of these pixels that changed."""
        if self.changed is None or ys.size == 0:
            return 0.0
        return float(np.mean(self.changed[ys, xs]))


class Confirmation:
    """Whether a settled sector holds: the same sector on CONFIRM_FRAMES settled frames (frames
    where the tracker is looking again pause the count), and the band just outside each of its
    edges still since the clip began or the layout last changed (live where the fan reaches
    beyond a fit made while part of it was dark)."""

    def __init__(self, fitted: Fitted, shape: tuple[int, int]):
        self.fitted, self.held = fitted, 0
        self.edges = fitted.outside(shape)
        self.outside_live = 0.0  # the live fraction of the liveliest edge's outside band
        self.short = False  # the live image reached beyond the fit when last judged

    def add(self, motion: Motion) -> bool:
        """One more settled frame with this sector: True once it holds."""
        self.held += 1
        if self.held < CONFIRM_FRAMES:
            return False
        self.outside_live = max((motion.live(ys, xs) for ys, xs in self.edges), default=0.0)
        self.short = self.outside_live > OUTSIDE_LIVE
        return not self.short


def _frames(args) -> None:
    if not 1 <= args.frames <= MAX_FRAMES:
        raise CommandError(f"--frames must be in 1..{MAX_FRAMES}, got {args.frames}")


def _check_out(args) -> Path | None:
    if not args.out:
        return None
    out = Path(args.out)
    if out.is_dir():
        raise CommandError(f"--out {out} is a folder; give a file name (e.g. site.toml)")
    if out.exists() and not args.force:
        raise CommandError(f"--out {out} exists; use --force to overwrite it")
    if not out.parent.is_dir():
        raise CommandError(f"--out {out}: folder {out.parent} does not exist")
    return out


def _open_video(spec: str):
    from streamer.sources import create_source, parse_source_spec

    kind, _ = parse_source_spec(spec)
    if kind != "file":
        raise CommandError(f"VIDEO must be a recorded video file (a path or file:PATH), got a "
                           f"{kind} source {spec!r}")
    source = create_source(spec)  # a missing file: one line here
    source.open()  # a file OpenCV cannot read: one line here
    return source


def _say(text: str) -> None:
    print(f"fit-screen: {text}", file=sys.stderr, flush=True)


def _name(spec: str) -> str:
    return " ".join(spec.split())  # one line in the header and messages, whatever the path holds


def fit_screen(spec: str, frames: int):
    """(Fitted, frame shape, last image): the sector settled within the first ``frames`` frames
    of ``spec`` that held over CONFIRM_FRAMES more; CommandError when there is none."""
    from streamer.config import PreprocessConfig
    from streamer.crop import PolarCrop
    from streamer.frames import Frame, InvalidFrame, SourceEnded
    from streamer.preprocess import Preprocessor

    name = _name(spec)
    pre = Preprocessor(PreprocessConfig(representation="polar"), INPUT_SIZE)
    source = _open_video(spec)
    shape, image, read, skipped = None, None, 0, 0
    check: Confirmation | None = None
    motion, layouts = Motion(), 0
    fits: list[int] = []  # frames read when each different settled sector appeared
    try:
        while True:
            if check is None and read >= frames:
                raise CommandError(_no_sector(name, frames))
            if read >= frames + CONFIRM_FRAMES:
                raise CommandError(_did_not_hold(name, check, fits))
            try:
                frame = source.read(1.0)
            except InvalidFrame:
                skipped += 1
                continue
            except SourceEnded as end:
                raise CommandError(_ended(name, read, frames, check, fits, end)) from None
            if frame is None:
                continue
            read += 1
            image = frame.image
            if shape is None:
                shape = image.shape[:2]
            elif image.shape[:2] != shape:
                raise CommandError(
                    f"frames of different sizes in {name}: frame {read} is {image.shape[1]}x"
                    f"{image.shape[0]}, the first was {shape[1]}x{shape[0]}; a profile is for one "
                    "screen layout: record the scanner's output at one resolution")
            try:
                prepared = pre.process(Frame(read - 1, image))
            except InvalidFrame as exc:
                raise CommandError(f"{name}: {exc}") from None
            relayouts = (pre.screen_status().get("fan") or {}).get("relayouts", 0)
            if relayouts != layouts:  # the tracker saw the fan's edges move: a new layout
                layouts = relayouts
                motion.reset()
            motion.add(image)
            fan = prepared.fan
            if read % PROGRESS_EVERY == 0:
                fit = "" if fan.fit is None else f" fit {fan.fit:.2f}"
                _say(f"{read} frames read, fan {fan.mode}{fit} "
                     f"({'settled' if fan.settled else 'searching'})")
            if not (isinstance(prepared.crop, PolarCrop) and fan.mode == "polar"
                    and fan.settled and fan.fit is not None):
                continue  # the tracker is (still, or again) looking: nothing to count
            now = Fitted.of(prepared.crop, fan.fit, read)
            if check is None or now.moved(check.fitted) > CONFIRM_PX:
                fits.append(read)
                if check is not None:
                    _say(f"the sector changed after {read} frames (by {now.moved(check.fitted):.0f}"
                         " px): confirming the new one")
                else:
                    _say(f"sector fitted after {read} frames (fit {now.fit:.2f}); confirming it "
                         f"over {CONFIRM_FRAMES} more")
                check = Confirmation(now, shape)
            if check.add(motion):
                if skipped:
                    _say(f"{skipped} unusable frames skipped")
                return check.fitted, shape, image
            if check.short and check.held == CONFIRM_FRAMES:
                _say(f"the live image reaches beyond the sector fitted after "
                     f"{check.fitted.frames} frames ({check.outside_live:.0%} of the band just "
                     "outside its edges moves: part of the fan was dark then); waiting for a "
                     "refit")
    finally:
        source.close()


def _no_sector(name: str, frames: int) -> str:
    return (f"no live curvilinear sector found in the first {frames} frames of {name}: the "
            "screen did not move, the fan is a linear probe's rectangle, or it changed layout; "
            "record a few seconds of live scanning")


def _did_not_hold(name: str, check: Confirmation, fits: list[int]) -> str:
    f = check.fitted
    if check.short:
        return (f"the sector fitted in {name} (after {f.frames} frames) leaves part of the live "
                f"image out: {check.outside_live:.0%} of the band just outside its edges moves "
                "(part of the fan was dark while it was fitted) and no refit took it in; record "
                "a longer clip of live scanning with the whole fan in view, or raise --frames")
    if len(fits) > 1:
        at = ", ".join(map(str, fits[1:6])) + (", ..." if len(fits) > 6 else "")
        return (f"the sector kept changing in {name}: fitted after {fits[0]} frames, then "
                f"different after {at} frames, never the same for {CONFIRM_FRAMES} settled "
                "frames (a layout change: depth, zoom or view; or a fan the fit cannot pin down); "
                "record a clip that keeps one layout")
    return (f"the sector fitted in {name} after {f.frames} frames held on only {check.held} of "
            f"the frames since (the fan was being looked for again: a layout change?); record "
            "a clip that keeps one layout")


def _ended(name: str, read: int, frames: int, check: Confirmation | None, fits: list[int],
           end) -> str:
    if read == 0:
        return f"no frames could be read from {name}: {end}"
    if not end.complete:
        return f"{end}"
    if check is None:
        return _no_sector(name, min(read, frames))
    if check.short or len(fits) > 1:
        return _did_not_hold(name, check, fits)
    return (f"{name} ended {read - check.fitted.frames} frames after the sector was fitted (after "
            f"{check.fitted.frames} frames); {CONFIRM_FRAMES} more settled frames are needed to "
            "confirm it: record a longer clip")


def profile_text(spec: str, fitted: Fitted, shape: tuple[int, int],
                 out: Path | None = None) -> str:
    x, y, w, h = fitted.roi
    sector = ", ".join(f"{v:.1f}" for v in fitted.sector())
    return (f"# scanner profile written by streamer fit-screen {_name(spec)}: {shape[1]}x{shape[0]}, "
            f"sector fitted after {fitted.frames} frames (fit {fitted.fit:.2f})\n"
            f"# use: streamer run --config {_name(str(out)) if out else 'FILE.toml'}; a depth or "
            "zoom change needs a new profile\n"
            "[preprocess]\n"
            'mode = "roi"\n'
            f"roi = [{x}, {y}, {w}, {h}]\n"
            f"sector = [{sector}]\n")


def verify(path: Path, fitted: Fitted, image: np.ndarray) -> None:
    """The profile loads with `streamer run`'s config loader, says what was fitted, and crops a
    frame to the same sector with no search (a mismatch is a bug: exit 1)."""
    from streamer.config import load_config
    from streamer.crop import PolarCrop
    from streamer.frames import Frame
    from streamer.preprocess import Preprocessor

    config = load_config(path).preprocess
    if config.mode != "roi" or config.roi != fitted.roi or config.sector != fitted.sector():
        raise RuntimeError(f"the profile {path} reads back as roi {config.roi}, sector "
                           f"{config.sector}; expected {fitted.roi}, {fitted.sector()}")
    pre = Preprocessor(dataclasses.replace(config, representation="polar"), INPUT_SIZE)
    prepared = pre.process(Frame(0, image))
    crop = prepared.crop
    if not isinstance(crop, PolarCrop) or prepared.fan.mode != "roi":
        raise RuntimeError(f"the profile {path} does not give a fixed polar crop: {prepared.fan}")
    g = crop.polar.geometry
    got = (crop.x + g.apex[0], crop.y + g.apex[1], g.r_min, g.r_max, math.degrees(g.angle_min),
           math.degrees(g.angle_max))
    if (crop.x, crop.y, crop.w, crop.h) != fitted.roi or not np.allclose(got, fitted.sector(),
                                                                         atol=1e-6):
        raise RuntimeError(f"the profile {path} crops roi {(crop.x, crop.y, crop.w, crop.h)}, "
                           f"sector {got}; expected {fitted.roi}, {fitted.sector()}")


def run(args) -> int:
    _frames(args)
    out = _check_out(args)
    fitted, shape, image = fit_screen(args.video, args.frames)
    text = profile_text(args.video, fitted, shape, out)
    fd, tmp = tempfile.mkstemp(prefix=".fit-screen-", suffix=".toml",
                               dir=None if out is None else out.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # as a plain open() would make it, not mkstemp's 0600
        verify(Path(tmp), fitted, image)
        if out is not None:
            os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    if out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    x, y, w, h = fitted.roi
    where = f"written to {out}" if out is not None else "printed on stdout"
    _say(f"profile ({shape[1]}x{shape[0]}, crop {w}x{h} at {x},{y}, fit {fitted.fit:.2f}) "
         f"{where}; use it with streamer run --config")
    return 0
