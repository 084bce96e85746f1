"""Coverage computed exactly on synthetic records (30 fps, whole-ns source times): the time each
region was seen, what does not count (unfamiliar, frozen, missing results, a paused source),
first and last seen, the untrusted stretches and the latency percentiles, on the page."""

from __future__ import annotations

import re

import numpy as np

from streamer.cli import main
from streamer.report.coverage import MAX_FRAME_NS, summarise
from streamer.report.records import read_record
from tests.streamer.report_fixtures import det, t_ns, write_lines

SECOND = 1_000_000_000


def summary_of(tmp_path, lines, name="rec.jsonl"):
    rec = read_record(write_lines(tmp_path / name, lines)).streams["main"]
    return rec, summarise(rec)


def cov(summary, region):
    return next(c for c in summary.coverage if c.name == region)


def test_head_present_for_frames_10_to_39_at_30_fps_is_seen_for_exactly_one_second(tmp_path,
                                                                                   capsys):
    lines = [det(i, present=("head",) if 10 <= i <= 39 else ()) for i in range(60)]
    _, s = summary_of(tmp_path, lines)
    head = cov(s, "head")
    # 30 frame intervals: t(40) - t(10) = 1,333,333,333 - 333,333,333 ns
    assert head.seen_ns == t_ns(40) - t_ns(10) == SECOND
    assert head.frames == 30 and head.first_s == t_ns(10) / 1e9 and head.last_s == t_ns(39) / 1e9
    assert cov(s, "spine").seen_ns == 0 and cov(s, "spine").first_s is None
    # the span: 59 intervals plus the last frame's own (the run's median, 33,333,333 ns)
    assert s.span_ns == t_ns(59) + 33_333_333
    out = tmp_path / "r.html"
    assert main(["report", str(tmp_path / "rec.jsonl"), "--out", str(out)]) == 0
    row = re.search(r'<tr data-region="head" data-seen-ns="(\d+)">(.*?)</tr>', out.read_text())
    assert row.group(1) == str(SECOND) and "<td>1.000 s</td>" in row.group(2)
    assert "<td>0:00.3</td><td>0:01.3</td><td>0.90</td>" in row.group(2)  # first, last, best


def test_unfamiliar_and_frozen_frames_are_not_seen_time(tmp_path):
    lines = [det(i, present=("head",) if 10 <= i <= 39 else (),
                 familiar=not 20 <= i <= 24, frozen=30 <= i <= 32) for i in range(60)]
    _, s = summary_of(tmp_path, lines)
    # seen: frames 10..19, 25..29, 33..39: three runs of whole intervals
    expected = (t_ns(20) - t_ns(10)) + (t_ns(30) - t_ns(25)) + (t_ns(40) - t_ns(33))
    assert cov(s, "head").seen_ns == expected == 733_333_334
    assert cov(s, "head").frames == 22
    unfamiliar, frozen = s.stretches["unfamiliar"], s.stretches["frozen"]
    assert len(unfamiliar) == 1 and unfamiliar[0].frames == 5
    assert unfamiliar[0].duration_ns == t_ns(25) - t_ns(20)
    assert unfamiliar[0].start_s == t_ns(20) / 1e9 and unfamiliar[0].end_s == t_ns(25) / 1e9
    assert len(frozen) == 1 and frozen[0].duration_ns == t_ns(33) - t_ns(30)
    assert s.stretches["fan unsettled"] == []


def test_familiar_null_counts_as_seen(tmp_path):
    """A model without OOD statistics publishes familiar null: not known unfamiliar."""
    lines = [det(i, present=("head",), familiar=None) for i in range(31)]
    _, s = summary_of(tmp_path, lines)
    assert cov(s, "head").seen_ns == t_ns(30) + 33_333_333  # 30 intervals, the last its median
    assert s.stretches["unfamiliar"] == []


def test_a_missing_result_is_not_seen_time_and_a_paused_source_counts_at_most_a_second(tmp_path):
    seqs = [*range(0, 25), *range(26, 40)]  # seq 25 never recorded
    lines = [det(i, present=("head",) if 10 <= i <= 39 else ()) for i in seqs]
    lines.append(det(40, t=t_ns(40) + 5 * SECOND))  # the source paused 5 s after frame 39
    lines[-2]["classes"]["head"]["present"] = True
    _, s = summary_of(tmp_path, lines)
    # frames 10..23 whole intervals; 24 stands for one of the two steps to 26; 26..38 whole;
    # 39 is followed by a 5 s pause: it counts MAX_FRAME_NS (1 s)
    expected = (t_ns(24) - t_ns(10)) + (t_ns(26) - t_ns(24)) // 2 + (t_ns(39) - t_ns(26)) \
        + MAX_FRAME_NS
    assert cov(s, "head").seen_ns == expected
    assert s.gaps.missing == 1 and s.gaps.places == 1


def test_fan_unsettled_stretches_and_latency_percentiles(tmp_path):
    lines = [det(i, settled=i >= 15) for i in range(100)]
    rec, s = summary_of(tmp_path, lines)
    (unsettled,) = s.stretches["fan unsettled"]
    assert unsettled.frames == 15 and unsettled.start_s == 0.0
    stage, n, (p50, p95, p99) = s.latency[0]
    values = np.array([20.0 + i % 10 for i in range(100)])  # what det() records
    assert stage == "capture_to_publish" and n == 100
    assert (p50, p95, p99) == tuple(np.percentile(values, (50, 95, 99)))
    assert [row[0] for row in s.latency] == ["capture_to_publish", "inference"]
    assert rec.frames == 100


def test_the_page_lists_the_stretches_with_their_times(tmp_path):
    lines = [det(i, familiar=not 20 <= i <= 24) for i in range(60)]
    path = write_lines(tmp_path / "rec.jsonl", lines)
    out = tmp_path / "r.html"
    assert main(["report", str(path), "--out", str(out)]) == 0
    page = out.read_text()
    assert "unfamiliar: 1 stretch(es), 0.17 s in all" in page
    assert "<tr><td>0:00.7</td><td>0:00.8</td><td>0.17 s</td><td>5</td></tr>" in page
    assert "frozen: none." in page and "fan unsettled: none." in page
