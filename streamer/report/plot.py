"""The exam's timeline as inline SVG: one row per region (its score over time, the stretches it
was present shaded, its threshold dashed) and a row for the stretches not to be trusted.
Scores are reduced to one value per pixel column (the highest), so a long exam stays small."""

from __future__ import annotations

from html import escape

import numpy as np

from streamer.report.coverage import MAX_FRAME_NS, Summary, stretches
from streamer.report.records import StreamRecord
from streamer.sinks.viewer_render import class_colour, colour_rgb

WIDTH, LEFT, RIGHT = 960, 96, 12
ROW, GAP, AXIS = 44, 6, 28
PLOT = WIDTH - LEFT - RIGHT
FLAGS = {"unfamiliar": "#7B3294", "frozen": "#2C7BB6", "fan unsettled": "#999999"}


def colour(name: str, index: int) -> str:
    c = class_colour(name, index)
    return "#777777" if c.upper() == "#FFFFFF" else c  # white would vanish on the page


def darker(c: str, f: float = 0.7) -> str:
    return "#" + "".join(f"{int(v * f):02x}" for v in colour_rgb(c))


def timeline_svg(rec: StreamRecord, summary: Summary, thresholds: dict[str, float]) -> str:
    span = max(summary.span_ns, 1)
    x = _scale(rec, span)
    rows = [_region_row(rec, summary, i, name, x, thresholds.get(name), i * (ROW + GAP))
            for i, name in enumerate(rec.classes)]
    top = len(rec.classes) * (ROW + GAP)
    rows.append(_flags_row(rec, summary, x, top))
    height = top + ROW + GAP + AXIS
    return (f'<svg class="timeline" viewBox="0 0 {WIDTH} {height}" width="100%" role="img" '
            f'aria-label="scores over the exam, one row per region">'
            + "".join(rows) + _axis(span, top + ROW + GAP) + "</svg>")


def _scale(rec: StreamRecord, span: int):
    t0 = int(rec.t_ns[0]) if rec.frames else 0
    return lambda t: LEFT + (np.asarray(t, np.float64) - t0) / span * PLOT


def _region_row(rec, summary, i, name, x, threshold, y) -> str:
    c = colour(name, i)
    parts = [f'<g class="row" data-region="{escape(name)}">',
             f'<rect x="{LEFT}" y="{y}" width="{PLOT}" height="{ROW}" fill="#f6f6f6"/>',
             f'<text x="{LEFT - 8}" y="{y + ROW / 2 + 4}" text-anchor="end">{escape(name)}</text>']
    for x0, x1 in _bands(rec, rec.present[:, i], summary.dt_ns, x):
        parts.append(f'<rect class="present" x="{x0:.1f}" y="{y}" width="{x1 - x0:.1f}" '
                     f'height="{ROW}" fill="{c}" fill-opacity="0.3"/>')
    if threshold is not None:
        ty = y + ROW * (1 - threshold)
        parts.append(f'<line class="threshold" x1="{LEFT}" x2="{LEFT + PLOT}" y1="{ty:.1f}" '
                     f'y2="{ty:.1f}" stroke="#444" stroke-dasharray="4 3" stroke-width="0.8"/>')
    for points in _score_lines(rec, rec.scores[:, i], x):
        ys = y + ROW * (1 - np.clip(points[:, 1], 0, 1))
        coords = " ".join(f"{px:.1f},{py:.1f}" for px, py in zip(points[:, 0], ys, strict=True))
        parts.append(f'<polyline points="{coords}" fill="none" stroke="{darker(c)}" '
                     f'stroke-width="1.4"/>')
    return "".join(parts) + "</g>"


def _flags_row(rec, summary, x, y) -> str:
    lane = ROW / len(FLAGS)
    parts = ['<g class="flags">',
             f'<rect x="{LEFT}" y="{y}" width="{PLOT}" height="{ROW}" fill="#f6f6f6"/>',
             f'<text x="{LEFT - 8}" y="{y + ROW / 2 + 4}" text-anchor="end">not trusted</text>']
    masks = {"unfamiliar": rec.familiar == 0, "frozen": rec.frozen, "fan unsettled": rec.settled == 0}
    for j, (kind, mask) in enumerate(masks.items()):
        for x0, x1 in _bands(rec, mask, summary.dt_ns, x):
            parts.append(f'<rect class="flag" data-kind="{kind}" x="{x0:.1f}" y="{y + j * lane:.1f}" '
                         f'width="{x1 - x0:.1f}" height="{lane:.1f}" fill="{FLAGS[kind]}"/>')
    return "".join(parts) + "</g>"


def _bands(rec, mask, dt, x) -> list[tuple[float, float]]:
    """Pixel spans of the stretches where ``mask`` holds, merged where they touch on screen."""
    spans = []
    for s in stretches(rec, mask, dt):
        x0, x1 = float(x(rec.t_ns[0] + s.start_s * 1e9)), float(x(rec.t_ns[0] + s.end_s * 1e9))
        x1 = max(x1, x0 + 0.5)  # a single frame in a long exam still shows
        if spans and x0 <= spans[-1][1] + 0.5:
            spans[-1] = (spans[-1][0], max(spans[-1][1], x1))
        else:
            spans.append((x0, x1))
    return spans


def _score_lines(rec, scores, x) -> list[np.ndarray]:
    """Polylines of (x, highest score) per pixel column, broken where the record has a gap."""
    ok = np.isfinite(scores)
    if not ok.any():
        return []
    px = np.floor(x(rec.t_ns)).astype(np.int64)
    gap = np.concatenate(([True], (np.diff(rec.t_ns) > MAX_FRAME_NS) | rec.run_start[1:]))
    gap |= np.concatenate(([True], ~ok[:-1]))  # a result without the class breaks the line too
    idx = np.flatnonzero(ok)
    segment = np.cumsum(gap)[idx]
    lines = []
    for seg in np.unique(segment):
        members = idx[segment == seg]
        cols, first = np.unique(px[members], return_index=True)
        best = np.maximum.reduceat(scores[members], first)
        lines.append(np.stack([cols + 0.5, best], 1) if len(cols) > 1 else
                     np.array([[cols[0], best[0]], [cols[0] + 1.0, best[0]]]))
    return lines


def _axis(span_ns: int, y: int) -> str:
    seconds = span_ns / 1e9
    step = next((s for s in (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)
                 if seconds / s <= 10), 7200)
    parts = [f'<g class="axis"><line x1="{LEFT}" x2="{LEFT + PLOT}" y1="{y}" y2="{y}" stroke="#888"/>']
    for k in range(int(seconds / step) + 1):
        t = k * step
        px = LEFT + t / seconds * PLOT if seconds else LEFT
        anchor = "end" if px > LEFT + PLOT - 24 else "middle"  # the last label stays on the page
        parts.append(f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{y}" y2="{y + 5}" stroke="#888"/>'
                     f'<text x="{px:.1f}" y="{y + 18}" text-anchor="{anchor}">{clock(t, step)}</text>')
    return "".join(parts) + "</g>"


def clock(seconds: float, step: float = 1.0) -> str:
    """12.5 s, or 3:07 past two minutes."""
    if seconds < 120:
        return f"{seconds:.1f} s" if step < 1 else f"{seconds:.0f} s"
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}:{s:02d}" if m < 60 else f"{m // 60}:{m % 60:02d}:{s:02d}"
