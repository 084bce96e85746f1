"""Which frames an exam keeps per region: the best k, never two near-duplicates (close in time or
in content), never a frame whose screen could not be read; and the publishing thread's pre-filter
never turns away a frame the selection would have kept."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.crop import Crop, FanReport
from streamer.frames import ClassResult, FrameResult, Timing
from streamer.keyframes.select import (
    MIN_INSET,
    Candidate,
    RegionBest,
    frame_usable,
    region_quality,
    worth_a_look,
)

S = 1_000_000_000  # ns in a second
CROP = Crop(x=100, y=50, w=400, h=300, size=224)


def thumb(view: int) -> np.ndarray:
    """A unit thumbnail per view: the same view gives the same one, others are uncorrelated."""
    v = np.random.default_rng(view).standard_normal(32 * 32).astype(np.float32)
    v -= v.mean()
    return v / np.linalg.norm(v)


def cand(t_s: float, quality: float, view: int | None = None) -> Candidate:
    return Candidate("head", int(t_s), int(t_s * S), quality, thumb(int(t_s * 10) if view is None
                                                                     else view))


def test_the_best_k_are_kept_best_first_and_the_worst_gives_way():
    best = RegionBest(k=3, min_gap_s=2.0)
    for c in (cand(0, 0.5), cand(10, 0.9), cand(20, 0.7)):
        best.commit(best.decide(c))
    assert [c.quality for c in best.kept] == [0.9, 0.7, 0.5]
    assert best.decide(cand(30, 0.4)) is None  # worse than the worst of a full set
    d = best.decide(cand(40, 0.8))
    assert [x.quality for x in d.drop] == [0.5]
    best.commit(d)
    assert [c.quality for c in best.kept] == [0.9, 0.8, 0.7]


def test_a_frame_close_in_time_to_a_kept_one_is_a_duplicate():
    best = RegionBest(k=3, min_gap_s=2.0)
    best.commit(best.decide(cand(10, 0.8)))
    assert best.decide(cand(11.5, 0.7)) is None  # 1.5 s later, another view, not better: refused
    assert best.decide(cand(8.5, 0.8)) is None  # as good is not better
    better = best.decide(cand(11.5, 0.9))  # better: it replaces the one it duplicates
    assert [x.t_ns for x in better.drop] == [10 * S]
    assert best.decide(cand(12.0, 0.1)).drop == ()  # 2 s apart: not a duplicate, room left


def test_a_frame_showing_a_kept_view_is_a_duplicate_however_far_in_time():
    best = RegionBest(k=3, min_gap_s=2.0, duplicate_corr=0.9)
    best.commit(best.decide(cand(10, 0.8, view=7)))
    assert best.decide(cand(60, 0.7, view=7)) is None  # a minute later, the same picture
    near = thumb(7) + 0.2 * thumb(8)
    near /= np.linalg.norm(near)  # correlation 0.98 with view 7
    assert best.decide(Candidate("head", 61, 61 * S, 0.7, near)) is None
    assert best.decide(cand(60, 0.7, view=9)).drop == ()  # another view: kept beside it


def test_a_better_duplicate_of_several_kept_frames_replaces_them_all():
    best = RegionBest(k=3, min_gap_s=2.0)
    for c in (cand(10, 0.5, view=1), cand(30, 0.6, view=2)):
        best.commit(best.decide(c))
    d = best.decide(cand(11, 0.9, view=2))  # close in time to one, same view as the other
    assert sorted(x.quality for x in d.drop) == [0.5, 0.6]
    best.commit(d)
    assert [c.quality for c in best.kept] == [0.9]


def _result(**kw) -> FrameResult:
    fields = dict(stream="main", seq=1, t_source_ns=0, frame_shape=(480, 640), classes=(),
                  timing=Timing(capture=0), image=np.zeros((480, 640), np.uint8), crop=CROP,
                  familiar=True, fan=FanReport("sector", 0.8, True))
    return FrameResult(**{**fields, **kw})


@pytest.mark.parametrize("change", [dict(frozen=True), dict(familiar=False),
                                    dict(fan=FanReport("sector", None, settled=False)),
                                    dict(crop=None), dict(image=None)])
def test_a_frozen_unfamiliar_or_unsettled_screen_is_never_usable(change):
    assert frame_usable(_result())
    assert not frame_usable(_result(**change))


def test_a_region_is_a_candidate_only_present_confident_and_well_inside_the_fan():
    centre = (CROP.x + CROP.w // 2, CROP.y + CROP.h // 2)
    good = ClassResult("head", 0.9, True, centre, None)
    # confidence: log-odds of 0.9 above the threshold's, as a share of 0.999's; centre: x1
    assert region_quality(good, CROP, 0.5) == pytest.approx(math.log(9) / math.log(999))
    assert region_quality(ClassResult("head", 0.9, False, centre, None), CROP, 0.5) is None
    assert region_quality(ClassResult("head", 0.45, True, centre, None), CROP, 0.5) is None
    assert region_quality(ClassResult("head", 0.9, True, None, None), CROP, 0.5) is None
    edge_x = CROP.x + CROP.w * MIN_INSET / 2 * 0.9  # inside the rectangle, too near its edge
    assert region_quality(ClassResult("head", 0.9, True, (edge_x, centre[1]), None), CROP, 0.5) is None
    inside = CROP.x + CROP.w * MIN_INSET / 2 * 1.1
    assert region_quality(ClassResult("head", 0.9, True, (inside, centre[1]), None), CROP, 0.5)
    # nearer the centre is better, and so is a higher score
    off = ClassResult("head", 0.9, True, (centre[0] + 100, centre[1]), None)
    assert region_quality(off, CROP, 0.5) < region_quality(good, CROP, 0.5)
    assert region_quality(ClassResult("head", 0.99, True, centre, None), CROP, 0.5) > \
        region_quality(good, CROP, 0.5)


def test_confidence_comes_first_and_scores_near_1_still_differ():
    """A limb taken for the spine at 0.988 in the middle of the view must not beat the spine's
    own frames at 0.9999 off to one side (it did under a linear margin on a simulated sweep)."""
    centre = (CROP.x + CROP.w // 2, CROP.y + CROP.h // 2)
    aside = (CROP.x + CROP.w // 4, centre[1])  # half way to the edge: inset 0.5
    doubtful = region_quality(ClassResult("spine", 0.988, True, centre, None), CROP, 0.5)
    sure = region_quality(ClassResult("spine", 0.9999, True, aside, None), CROP, 0.5)
    assert sure == pytest.approx(0.75) and doubtful == pytest.approx(math.log(0.988 / 0.012)
                                                                     / math.log(999))
    assert sure > doubtful


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(1, 20), st.integers(0, 3)),
                min_size=1, max_size=25), st.integers(1, 4))
def test_the_pre_filter_never_refuses_what_the_selection_would_keep(frames, k):
    """(tenth of a second, quality in twentieths, view) in any order: worth_a_look False only
    where decide() refuses; at every step at most k kept, no two of them near-duplicates."""
    best = RegionBest(k=k, min_gap_s=1.0)
    for t, q, view in frames:
        c = Candidate("head", t, t * S // 10, q / 20, thumb(view))
        d = best.decide(c)
        if not worth_a_look(best.view(), k, c.t_ns, c.quality, best.min_gap_ns):
            assert d is None
        if d is not None:
            best.commit(d)
        assert len(best.kept) <= k
        for i, a in enumerate(best.kept):
            for b in best.kept[i + 1:]:
                assert abs(a.t_ns - b.t_ns) >= best.min_gap_ns and float(a.thumb @ b.thumb) <= 0.9
