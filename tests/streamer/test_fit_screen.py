"""streamer fit-screen: a scanner profile from a recorded screen, loaded back by `streamer run`'s
config loader, cropping frames to the fitted sector with no search; the errors are one line."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from engines.simulator import LiveFeed
from streamer.cli import fit_screen_cmd as fs
from streamer.cli import main
from streamer.cli import sector_check as sc
from streamer.config import PreprocessConfig, load_config
from streamer.crop import PolarCrop
from streamer.frames import Frame, SourceEnded
from streamer.preprocess import Preprocessor
from tests.screens import HospitalScreen, ScreenSpec, write_video

W, H = 960, 540
CLIP_FRAMES = 90  # this screen settles within 10 frames; 30 more confirm it


def _screen() -> HospitalScreen:
    return HospitalScreen(LiveFeed(seed=11), ScreenSpec(
        annotations=("bodymark", "resultbox", "calipers"), ui="black", width=W, height=H))


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """(path, screen): a recorded screen with live scanning."""
    screen = _screen()
    path = tmp_path_factory.mktemp("fit_screen") / "clip.mp4"
    write_video(screen, range(CLIP_FRAMES), str(path))
    return path, screen


def _errors(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines()
            if line.startswith("streamer fit-screen: error:")]


def test_the_profile_holds_the_true_sector_and_streamer_run_loads_it(clip, tmp_path, capsys):
    path, screen = clip
    out = tmp_path / "site.toml"
    assert main(["fit-screen", str(path), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""  # the profile went to the file
    assert f"written to {out}" in captured.err.splitlines()[-1]
    text = out.read_text()
    assert text.startswith(f"# scanner profile written by streamer fit-screen {path}: {W}x{H}, "
                           "sector fitted after ")

    config = load_config(out)  # what `streamer run --config` reads
    pre_config = config.preprocess
    assert pre_config.mode == "roi"
    x, y, w, h = pre_config.roi
    assert x >= 0 and y >= 0 and x + w <= W and y + h <= H
    ax, ay, r0, r1, a0, a1 = pre_config.sector
    truth = screen.frame(0).views[0].sector
    assert math.dist((ax, ay), truth.apex) <= 3
    assert abs(r0 - truth.r_min) <= 5 and abs(r1 - truth.r_max) <= 5
    assert abs(a0 - math.degrees(truth.angle_min)) <= 1
    assert abs(a1 - math.degrees(truth.angle_max)) <= 1
    for v in pre_config.sector:
        assert round(v, 1) == v  # rounded to 0.1
    # the whole visible fan lies in the profile's crop
    tx, ty, tw, th = screen.frame(0).views[0].rect
    assert x <= tx and y <= ty and x + w >= tx + tw and y + h >= ty + th


def test_a_profile_crops_the_first_frame_with_no_search(clip, tmp_path, capsys, monkeypatch):
    path, screen = clip
    out = tmp_path / "site.toml"
    assert main(["fit-screen", str(path), "--out", str(out)]) == 0
    config = load_config(out).preprocess
    import streamer.fan as fan

    def no_search(*_, **__):
        raise AssertionError("a scanner profile must not search")

    monkeypatch.setattr(fan.FanTracker, "_detect", no_search)
    monkeypatch.setattr(fan.SectorFitter, "__call__", no_search)
    pre = Preprocessor(PreprocessConfig(mode=config.mode, roi=config.roi, sector=config.sector,
                                        representation="polar"), 224)
    prepared = pre.process(Frame(0, screen.frame(0).image))
    crop = prepared.crop
    assert isinstance(crop, PolarCrop)
    assert prepared.fan.mode == "roi" and prepared.fan.settled
    assert (crop.x, crop.y, crop.w, crop.h) == config.roi
    g = crop.polar.geometry  # relative to the crop's origin: back in source pixels
    got = (crop.x + g.apex[0], crop.y + g.apex[1], g.r_min, g.r_max, math.degrees(g.angle_min),
           math.degrees(g.angle_max))
    assert np.allclose(got, config.sector, atol=1e-6)
    assert prepared.tensor.shape == (1, 1, 224, 224) and prepared.tensor.max() > 0


def test_the_profile_goes_to_stdout_without_out(clip, capsys):
    path, _ = clip
    assert main(["fit-screen", str(path), "--frames", "60"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].startswith(f"# scanner profile written by streamer fit-screen {path}: ")
    assert lines[2:4] == ["[preprocess]", 'mode = "roi"']
    assert lines[4].startswith("roi = [") and lines[5].startswith("sector = [")
    progress = [line for line in captured.err.splitlines() if "frames read" in line]
    assert progress and all(line.startswith("fit-screen: ") for line in progress)
    assert "printed on stdout" in captured.err.splitlines()[-1]


def test_a_still_video_has_no_live_sector(clip, tmp_path, capsys):
    _, screen = clip
    still = tmp_path / "still.mp4"
    writer = cv2.VideoWriter(str(still), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (W, H))
    image = screen.frame(0).image
    for _ in range(40):
        writer.write(image)
    writer.release()
    assert main(["fit-screen", str(still), "--frames", "30"]) == 2
    errors = _errors(capsys)
    assert errors == [f"streamer fit-screen: error: no live curvilinear sector found in the "
                      f"first 30 frames of {still}: the screen did not move, the fan is a linear "
                      "probe's rectangle, or it changed layout; record a few seconds of live "
                      "scanning"]


def test_a_missing_or_unreadable_video_is_one_line(tmp_path, capsys):
    assert main(["fit-screen", str(tmp_path / "nope.mp4")]) == 2
    assert _errors(capsys) == [f"streamer fit-screen: error: video file not found: "
                               f"{tmp_path / 'nope.mp4'}"]
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video")
    assert main(["fit-screen", str(junk)]) == 2
    assert len(_errors(capsys)) == 1


def test_an_existing_out_needs_force(clip, tmp_path, capsys):
    path, _ = clip
    out = tmp_path / "site.toml"
    out.write_text("# mine\n")
    assert main(["fit-screen", str(path), "--out", str(out)]) == 2
    assert _errors(capsys) == [f"streamer fit-screen: error: --out {out} exists; use --force to "
                               "overwrite it"]
    assert out.read_text() == "# mine\n"
    assert main(["fit-screen", str(path), "--out", str(out), "--force"]) == 0
    assert load_config(out).preprocess.sector is not None
    assert [p.name for p in tmp_path.iterdir()] == ["site.toml"]  # no temporary file left


@pytest.mark.parametrize("frames", ["0", "100001"])
def test_frames_is_bounded(clip, frames, capsys):
    assert main(["fit-screen", str(clip[0]), "--frames", frames]) == 2
    assert _errors(capsys) == [f"streamer fit-screen: error: --frames must be in 1..100000, got "
                               f"{frames}"]


class _Frames:
    """A source of the given images, then SourceEnded."""

    def __init__(self, images):
        self.images = list(images)

    def read(self, timeout):
        if not self.images:
            raise SourceEnded("end")
        return Frame(0, self.images.pop(0))

    def close(self):
        pass


def test_frames_of_different_sizes_are_refused(monkeypatch, capsys):
    screen = _screen()
    images = [screen.frame(i).image for i in range(3)] + [np.zeros((480, 640, 3), np.uint8)]
    monkeypatch.setattr(fs, "_open_video", lambda spec: _Frames(images))
    assert main(["fit-screen", "clip.mp4"]) == 2
    errors = _errors(capsys)
    assert len(errors) == 1 and "frames of different sizes in clip.mp4: frame 4 is 640x480, the " \
                                "first was 960x540" in errors[0]


def test_a_clip_that_ends_before_the_confirmation_says_so(monkeypatch, capsys):
    screen = _screen()
    images = [screen.frame(i).image for i in range(20)]  # settles, then ends
    monkeypatch.setattr(fs, "_open_video", lambda spec: _Frames(images))
    assert main(["fit-screen", "clip.mp4"]) == 2
    errors = _errors(capsys)
    assert len(errors) == 1 and "more settled frames are needed to confirm it" in errors[0]


def test_a_fit_that_leaves_live_image_outside_its_edges_does_not_hold():
    """The band just outside a short fit's far arc is live (the fan goes on there); a fit that
    holds the whole fan has still surroundings."""
    g = _screen().frame(0).views[0].sector
    short = sc.Fitted((0, 0, W, H), g.apex, g.r_min, g.r_max * 0.6, g.angle_min, g.angle_max,
                      0.7, 10)
    whole = sc.Fitted((0, 0, W, H), g.apex, g.r_min, g.r_max, g.angle_min, g.angle_max, 0.7, 10)
    assert whole.moved(whole) == 0 and short.moved(whole) > sc.CONFIRM_PX
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0:H, 0:W]
    dx, dy = xs + 0.5 - g.apex[0], ys + 0.5 - g.apex[1]
    r, a = np.hypot(dx, dy), np.arctan2(dx, dy)
    fan = (r >= g.r_min) & (r <= g.r_max) & (a >= g.angle_min) & (a <= g.angle_max)
    motion = sc.Motion()
    checks = {"short": sc.Confirmation(short, (H, W)), "whole": sc.Confirmation(whole, (H, W))}
    held = {}
    for _ in range(sc.CONFIRM_FRAMES):
        motion.add(np.where(fan, rng.integers(30, 220, (H, W)), 0).astype(np.uint8))
        held = {k: c.add(motion) for k, c in checks.items()}
    assert held == {"short": False, "whole": True}
    assert checks["short"].short and checks["short"].outside_live > 0.9
    assert checks["whole"].outside_live == 0
