"""The keyframes sink with synthetic results: what lands in the exam folder (never more than k
frames per region, replaced files gone, the index naming exactly the files there, an event line
per change), what is never kept, a publish that never waits for the worker, and an index that is
never seen half-written."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamer.crop import Crop, FanReport
from streamer.errors import UserError
from streamer.frames import ClassResult, FrameResult, Timing
from streamer.sinks import keyframes_sink as sink_module
from streamer.sinks import parse_sink_spec, sink_class

S = 1_000_000_000
CLASSES = ("head", "spine", "Background")
CROP = Crop(x=100, y=60, w=320, h=240, size=224)
CENTRE = (CROP.x + CROP.w // 2, CROP.y + CROP.h // 2)


def result(seq: int, t_s: float, head: float = 0.0, spine: float = 0.0, view: int | None = None,
           peak=CENTRE, **kw) -> FrameResult:
    """A 480x640 frame whose fan crop shows ``view`` (default: its own), head and spine with
    these scores (present at 0.5 and above), both peaking at ``peak``."""
    rng = np.random.default_rng(seq if view is None else 10_000 + view)
    image = np.zeros((480, 640, 3), np.uint8)
    image[CROP.y:CROP.y + CROP.h, CROP.x:CROP.x + CROP.w] = rng.integers(0, 255, (CROP.h, CROP.w, 1))
    box = (peak[0] - 20, peak[1] - 20, peak[0] + 20, peak[1] + 20)
    classes = (ClassResult("head", head, head >= 0.5, peak, box),
               ClassResult("spine", spine, spine >= 0.5, peak, box),
               ClassResult("Background", 0.9, True, None, None))
    maps = np.zeros((3, 14, 14), np.uint8)
    maps[:2, 5:9, 5:9] = 255
    fields = dict(stream="main", seq=seq, t_source_ns=int(t_s * S), frame_shape=(480, 640),
                  classes=classes, timing=Timing(capture=seq), maps=maps, image=image, crop=CROP,
                  ood=0.2, familiar=True, fan=FanReport("sector", 0.8, True))
    return FrameResult(**{**fields, **kw})


@pytest.fixture
def sink_for(tmp_path):
    opened = []

    def make(spec=None, **options):
        kind, parsed = parse_sink_spec(spec or f"keyframes:{tmp_path / 'exams'},exam=e1")
        sink = sink_class(kind)(parsed, **options)
        opened.append(sink.open())
        return sink

    yield make
    for sink in opened:
        sink.close()


def publish(sink, *results) -> None:
    for r in results:
        sink.publish(r)
        assert sink.wait_idle(10), "the keyframes worker did not finish a result"


def on_disk(folder: Path) -> dict[str, set[str]]:
    """Each region folder's files (index and event log aside), as index paths."""
    return {d.name: {f"{d.name}/{f.name}" for f in d.iterdir()} for d in folder.iterdir()
            if d.is_dir()}


def named_by_index(index: dict) -> dict[str, set[str]]:
    return {region: {r[key] for r in kept for key in ("crop", "overlay") if r[key]}
            for region, kept in index["regions"].items() if kept}


def test_the_best_k_per_region_and_never_more_files_than_k(sink_for):
    sink = sink_for(k=2)
    folder = sink.folder
    steps = [result(0, 0.0, head=0.7), result(1, 5.0, head=0.9, spine=0.6), result(2, 10.0, head=0.6),
             result(3, 15.0, head=0.99, spine=0.95), result(4, 20.0, spine=0.8),
             result(5, 20.5, spine=0.97)]  # 0.5 s after frame 4 and better: it replaces 4
    for r in steps:
        publish(sink, r)
        index = json.loads((folder / "index.json").read_text())
        disk = {k: v for k, v in on_disk(folder).items() if v}
        assert disk == named_by_index(index)  # the index names exactly the files there
        assert all(len(files) <= 2 * 2 for files in disk.values())  # crop + overlay, k = 2
    index = json.loads((folder / "index.json").read_text())
    assert [r["seq"] for r in index["regions"]["head"]] == [3, 1]
    assert [r["seq"] for r in index["regions"]["spine"]] == [5, 3]
    assert "Background" not in index["regions"]
    top = index["regions"]["head"][0]
    assert top == {"seq": 3, "t_s": 15.0, "t_source_ns": 15 * S, "score": 0.99,
                   "scores": {"head": 0.99, "spine": 0.95, "Background": 0.9}, "ood": 0.2,
                   "peak": list(CENTRE), "box": [CENTRE[0] - 20, CENTRE[1] - 20, CENTRE[0] + 20,
                                                 CENTRE[1] + 20],
                   "mm_per_px": None, "crop": "head/3.png", "overlay": "head/3_overlay.png",
                   "dicom": None}
    assert {k: index[k] for k in ("v", "exam", "stream", "k", "started_t_source_ns", "source")} == \
        {"v": 1, "exam": "e1", "stream": "main", "k": 2, "started_t_source_ns": 0,
         "source": {"kind": None, "study_uid": None}}
    events = [json.loads(line) for line in (folder / "keyframes.jsonl").read_text().splitlines()]
    replaced = [(e["region"], e["seq"], e["by"]) for e in events if e["event"] == "replaced"]
    assert replaced == [("head", 0, 3), ("spine", 1, 4), ("spine", 4, 5)]  # head 2: refused
    kept = [(e["region"], e["seq"]) for e in events if e["event"] == "kept"]
    assert kept == [("head", 0), ("head", 1), ("spine", 1), ("head", 3), ("spine", 3),
                    ("spine", 4), ("spine", 5)]


