"""The report as one self-contained HTML page: styles inline, the timeline inline SVG, images as
``data:`` URIs, no script, font or address outside the page (it works when mailed, and prints)."""

from __future__ import annotations

from html import escape
from pathlib import PurePath

from streamer.report.coverage import Summary
from streamer.report.keyframes import Exam
from streamer.report.plot import FLAGS, colour, timeline_svg
from streamer.report.records import Record, StreamRecord

MAX_STRETCHES = 20  # rows per kind; the rest are summed in one line
STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; color: #222; margin: 24px auto; max-width: 1000px;
       padding: 0 16px; -webkit-print-color-adjust: exact; print-color-adjust: exact; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 18px; border-bottom: 2px solid #ddd;
     padding-bottom: 2px; margin-top: 28px; } h3 { font-size: 15px; margin: 18px 0 6px; }
h4 { font-size: 13px; margin: 10px 0 4px; }
dl.head { display: grid; grid-template-columns: max-content auto; gap: 2px 16px; margin: 8px 0; }
dl.head dt { color: #666; } dl.head dd { margin: 0; }
table { border-collapse: collapse; margin: 4px 0; } td, th { padding: 2px 10px; text-align: right; }
th { border-bottom: 1px solid #bbb; font-weight: 600; } td:first-child, th:first-child { text-align: left; }
tr:nth-child(even) td { background: #f7f7f7; } .none { color: #777; } .swatch { display: inline-block;
  width: 10px; height: 10px; margin-right: 6px; border-radius: 2px; }
svg.timeline text { font-size: 12px; fill: #333; } .legend { color: #555; font-size: 12px; }
.frames { display: flex; flex-wrap: wrap; gap: 10px; } figure { margin: 0; width: 232px;
  break-inside: avoid; } figure img { width: 232px; height: auto; display: block; background: #000; }
figcaption { font-size: 12px; color: #444; } .note { color: #a33; font-size: 12px; }
footer { margin-top: 32px; border-top: 1px solid #ddd; padding-top: 6px; color: #555; font-size: 12px; }
footer code { word-break: break-all; } section.stream { break-before: auto; }
.region, table.coverage, table.latency { break-inside: avoid; } h3, h4 { break-after: avoid; }
@page { size: A4; margin: 12mm; }
@media print { body { margin: 0; padding: 0; } figure, figure img { width: 200px; } }
"""


def render_page(record: Record, parts: list[tuple[StreamRecord, Summary, Exam | str | None]],
                thresholds: dict[str, float], threshold_from: str, command: str,
                version: str) -> str:
    name = PurePath(record.path).name
    body = [f"<h1>Exam report</h1><p class=legend>from the record {escape(name)} "
            f"({record.lines} lines; {len(record.streams)} stream(s))</p>", *_record_notes(record)]
    for rec, summary, exam in parts:
        body.append(_stream(rec, summary, exam, thresholds, threshold_from))
    body.append(f"<footer>Made with <code>{escape(command)}</code> (sonostream {escape(version)})"
                f"</footer>")
    title = "Exam report: " + ", ".join(rec.name for rec, _, _ in parts)
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
            + "\n".join(body) + "</body></html>\n")


def _record_notes(record: Record) -> list[str]:
    notes = []
    if record.cut_short:
        notes.append("the last line was cut short (the run stopped while writing it) and is left out")
    if record.other_topics:
        notes.append("lines of other topics not read: " + ", ".join(
            f"{k} ({n})" for k, n in sorted(record.other_topics.items())))
    if record.not_chosen:
        notes.append("other streams in the record, not shown (--stream): " + ", ".join(record.not_chosen))
    return [f'<p class="note">{escape(n)}</p>' for n in notes]


def _stream(rec, summary, exam, thresholds, threshold_from) -> str:
    shown = {c: thresholds.get(c, thresholds.get("*")) for c in rec.classes}
    return "\n".join([
        f'<section class="stream" id="stream-{escape(rec.name)}"><h2>Stream {escape(rec.name)}</h2>',
        _header(rec, summary, exam),
        "<h3>Scores over the exam</h3>", timeline_svg(rec, summary, shown),
        '<p class="legend">A row per region: its score (0 at the bottom, 1 at the top; the highest '
        "per pixel column), shaded where it was present, the dashed line its threshold "
        f"({escape(threshold_from)}). Not trusted, top to bottom: "
        + ", ".join(f'<span class=swatch style="background:{c}"></span>{escape(k)}'
                    for k, c in FLAGS.items()) + ".</p>",
        "<h3>Coverage</h3>", _coverage(rec, summary),
        "<h3>Best frames</h3>", _frames(rec, exam),
        "<h3>Not to be trusted</h3>", _stretches(summary),
        "<h3>Latency and completeness</h3>", _latency(rec, summary), "</section>"])


def _header(rec: StreamRecord, summary: Summary, exam) -> str:
    status = rec.status
    backend = status.get("backend") if isinstance(status.get("backend"), dict) else {}
    model = backend.get("model")
    model = (f"{PurePath(str(model)).name} ({backend.get('backend', '?')})" if model else
             "not in the record (it has no status lines)")
    source = status.get("source", {}).get("kind") if isinstance(status.get("source"), dict) else None
    source = source or (exam.source if isinstance(exam, Exam) else None)
    rows = [("stream", rec.name), ("model", model), ("source", source or "not recorded"),
            ("exam span", f"{summary.span_ns / 1e9:.1f} s" if summary.span_ns < 60e9 else
             f"{span_clock(summary.span_ns)} ({summary.span_ns / 1e9:.0f} s)"),
            ("frames", f"{rec.frames} results, seq {rec.seq[0]} to {rec.seq[-1]}"
             + (f", {rec.restarts + 1} runs appended" if rec.restarts else "")),
            ("frame size", "x".join(map(str, rec.frame_shape[::-1])) if rec.frame_shape else "?"),
            ("calibrated", "yes: mm per pixel known" if rec.mm_per_px else "no (pixels only)")]
    return '<dl class="head">' + "".join(f"<dt>{escape(k)}</dt><dd>{escape(str(v))}</dd>"
                                         for k, v in rows) + "</dl>"


def span_clock(ns: int) -> str:
    """m:ss.s (tenths rounded before the minutes are taken: never 0:60.0)."""
    minutes, tenths = divmod(round(ns / 1e8), 600)
    return f"{minutes}:{tenths / 10:04.1f}"


def seconds(ns: int) -> str:
    return f"{ns / 1e9:.3f} s" if ns < 100e9 else f"{ns / 1e9:.1f} s"


def at(seconds: float | None) -> str:
    return "–" if seconds is None else span_clock(round(seconds * 1e9))


def _coverage(rec: StreamRecord, summary: Summary) -> str:
    rows = ["<table class=coverage><tr><th>region</th><th>seen</th><th>of the exam</th>"
            "<th>results</th><th>first seen</th><th>last seen</th><th>best score</th></tr>"]
    for i, c in enumerate(summary.coverage):
        share = c.seen_ns / summary.span_ns * 100 if summary.span_ns else 0.0
        rows.append(f'<tr data-region="{escape(c.name)}" data-seen-ns="{c.seen_ns}"><td>'
                    f'<span class=swatch style="background:{colour(c.name, i)}"></span>'
                    f"{escape(c.name)}</td><td>{seconds(c.seen_ns)}</td><td>{share:.0f}%</td>"
                    f"<td>{c.frames}</td><td>{at(c.first_s)}</td><td>{at(c.last_s)}</td>"
                    f"<td>{'–' if c.best is None else f'{c.best:.2f}'}</td></tr>")
    return "".join(rows) + ("</table><p class=legend>Seen: the time a region was present, on a "
                            "familiar (or unscored) image that was not frozen.</p>")


def _frames(rec: StreamRecord, exam) -> str:
    if exam is None:
        return '<p class="none">No best frames: no keyframes folder given (--keyframes DIR).</p>'
    if isinstance(exam, str):
        return f'<p class="none">No best frames: {escape(exam)}.</p>'
    order = [r for r in rec.classes if r in exam.regions] + \
        [r for r in exam.regions if r not in rec.classes]
    out = [f'<p class=legend>Exam {escape(exam.id)}: the best {exam.k or "few"} frames per region, '
           "best first.</p>"]
    empty = [r for r in order if not exam.regions[r]]
    for region in (r for r in order if exam.regions[r]):
        figures = []
        for f in exam.regions[region]:
            caption = " · ".join(x for x in (
                f"score {f.score:.2f}" if f.score is not None else "",
                f"at {at(f.t_s)}" if f.t_s is not None else "",
                f"seq {f.seq}" if f.seq is not None else "",
                f"ood {f.ood:.2f}" if f.ood is not None else "",
                f"DICOM {f.dicom}" if f.dicom else "") if x)
            image = (f'<img src="{f.image}" alt="{escape(region)} {f.shown}">' if f.image else
                     f'<p class="note">{escape(f.note)}</p>')
            figures.append(f"<figure>{image}<figcaption>{escape(caption)}</figcaption></figure>")
        out.append(f"<div class=region><h4>{escape(region)}</h4><div class=frames>"
                   f"{''.join(figures)}</div></div>")
    if empty:
        out.append(f'<p class="none">No frames kept for {escape(", ".join(empty))}.</p>')
    return "".join(out)


def _stretches(summary: Summary) -> str:
    out = []
    for kind, found in summary.stretches.items():
        if not found:
            out.append(f'<p class="none">{escape(kind)}: none.</p>')
            continue
        total = sum(s.duration_ns for s in found) / 1e9
        rows = "".join(f"<tr><td>{at(s.start_s)}</td><td>{at(s.end_s)}</td>"
                       f"<td>{s.duration_ns / 1e9:.2f} s</td><td>{s.frames}</td></tr>"
                       for s in found[:MAX_STRETCHES])
        more = (f'<p class="legend">and {len(found) - MAX_STRETCHES} more</p>'
                if len(found) > MAX_STRETCHES else "")
        out.append(f'<p>{escape(kind)}: {len(found)} stretch(es), {total:.2f} s in all</p>'
                   f'<table class="stretches" data-kind="{escape(kind)}"><tr><th>from</th>'
                   f"<th>to</th><th>duration</th><th>results</th></tr>{rows}</table>{more}")
    return "".join(out)


def _latency(rec: StreamRecord, summary: Summary) -> str:
    rows = "".join(f"<tr><td>{escape(stage)}</td>" + "".join(f"<td>{v:.1f}</td>" for v in p)
                   + f"<td>{n}</td></tr>" for stage, n, p in summary.latency)
    table = ("<table class=latency><tr><th>stage (ms)</th><th>p50</th><th>p95</th><th>p99</th>"
             f"<th>results</th></tr>{rows}</table>" if rows else
             '<p class="none">No latency in the record.</p>')
    g = summary.gaps
    lines = [f"{rec.frames} results processed and recorded",
             "no gaps in seq" if not g.missing else
             f"gaps in seq: {g.missing} results missing in {g.places} place(s) (largest {g.largest}):"
             " frames the streamer dropped or results not recorded"]
    if rec.duplicates:
        lines.append(f"{rec.duplicates} results recorded twice (counted once)")
    counts = {k: rec.status.get(k) for k in ("captured", "processed", "dropped", "invalid")}
    if all(isinstance(v, int) for v in counts.values()):
        lines.append("the streamer's last status: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return table + "".join(f"<p>{escape(x)}</p>" for x in lines)
