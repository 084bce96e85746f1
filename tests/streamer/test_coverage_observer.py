"""benchmarks/coverage_observer.py: how far the labels' 40% rule lets a reader of the screen stray,
and what an observer that sees the screen perfectly but not beyond the fan's edge counts (its table
in docs/exam-summary.md: tests/streamer/test_coverage_doc.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import coverage_observer  # noqa: E402


def test_the_band_is_where_the_count_stays_within_5_percent():
    """A part sliding in evenly, 0 to 100% inside over 1001 frames: 601 frames have at least 40%.
    Within 5% is 571..631 frames, so from 37.0% (631 frames) to 43.0% (571); 36.9% counts 632
    and 43.1% counts 570."""
    shares = np.arange(1001) / 1000
    assert coverage_observer.rule_band(shares) == (0.37, 0.43)


def test_a_steeper_slide_leaves_a_narrower_band():
    """The same slide-in over a tenth of the frames, the part whole inside for the rest: the
    labelled frames are mostly whole-inside ones, so the count moves little with the threshold and
    the band widens. Entering slowly (half the frames near the rule) narrows it."""
    fast = np.concatenate([np.arange(101) / 100, np.ones(900)])
    slow = np.concatenate([np.full(450, 0.35), np.full(450, 0.45), np.ones(101)])
    lo_fast, hi_fast = coverage_observer.rule_band(fast)
    lo_slow, hi_slow = coverage_observer.rule_band(slow)
    assert (lo_fast, hi_fast) == (0.0, 0.88)  # 961 labelled; 88.1% counts 912, under 913
    assert (lo_slow, hi_slow) == (0.351, 0.45)  # 35% counts 1001 of 551, 45.1% counts 101


def test_a_region_never_in_view_has_no_band():
    assert coverage_observer.rule_band(np.full(30, 0.39)) is None


def test_the_fitted_threshold_calls_no_frame_against_the_labels_when_one_exists():
    """One part's slide-in: its visible area grows with its share, so the area at 40% separates
    the labels exactly."""
    shares = np.arange(101) / 100
    areas = 0.1 * shares
    t = coverage_observer.fit_threshold(shares, areas)
    assert t == pytest.approx(0.04)
    calls = coverage_observer.observer_calls(shares, areas, t)
    assert np.array_equal(calls, shares >= 0.4)


def test_a_fitted_threshold_is_judged_as_it_will_be_applied():
    """Three unlabelled frames and one labelled one share an area of 0.05; one labelled frame shows
    0.09. A threshold of 0.05 calls all four alike (3 frames against the labels), 0.09 misses one:
    0.09 is the fit. Counting a cut between the equal areas as if it could split them would score
    0.05 as exact and pick it."""
    shares = np.array([0.3, 0.3, 0.3, 0.5, 0.5])
    areas = np.array([0.05, 0.05, 0.05, 0.05, 0.09])
    assert coverage_observer.fit_threshold(shares, areas) == 0.09


def test_a_region_never_cut_by_the_fan_fits_no_area_threshold():
    """Every frame shows all of the part or none of it: nothing to fit, and the observer calls it
    in view exactly when it is whole inside."""
    shares, areas = np.array([0.0, 1.0, 1.0, 0.0]), np.array([0.0, 0.1, 0.1, 0.0])
    t = coverage_observer.fit_threshold(shares, areas)
    assert t == float("inf")
    assert coverage_observer.observer_calls(shares, areas, t).tolist() == [False, True, True, False]


def test_a_part_whole_inside_is_in_view_whatever_its_area():
    shares, areas = np.array([1.0, 0.5, 0.0]), np.array([0.001, 0.001, 0.0])
    assert coverage_observer.observer_calls(shares, areas, threshold=0.5).tolist() == [True, False, False]


def test_parts_of_two_sizes_cannot_both_be_counted_from_their_visible_area():
    """The point of the measure: the labels' 40% of a part 1.25 times larger shows 1.25 times the
    area, so one threshold on what the screen shows counts one of two sweeps long or short by
    more than 5%, however it is fitted. With parts of one size the same fit is exact for both."""
    shares = np.arange(1001) / 1000  # one slide-in per sweep

    def errors(sizes):
        areas = [s * shares for s in sizes]
        t = coverage_observer.fit_threshold(np.tile(shares, len(sizes)), np.concatenate(areas))
        labelled = (shares >= 0.4).sum()
        return [abs(coverage_observer.observer_calls(shares, a, t).sum() - labelled) / labelled
                for a in areas]

    assert max(errors([0.08, 0.10])) > 0.05
    assert errors([0.10, 0.10]) == [0.0, 0.0]


def test_seed_lists_read_ranges():
    assert coverage_observer.seed_list("1,2,3") == [1, 2, 3]
    assert coverage_observer.seed_list("4-7,10") == [4, 5, 6, 7, 10]


@pytest.mark.parametrize("bad", ["7-4", "a", "1,,2", "-3"])
def test_a_bad_seed_list_is_refused(bad):
    with pytest.raises(ValueError):
        coverage_observer.seed_list(bad)


def test_the_visible_area_is_the_share_of_the_whole_part_at_the_screens_scale():
    """On a simulated sweep a part's visible area over its share is its whole area in units of the
    fan's depth squared: one number up to the pixels its outline touches as it turns (at most 2.9%
    over 300 frames of seeds 1-3; 5% allowed), between a hundredth and a fifth of the depth
    squared. The same part differs between sweeps by far more (the head: 0.116 in seed 1, 0.166 in
    seed 3), which is what an observer of the screen cannot see past the fan's edge."""
    from keyframes_check import visible_parts

    from engines.classes import REGIONS
    from engines.simulator import LiveFeed

    whole_head = []
    for seed in (1, 3):
        shares, areas = visible_parts(LiveFeed(seed=seed, fps=30.0), 300)
        assert (areas[shares == 0] == 0).all()
        for i, region in enumerate(REGIONS):
            shown = shares[:, i] > 0.05
            if not shown.any():
                continue
            whole = areas[shown, i] / shares[shown, i]
            assert whole.max() / whole.min() < 1.05, (seed, region)
            assert 0.01 < whole.min() and whole.max() < 0.2, (seed, region)
            if region == "head":
                whole_head.append(float(np.median(whole)))
    assert len(whole_head) == 2 and whole_head[1] / whole_head[0] > 1.3
