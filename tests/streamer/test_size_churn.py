"""A source whose frame size changes from frame to frame (a capture card renegotiating, a feed that
alternates outputs): each size keeps its own fan, so the results equal those of that size's
frames alone; the sizes kept are bounded; the log says so a bounded number of times."""

import logging
import time

import numpy as np
import pytest

from engines.simulator import LiveFeed
from streamer.config import PreprocessConfig
from streamer.fan import FanTracker
from streamer.frames import Frame
from streamer.preprocess import MAX_SIZES, RESUME_AFTER, Preprocessor
from tests.screens import ANNOTATIONS, HospitalScreen, ScreenSpec

SIZES = ((960, 540), (640, 360), (800, 600))  # three outputs of one scanner, smaller than life
FRAMES = 60  # 20 of each size: the fan settles on each within its first 10


def screens(sizes=SIZES, seed: int = 11):
    spec = dict(ui="black", annotations=ANNOTATIONS)
    return [HospitalScreen(LiveFeed(seed=seed), ScreenSpec(width=w, height=h, **spec))
            for w, h in sizes]


def preprocessor() -> Preprocessor:
    return Preprocessor(PreprocessConfig(representation="polar"), 64)


def outcome(p) -> tuple:
    """Everything a result takes from preprocessing: the crop and its sector, how the fan was
    found, the screen checks, and the model input itself."""
    c = p.crop
    polar = c.polar.geometry if getattr(c, "polar", None) is not None else None
    return (c.x, c.y, c.w, c.h, polar), p.fan, p.frozen, p.doppler, p.tensor.tobytes()


@pytest.fixture
def looks(monkeypatch):
    """Counts the fan searches (FanTracker.look calls: a detection, a fit attempt or both)."""
    calls = []
    real = FanTracker.look

    def counted(self, image, detect, fit):
        calls.append(image.shape[:2])
        return real(self, image, detect, fit)

    monkeypatch.setattr(FanTracker, "look", counted)
    return calls


def test_alternating_sizes_give_what_each_size_alone_gives(looks):
    """Frame i at size i mod 3: every result equals that of a run over that size's frames alone
    (crop, sector, settled, frozen, Doppler, model input), and the searches are theirs too, not
    one per frame. Resetting the fan at every size change searched on every frame, served crops
    found from brightness and marked every result unsettled."""
    shown = screens()
    churn, alone = preprocessor(), [preprocessor() for _ in SIZES]
    got, want, searches = [], [], 0
    for i in range(FRAMES):
        k = i % len(SIZES)
        image = shown[k].frame(i).image
        before = len(looks)
        got.append(outcome(churn.process(Frame(i, image))))
        searches += len(looks) - before
        want.append(outcome(alone[k].process(Frame(i, image))))
    assert got == want
    assert searches == len(looks) - searches  # the same searches as the sizes alone
    assert searches < FRAMES  # a look per frame while fitting, then one in WATCH_LOOK_EVERY
    settled = [fan.settled for _, fan, *_ in got[-len(SIZES) * 5:]]
    assert all(settled)  # every size settled by its 15th frame


def test_searches_run_apart_count_for_their_own_size():
    """As on the pipeline's search thread: each search runs after a frame of another size has
    been served. It still feeds its own size's fan (a search on a frame of another size than the
    current one was void), so every size settles."""
    shown = screens()
    pre, pending = preprocessor(), []
    pre.request_search = lambda image, detect, fit: pending.append((image, detect, fit))
    out = []
    for i in range(FRAMES):
        out.append(pre.process(Frame(i, shown[i % len(SIZES)].frame(i).image)))
        while len(pending) > 1:  # the one requested on this frame waits for the next frame
            pre.search(*pending.pop(0))
    assert all(p.fan.settled and p.fan.mode == "polar" for p in out[-len(SIZES) * 3:])
    assert sorted(pre.sizes) == sorted(SIZES)


def test_sizes_kept_are_bounded_and_each_is_searched_anew_once_dropped():
    """A source cycling through more sizes than are kept cannot grow what is kept: the least
    recently used size goes, and its frames are searched afresh when it comes back."""
    rng = np.random.default_rng(0)
    sizes = [(320 + 16 * k, 240 + 8 * k) for k in range(2 * MAX_SIZES)]
    images = {s: rng.integers(0, 255, (s[1], s[0]), np.uint8) for s in sizes}
    pre = Preprocessor(PreprocessConfig(), 64)
    for i in range(3 * len(sizes)):
        size = sizes[i % len(sizes)]
        pre.process(Frame(i, images[size]))
        assert len(pre.sizes) <= MAX_SIZES and pre.sizes[-1] == size
    assert pre.sizes == sizes[-MAX_SIZES:]


def _lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name.startswith("streamer") and r.levelno >= logging.INFO]


def test_log_lines_stay_bounded_when_the_size_changes_every_frame(caplog):
    """Three sizes in turn: a few lines as each size's fan is found, then none (it was one line
    about the size change and one about the fan on every frame). More sizes in turn than are
    kept: the size-change line is rate-limited and the searches made afresh are not logged."""
    caplog.set_level(logging.INFO, logger="streamer")
    shown = screens()
    pre = preprocessor()
    for i in range(FRAMES):
        pre.process(Frame(i, shown[i % len(SIZES)].frame(i).image))
    per_size = 4  # the fan from brightness, from motion, the sector fitted, the size change
    assert len(_lines(caplog)) <= per_size * len(SIZES)

    caplog.clear()
    rng = np.random.default_rng(1)
    sizes = [(320 + 16 * k, 240 + 8 * k) for k in range(2 * MAX_SIZES)]
    images = [rng.integers(0, 255, (h, w), np.uint8) for w, h in sizes]
    pre = Preprocessor(PreprocessConfig(), 64)
    started = time.monotonic()
    for i in range(10 * len(sizes)):
        pre.process(Frame(i, images[i % len(sizes)]))
    interval = 5.0  # the pipeline's rate-limited log: a line per 5 s at most
    limited = 1 + int((time.monotonic() - started) / interval) + 1
    assert len(_lines(caplog)) <= per_size * MAX_SIZES + limited


def test_a_size_back_after_a_while_keeps_its_fan_flagged_until_a_look_confirms_it():
    """Frames of one size, then of another for over RESUME_AFTER frames, then the first again:
    it is cropped by its own fitted sector at once (not searched anew from brightness), its
    results flagged unsettled until a look at the moving screen confirms the fan, within the
    start-up schedule's first looks (after 1 and 2 frames)."""
    a, b = screens(SIZES[:2])
    pre = preprocessor()
    first = [pre.process(Frame(i, a.frame(i).image)) for i in range(20)]
    assert first[-1].fan.settled
    for i in range(20, 20 + RESUME_AFTER + 5):
        pre.process(Frame(i, b.frame(i).image))
    start = 20 + RESUME_AFTER + 5
    back = [pre.process(Frame(i, a.frame(i).image)) for i in range(start, start + 8)]
    assert back[0].crop.polar is first[-1].crop.polar  # the same fitted sector, kept
    assert not back[0].fan.settled
    assert all(p.fan.settled for p in back[3:])
    assert all(p.crop.polar is first[-1].crop.polar for p in back)
