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
from streamer.cli.sector_check import CONFIRM_FRAMES, CONFIRM_PX, Confirmation, Fitted, Motion

HELP = "write a scanner profile (the fan's fixed crop and sector) from a recorded screen"

MAX_FRAMES = 100_000
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
    source = _open_video(spec)
    try:
        return _ScreenFit(_name(spec), frames).run(source)
    finally:
        source.close()


class _ScreenFit:
    """The fit as ``streamer run`` makes it, frame by frame, and the confirmation that it holds."""

    def __init__(self, name: str, frames: int):
        from streamer.config import PreprocessConfig
        from streamer.preprocess import Preprocessor

        self.name, self.frames = name, frames
        self.pre = Preprocessor(PreprocessConfig(representation="polar"), INPUT_SIZE)
        self.shape, self.image, self.read, self.skipped = None, None, 0, 0
        self.check: Confirmation | None = None
        self.motion, self.layouts = Motion(), 0
        self.fits: list[int] = []  # frames read when each different settled sector appeared

    def run(self, source):
        while True:
            if self.check is None and self.read >= self.frames:
                raise CommandError(_no_sector(self.name, self.frames))
            if self.read >= self.frames + CONFIRM_FRAMES:
                raise CommandError(_did_not_hold(self.name, self.check, self.fits))
            image = self._next_image(source)
            if image is None:
                continue
            fan, crop = self._prepare(image)
            if self._confirmed(fan, crop):
                if self.skipped:
                    _say(f"{self.skipped} unusable frames skipped")
                return self.check.fitted, self.shape, self.image

    def _next_image(self, source):
        from streamer.frames import InvalidFrame, SourceEnded

        try:
            frame = source.read(1.0)
        except InvalidFrame:
            self.skipped += 1
            return None
        except SourceEnded as end:
            raise CommandError(_ended(self.name, self.read, self.frames, self.check, self.fits,
                                      end)) from None
        if frame is None:
            return None
        self.read += 1
        self.image = image = frame.image
        if self.shape is None:
            self.shape = image.shape[:2]
        elif image.shape[:2] != self.shape:
            raise CommandError(
                f"frames of different sizes in {self.name}: frame {self.read} is "
                f"{image.shape[1]}x{image.shape[0]}, the first was {self.shape[1]}x{self.shape[0]}; "
                "a profile is for one screen layout: record the scanner's output at one resolution")
        return image

    def _prepare(self, image):
        """The tracker's view of this frame (fan report, crop); motion restarts on a new layout."""
        from streamer.frames import Frame, InvalidFrame

        try:
            prepared = self.pre.process(Frame(self.read - 1, image))
        except InvalidFrame as exc:
            raise CommandError(f"{self.name}: {exc}") from None
        relayouts = (self.pre.screen_status().get("fan") or {}).get("relayouts", 0)
        if relayouts != self.layouts:  # the tracker saw the fan's edges move: a new layout
            self.layouts = relayouts
            self.motion.reset()
        self.motion.add(image)
        fan = prepared.fan
        if self.read % PROGRESS_EVERY == 0:
            fit = "" if fan.fit is None else f" fit {fan.fit:.2f}"
            _say(f"{self.read} frames read, fan {fan.mode}{fit} "
                 f"({'settled' if fan.settled else 'searching'})")
        return fan, prepared.crop

    def _confirmed(self, fan, crop) -> bool:
        """Count this frame towards the settled sector's confirmation (a new sector restarts it)."""
        from streamer.crop import PolarCrop

        if not (isinstance(crop, PolarCrop) and fan.mode == "polar" and fan.settled
                and fan.fit is not None):
            return False  # the tracker is (still, or again) looking: nothing to count
        now, check = Fitted.of(crop, fan.fit, self.read), self.check
        if check is None or now.moved(check.fitted) > CONFIRM_PX:
            self.fits.append(self.read)
            if check is not None:
                _say(f"the sector changed after {self.read} frames (by "
                     f"{now.moved(check.fitted):.0f} px): confirming the new one")
            else:
                _say(f"sector fitted after {self.read} frames (fit {now.fit:.2f}); confirming it "
                     f"over {CONFIRM_FRAMES} more")
            self.check = check = Confirmation(now, self.shape)
        if check.add(self.motion):
            return True
        if check.short and check.held == CONFIRM_FRAMES:
            _say(f"the live image reaches beyond the sector fitted after {check.fitted.frames} "
                 f"frames ({check.outside_live:.0%} of the band just outside its edges moves: "
                 "part of the fan was dark then); waiting for a refit")
        return False


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
