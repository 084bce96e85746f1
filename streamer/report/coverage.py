"""What a report says of one stream, computed from its columns: how long each region was seen
(coverage), the stretches the results were not to be trusted (unfamiliar, frozen, fan not
settled), latency percentiles and the results missing from the record (gaps in seq).

Times are integer nanoseconds, so sums are exact: at 30 fps, 30 frames seen are 1.000 s."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from streamer.report.records import NOMINAL_NS, StreamRecord

MAX_FRAME_NS = 1_000_000_000  # a result stands for at most 1 s: a paused source is not seen time
PERCENTILES = (50, 95, 99)


@dataclass(frozen=True)
class RegionCoverage:
    name: str
    seen_ns: int  # time present, familiar (or unknown) and not frozen
    frames: int  # results counted in seen_ns
    first_s: float | None  # the first and last such result, seconds from the start
    last_s: float | None
    best: float | None  # the best score among them


@dataclass(frozen=True)
class Stretch:
    start_s: float
    end_s: float
    duration_ns: int
    frames: int


@dataclass(frozen=True)
class Gaps:
    missing: int  # results absent between recorded ones (dropped frames or lines not recorded)
    places: int
    largest: int


@dataclass(frozen=True)
class Summary:
    span_ns: int
    dt_ns: np.ndarray  # int64 [N]: the time each result stands for
    coverage: list[RegionCoverage]
    stretches: dict[str, list[Stretch]]  # "unfamiliar", "frozen", "fan unsettled"
    latency: list[tuple[str, int, tuple[float, ...]]]  # (stage, results, p50/p95/p99 ms)
    gaps: Gaps


def frame_intervals(rec: StreamRecord) -> np.ndarray:
    """The time each result stands for: up to the next result of its run, per seq step (a missing
    result is not time seen), at most MAX_FRAME_NS; a run's last result takes its run's median."""
    n = rec.frames
    dt = np.zeros(n, np.int64)
    if n == 0:
        return dt
    dseq, dtn = np.diff(rec.seq), np.diff(rec.t_ns)
    valid = ~rec.run_start[1:] & (dseq > 0) & (dtn > 0)
    dt[:-1] = np.where(valid, dtn // np.maximum(dseq, 1), 0)
    starts = np.flatnonzero(rec.run_start)
    for begin, end in zip(starts, [*starts[1:], n], strict=True):  # end: one past the run's last result
        steps = dt[begin:end - 1][valid[begin:end - 1]]
        dt[end - 1] = int(np.median(steps)) if len(steps) else NOMINAL_NS
    return np.minimum(dt, MAX_FRAME_NS)


def seen_mask(rec: StreamRecord) -> np.ndarray:
    """[N, C]: present, not known unfamiliar, not frozen."""
    return rec.present & (rec.familiar != 0)[:, None] & ~rec.frozen[:, None]


def coverage(rec: StreamRecord, dt: np.ndarray) -> list[RegionCoverage]:
    seen = seen_mask(rec)
    rows = []
    for i, name in enumerate(rec.classes):
        idx = np.flatnonzero(seen[:, i])
        if len(idx) == 0:
            rows.append(RegionCoverage(name, 0, 0, None, None, None))
            continue
        rows.append(RegionCoverage(
            name, int(dt[idx].sum()), len(idx), _seconds(rec, idx[0]), _seconds(rec, idx[-1]),
            float(np.nanmax(rec.scores[idx, i])) if np.isfinite(rec.scores[idx, i]).any() else None))
    return rows


def _seconds(rec: StreamRecord, i: int) -> float:
    return (int(rec.t_ns[i]) - int(rec.t_ns[0])) / 1e9


def stretches(rec: StreamRecord, mask: np.ndarray, dt: np.ndarray) -> list[Stretch]:
    """Runs of consecutive results where ``mask`` holds, with their time."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    begins, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    total = np.concatenate(([0], np.cumsum(dt)))
    return [Stretch(_seconds(rec, b), _seconds(rec, e - 1) + int(dt[e - 1]) / 1e9,
                    int(total[e] - total[b]), int(e - b)) for b, e in zip(begins, ends, strict=True)]


def latency(rec: StreamRecord) -> list[tuple[str, int, tuple[float, ...]]]:
    """Percentiles per latency stage, capture_to_publish first."""
    order = sorted(rec.latency, key=lambda s: s != "capture_to_publish")
    rows = []
    for stage in order:
        values = rec.latency[stage][np.isfinite(rec.latency[stage])]
        if len(values):
            rows.append((stage, len(values), tuple(float(v) for v in np.percentile(values, PERCENTILES))))
    return rows


def seq_gaps(rec: StreamRecord) -> Gaps:
    steps = np.diff(rec.seq)[~rec.run_start[1:]] - 1
    steps = steps[steps > 0]
    return Gaps(int(steps.sum()), len(steps), int(steps.max()) if len(steps) else 0)


def summarise(rec: StreamRecord) -> Summary:
    dt = frame_intervals(rec)
    span = int(rec.t_ns[-1] - rec.t_ns[0] + dt[-1]) if rec.frames else 0
    marks = {"unfamiliar": rec.familiar == 0, "frozen": rec.frozen, "fan unsettled": rec.settled == 0}
    return Summary(span, dt, coverage(rec, dt), {k: stretches(rec, m, dt) for k, m in marks.items()},
                   latency(rec), seq_gaps(rec))