def test_the_pictures_are_the_fan_crop_and_the_crop_with_the_region_drawn(sink_for):
    sink = sink_for()
    r = result(7, 1.0, head=0.95)
    publish(sink, r)
    crop = cv2.imread(str(sink.folder / "head" / "7.png"), cv2.IMREAD_UNCHANGED)
    expected = r.image[CROP.y:CROP.y + CROP.h, CROP.x:CROP.x + CROP.w]
    assert np.array_equal(crop, expected)
    overlay = cv2.imread(str(sink.folder / "head" / "7_overlay.png"))
    assert overlay.shape == expected.shape
    # the map's hot cells lie at the crop's centre: tinted there, untouched in a far corner
    cy, cx = CROP.h // 2, CROP.w // 2
    assert not np.array_equal(overlay[cy - 5:cy + 5, cx - 30:cx - 25],
                              expected[cy - 5:cy + 5, cx - 30:cx - 25])
    assert np.array_equal(overlay[-20:, -20:], expected[-20:, -20:])


@pytest.mark.parametrize("flag", [dict(frozen=True), dict(familiar=False),
                                  dict(fan=FanReport("sector", None, settled=False)),
                                  dict(peak=(CROP.x + 3, CENTRE[1]))])
def test_a_frozen_unfamiliar_or_unsettled_stretch_is_never_kept(sink_for, flag):
    sink = sink_for()
    publish(sink, *(result(i, i * 3.0, head=0.99, spine=0.99, **flag) for i in range(10)))
    index = json.loads((sink.folder / "index.json").read_text())
    assert index["regions"] == {"head": [], "spine": []}
    assert on_disk(sink.folder) == {} and sink.kept == 0
    assert sink.handed == 1  # the first result (it starts the index); no other reached the worker


def test_publish_never_waits_for_a_stuck_worker(sink_for, monkeypatch):
    entered, release = threading.Event(), threading.Event()
    real = sink_module.write_png

    def stuck(path, image):
        entered.set()
        release.wait(30)
        real(path, image)

    monkeypatch.setattr(sink_module, "write_png", stuck)
    sink = sink_for()
    sink.publish(result(0, 0.0, head=0.9))
    assert entered.wait(10), "the worker never started writing"
    done = threading.Event()

    def more():
        for i in range(1, 6):
            sink.publish(result(i, i * 5.0, head=0.9 + i / 100))
        done.set()

    t = threading.Thread(target=more, daemon=True)
    t.start()
    try:
        assert done.wait(10), "publish waited for the stuck worker"
        assert sink.skipped == 4  # one result waits in the slot, the four before it were replaced
    finally:
        release.set()
    assert sink.wait_idle(10)
    index = json.loads((sink.folder / "index.json").read_text())
    assert [r["seq"] for r in index["regions"]["head"]] == [5, 0]


def test_a_failed_index_write_leaves_the_previous_index_whole(sink_for, monkeypatch):
    sink = sink_for()
    publish(sink, result(0, 0.0, head=0.8))
    before = (sink.folder / "index.json").read_bytes()
    real_fsync = os.fsync

    def full_disk(fd):  # the new index is half on its way to disk when the disk fills
        if os.readlink(f"/proc/self/fd/{fd}").endswith("index.json.tmp"):
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full_disk)
    publish(sink, result(1, 5.0, head=0.9))
    assert (sink.folder / "index.json").read_bytes() == before  # whole, and the old one
    assert json.loads(before)["regions"]["head"][0]["seq"] == 0
    assert sink.failed == 1 and sink.kept == 1
    assert on_disk(sink.folder) == {"head": {"head/0.png", "head/0_overlay.png"}}  # 1's files gone
    assert not [p for p in sink.folder.rglob("*") if p.name.endswith(".tmp")]
    monkeypatch.setattr(os, "fsync", real_fsync)
    publish(sink, result(2, 10.0, head=0.95))  # the next write goes through
    index = json.loads((sink.folder / "index.json").read_text())
    assert [r["seq"] for r in index["regions"]["head"]] == [2, 0]


def test_exam_folders_and_bad_options_are_one_line(tmp_path, sink_for):
    root = tmp_path / "exams"
    a = sink_for(f"keyframes:{root}", now=lambda: 1764892740.0)
    b = sink_for(f"keyframes:{root}", now=lambda: 1764892740.0)  # the same second
    assert (a.folder.name, b.folder.name) == ("20251204T235900Z", "20251204T235900Z-2")
    publish(sink_for(f"keyframes:{root},exam=used"), result(0, 0.0, head=0.9))
    for spec, words in ((f"keyframes:{root},exam=used", "already holds an exam"),
                        (f"keyframes:{root},exam=../up", "exam id"),
                        (f"keyframes:{root},k=0", "k must be in 1..100"),
                        (f"keyframes:{root},dicom=1,source=sim", "needs a dicom: source")):
        with pytest.raises(UserError, match=words) as err:
            sink_for(spec)
        assert "\n" not in str(err.value)
