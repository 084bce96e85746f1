"""Live exam coverage: seen seconds by the same arithmetic as streamer report, exams that start
when told or when the probe comes back after a while without a fan."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from streamer.coverage import MAX_STEP_S, ExamCoverage

FRAME_NS = 33_333_333  # 30 fps
CLASSES = ("head", "spine")


def result(seq, present=(), familiar=True, frozen=False, fan="polar", t_ns=None):
    classes = [SimpleNamespace(name=n, present=n in present) for n in CLASSES]
    return SimpleNamespace(seq=seq, t_source_ns=seq * FRAME_NS if t_ns is None else t_ns,
                           timing=None, classes=classes, familiar=familiar, frozen=frozen,
                           fan=SimpleNamespace(mode=fan))


def test_seen_seconds_are_the_frames_shown_and_nothing_else():
    credited = []
    cov = ExamCoverage(CLASSES, exam="e1", on_seen=lambda name, s: credited.append((name, s)))
    for seq in range(60):
        cov.update(result(seq, ("head",) if 10 <= seq < 40 else ()))
    head = cov.seen["head"]
    assert head.seconds == pytest.approx(30 * FRAME_NS / 1e9, abs=1e-12)  # frames 10..39
    assert head.results == 30 and head.first_s == pytest.approx(10 * FRAME_NS / 1e9, abs=1e-12)
    assert cov.status()["regions"]["head"]["seconds"] == 1.0  # rounded to the millisecond
    assert cov.seen["spine"].seconds == 0
    assert sum(s for n, s in credited if n == "head") == pytest.approx(head.seconds, abs=1e-12)


def test_unfamiliar_frozen_lost_and_paused_frames_are_not_seen():
    cov = ExamCoverage(CLASSES, exam="e1")
    frames = [result(0, ("head",)), result(1, ("head",), familiar=False), result(2, ("head",)),
              result(3, ("head",), frozen=True), result(4, ("head",)),
              result(6, ("head",)),  # seq 5 lost: half the step is seq 5's, never seen
              result(7, ("head",), t_ns=100 * 10**9)]  # then a long pause: at most MAX_STEP_S
    for r in frames:
        cov.update(r)
    want = (FRAME_NS  # 0
            + FRAME_NS  # 2
            + FRAME_NS  # 4 (to 6: two steps, one of them 4's)
            ) / 1e9 + MAX_STEP_S  # 6, up to the paused 7
    assert cov.seen["head"].seconds == pytest.approx(want, abs=1e-12)


def test_a_new_exam_when_told_and_when_the_probe_comes_back():
    cov = ExamCoverage(CLASSES, exam="first", no_fan_s=10.0)
    cov.update(result(0, ("head",)))
    cov.update(result(1, ("head",)))
    assert cov.new_exam("second") == "second"
    assert cov.update(result(2)) == "second" and cov.status()["started_by"] == "told"
    assert cov.status()["regions"]["head"]["seconds"] == 0  # the new exam starts empty
    cov.update(result(3, fan="full", t_ns=4 * FRAME_NS))
    cov.update(result(4, fan="full", t_ns=9 * 10**9))  # no fan for 9 s: the same exam
    assert cov.update(result(5, t_ns=9 * 10**9 + FRAME_NS)) == "second"
    cov.update(result(6, fan="full", t_ns=12 * 10**9))
    exam = cov.update(result(7, ("spine",), t_ns=20 * 10**9))  # fan back after 11 s without
    assert exam != "second" and cov.status()["started_by"] == "no fan for 10 s"
    assert cov.exams == 3
