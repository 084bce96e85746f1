"""Latency summaries, per-run peak memory and CPU utilisation (stdlib only, no psutil)."""

from __future__ import annotations

import resource
import time
from pathlib import Path

import numpy as np

QUANTILES = (50, 90, 99)


def summarise_ms(seconds) -> dict:
    """p50/p90/p99/max/mean in milliseconds, the sample count and a 101-point quantile curve
    (0th…100th percentile) from which the CDF can be redrawn without the raw samples."""
    v = np.asarray(seconds, np.float64) * 1e3
    if not len(v):
        return {"count": 0}
    out = {f"p{q}": round(float(np.percentile(v, q)), 4) for q in QUANTILES}
    out.update(max=round(float(v.max()), 4), mean=round(float(v.mean()), 4), count=int(len(v)),
               quantiles=[round(float(x), 4) for x in np.percentile(v, np.arange(101))])
    return out


def rate(timestamps_s) -> float:
    """Frames per second between the first and the last completion time."""
    t = np.asarray(timestamps_s, np.float64)
    if len(t) < 2 or t[-1] <= t[0]:
        return 0.0
    return float((len(t) - 1) / (t[-1] - t[0]))


_STATUS = Path("/proc/self/status")


def reset_peak_rss() -> None:
    """Linux: writing 5 to clear_refs resets the VmHWM high-water mark (best effort)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _status_mb(key: str) -> float | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(key):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def peak_rss_mb() -> float:
    """Peak resident memory since the last reset (VmHWM), else the process lifetime peak."""
    peak = _status_mb("VmHWM:")
    return peak if peak is not None else round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


class RssMeter:
    """The whole process's peak RSS during a run, and how far it rose above the RSS at the start
    (the bench runs every configuration in one process, so the peak includes what came before)."""

    def __init__(self):
        reset_peak_rss()
        self.start_mb = _status_mb("VmRSS:") or 0.0

    def as_dict(self) -> dict:
        peak = peak_rss_mb()
        return {"peak_rss_mb": peak, "rss_growth_mb": round(max(0.0, peak - self.start_mb), 1)}


class CpuMeter:
    """Process CPU time over wall time: 1.0 = one core busy for the whole run."""

    def __enter__(self) -> CpuMeter:
        self._cpu, self._wall = time.process_time(), time.perf_counter()
        self.cpu_s = self.wall_s = 0.0
        return self

    def __exit__(self, *exc) -> None:
        self.cpu_s = time.process_time() - self._cpu
        self.wall_s = time.perf_counter() - self._wall

    def as_dict(self) -> dict:
        cores = self.cpu_s / self.wall_s if self.wall_s else 0.0
        return {"cpu_s": round(self.cpu_s, 3), "wall_s": round(self.wall_s, 3),
                "cpu_cores_busy": round(cores, 3)}
