"""The result as a terminal table, a JSON file and a PNG (latency CDFs and throughput bars)."""

from __future__ import annotations

import json
from pathlib import Path

from streamer.bench.streams_report import bound_target_lines, streams_lines
from streamer.frames import PARTS


def _f(x, spec: str = ".2f") -> str:
    return "-" if x is None else format(x, spec)


def _x(x) -> str:
    return "-" if x is None else f"{x:.2f}x"


def _machine_lines(m: dict) -> list[str]:
    lines = [f"machine: {m['cpu']} · {m['cores_usable']} usable cores · GPU {m['gpu'] or 'none'} · "
             f"load {m['load_average_at_start']}"]
    threads = m.get("bench", {}).get("onnxruntime_threads")
    if threads:
        sweep = ", ".join(f"{k}: {v:.2f} ms" for k, v in threads["model_b1_p50_ms"].items())
        sat = ", ".join(f"{k}: {v:.0f}/s" for k, v in threads["saturation_fps"].items())
        lines.append(f"onnxruntime intra-op threads (0 = its default): latency runs "
                     f"{threads['latency']} (model b1 p50 by threads: {sweep}); saturation "
                     f"{threads['saturation']} (frames/s by threads: {sat})")
    return lines


def _model_lines(section: dict) -> list[str]:
    model = section["model"]
    lines = [f"model only — {model['flops_per_frame'] / 1e9:.3f} GFLOP/frame ({model['onnx']})",
             f"{'backend':<24}{'p50':>8}{'p90':>8}{'p99':>8}{'max':>8}{'fps':>9}{'+RSS MB':>8}"
             f"{'GFLOP/s':>9}{'x base':>8}"]
    for r in section["runs"]:
        lat = r["latency_ms"]
        lines.append(f"{r['label']:<24}" + "".join(_f(lat.get(k)).rjust(8) for k in ("p50", "p90", "p99", "max"))
                     + f"{r['throughput_fps']:9.1f}{r['rss_growth_mb']:8.0f}{r['gflops']:9.1f}"
                     f"{_x(r['vs_baseline']['throughput']):>8}")
    lines.append("  (latency ms per call, one call = one batch; +RSS: peak memory growth in the run; x base: frames/s over the baseline's inference)")
    return lines


E2E_HEAD = (f"{'config':<16}{'capt':>6}{'proc':>6}{'drop':>6}{'p50':>8}{'p90':>8}{'p99':>8}{'max':>8}"
            f"{'infer':>8}{'ovh':>8}{'fps':>8}{'cpu':>6}{'speed-up':>10}{'p50 of frame':>14}")


def frame_share(run: dict) -> str:
    """A paced run's p50 against its frame interval ("18% of 33.3"); "-" at saturation."""
    p50 = run["latency_ms"]["capture_to_publish"].get("p50")
    if not run.get("realtime") or not run.get("fps") or p50 is None:
        return "-"
    interval = 1000 / run["fps"]
    return f"{100 * p50 / interval:.0f}% of {interval:.1f}"


def speedup(run: dict) -> str:
    """Frames/s over the baseline's, only where both run flat out; a paced run says "paced"."""
    return "paced" if run.get("realtime") else _x(run["vs_baseline"]["throughput"])


def _e2e_row(r: dict) -> str:
    lat, c = r["latency_ms"]["capture_to_publish"], r["counts"]
    return (f"{r['label']:<16}{c['captured']:6d}{c['processed']:6d}{c['dropped']:6d}"
            + "".join(_f(lat.get(k)).rjust(8) for k in ("p50", "p90", "p99", "max"))
            + f"{_f(r['latency_ms']['inference'].get('p50')):>8}{_f(r.get('overhead_vs_model_ms_p50')):>8}"
            f"{r['throughput_fps']:8.1f}{r['cpu']['cpu_cores_busy']:6.2f}{speedup(r):>10}{frame_share(r):>14}")


def _baseline_row(base: dict) -> str:
    lat = base["latency_ms"]["capture_to_publish"]
    return (f"{'baseline':<16}{base['frames']:6d}{base['frames']:6d}{0:6d}"
            + "".join(_f(lat.get(k)).rjust(8) for k in ("p50", "p90", "p99", "max"))
            + f"{_f(base['latency_ms']['inference'].get('p50')):>8}{'':>8}"
            f"{base['throughput_fps']:8.1f}{base['cpu']['cpu_cores_busy']:6.2f}{'1.00x':>10}{'-':>14}")


def noise_lines(runs: list[dict]) -> list[str]:
    """A note for every run whose overhead came out below zero: noise, not a saving."""
    return [f"  ovh {r['overhead_vs_model_ms_p50']:.3f} ms at {r['label']}: below zero, the end-to-end "
            "p50 came out under the model alone's: measurement noise, not a negative cost"
            for r in runs if (r.get("overhead_vs_model_ms_p50") or 0) < 0]


def _e2e_lines(section: dict, base: dict) -> list[str]:
    lines = ["end to end (capture→publish ms, simulated 1080p scanner → pipeline → ZMQ on loopback)",
             E2E_HEAD, *map(_e2e_row, section["runs"]), _baseline_row(base)]
    return lines + [
        f"  baseline: {base['engine']}, one loop (infer: inference p50 in the pipeline; ovh = p50 minus "
        "the model's p50 alone; cpu = cores busy)",
        "  speed-up: frames/s over the baseline's, only where both run flat out (saturation; > 1 faster).",
        "  A paced row runs at its source's frame rate, so its frames/s is no speed-up; it is read by",
        "  its latency: p50 of frame = capture→publish p50 as a share of the frame interval (ms); under",
        "  100% it keeps up with the scanner.", *noise_lines(section["runs"])]


def _stage_lines(section: dict, base: dict) -> list[str]:
    """Where each configuration's time goes: the parts of capture→publish (ms, p50 and mean)."""
    head = "".join(f"{p:>15}" for p in PARTS)
    lines = ["stages (ms, p50 / mean; the means add up to the mean capture→publish)",
             f"{'config':<16}{head}{'sum of means':>14}"]
    for r in section["runs"]:
        st = r.get("stages_ms")
        if not st:
            continue
        cells = "".join(f"{_f(st['p50'][p], '.3f')}/{_f(st['mean'][p], '.3f')}".rjust(15) for p in PARTS)
        batches = " batches " + ",".join(f"{k}×{v}" for k, v in r.get("batches", {}).items())
        lines.append(f"{r['label']:<16}{cells}{_f(st['mean_capture_to_publish'], '.3f'):>14}"
                     + (batches if r["label"] == "saturation" else ""))
    lat = base["latency_ms"]
    cells = "".join((f"{_f(lat[p].get('p50'), '.3f')}/{_f(lat[p].get('mean'), '.3f')}" if p in lat
                     else "-").rjust(15) for p in PARTS)
    lines.append(f"{'baseline':<16}{cells}{_f(lat['capture_to_publish'].get('mean'), '.3f'):>14}")
    return lines


def _target_lines(t: dict | None) -> list[str]:
    if not t:
        return []
    if t["smoke"]:
        return ["SMOKE RUN (--quick): too few frames for a verdict; run without --quick to judge.",
                *_paced_line(t), *_bound_line(t)]
    alone = t["model_alone"]
    lines = [f"targets (model alone, {alone['threads'] or 'default'} threads: p50 "
             f"{alone['p50']:.3f} ms, p99 {alone['p99']:.3f} ms; live figures at {t['at']}):"]
    for name, label, unit in (("overhead_p50_ms", "overhead p50 (e2e p50 - model p50)", " ms"),
                              ("overhead_p99_ms", "overhead p99 (e2e p99 - model p99)", " ms"),
                              ("saturation_x_baseline", "saturation / baseline", "x"),
                              ("inference_in_pipeline_ratio", "inference in pipeline / alone", "x")):
        row = t[name]
        verdict = target_verdict(name, row)
        op = ">=" if name == "saturation_x_baseline" else "<="
        lines.append(f"  {label:<38}{_f(row['value'], '.3f'):>9}{unit:<3} goal {op} {row['goal']}"
                     f"{unit:<3} {verdict}")
    return lines + _paced_line(t) + _bound_line(t)


def target_verdict(name: str, row: dict) -> str:
    """met / NOT met / -; an overhead below zero is noise, whatever ``met`` says (older JSON)."""
    value = row["value"]
    if name.startswith("overhead") and value is not None and value < 0:
        return "no verdict: below zero is measurement noise (end to end faster than the model alone)"
    return {True: "met", False: "NOT met", None: "-"}[row["met"]]


def _bound_line(t: dict) -> list[str]:
    bound = t.get("saturation_bound")
    if not bound:
        return []
    return [f"  (saturation bound: the model alone, {bound['run']}, all threads: "
            f"{bound['model_alone_fps']:.0f} frames/s = {_f(bound['x_baseline'], '.2f')}x the baseline)"]


def _paced_line(t: dict) -> list[str]:
    paced = t.get("model_alone_paced")
    if not paced:
        return []
    return [f"  (model alone at {paced['fps']:g} fps, one call per frame: p50 {paced['p50']:.3f} ms, "
            f"p99 {paced['p99']:.3f} ms; inference in pipeline / paced alone "
            f"{_f(paced['inference_in_pipeline_ratio'], '.3f')}x, > 1: slower in the pipeline)"]


def table(result: dict) -> str:
    lines = _machine_lines(result["machine"]) + [""] + _model_lines(result["model_only"]) + [""]
    lines += _e2e_lines(result["end_to_end"], result["baseline"]) + [""]
    lines += _stage_lines(result["end_to_end"], result["baseline"])
    lines += ["", f"saturation throughput vs baseline: {_x(result['speedup_vs_baseline'])}"]
    lines += _target_lines(result.get("targets"))
    streams = streams_lines(result.get("streams"))
    lines += ([""] + streams if streams else []) + bound_target_lines(result.get("targets"))
    return "\n".join(lines)


def write_json(result: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
    return path


def _curves(result: dict) -> tuple[list, list]:
    """(label, quantile curve in ms) for model-only runs, and for end-to-end runs + baseline."""
    model = [(r["label"], r["latency_ms"]["quantiles"]) for r in result["model_only"]["runs"]
             if "quantiles" in r["latency_ms"]]
    e2e = [(f"pipeline {r['label']}", r["latency_ms"]["capture_to_publish"]["quantiles"])
           for r in result["end_to_end"]["runs"] if "quantiles" in r["latency_ms"]["capture_to_publish"]]
    base = result["baseline"]["latency_ms"]["capture_to_publish"]
    if "quantiles" in base:
        e2e.append(("baseline", base["quantiles"]))
    return model, e2e


def plot(result: dict, path: str | Path) -> Path:
    """Latency CDFs (model only; end to end with the baseline) and throughput bars, as a PNG."""
    import matplotlib.pyplot as plt

    fig = figure(result)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def figure(result: dict):
    """The four panels; matplotlib's constrained layout keeps titles, labels and ticks apart."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model, e2e = _curves(result)
    fig, axes = plt.subplots(1, 4, figsize=(23, 5.5), layout="constrained")
    for ax, curves, title in ((axes[0], model, "model only: latency per call"),
                              (axes[1], e2e, "end to end: capture→publish")):
        _cdf(ax, curves, title)
    _throughput(axes[2], result)
    _stacked(axes[3], result)
    fig.suptitle(f"sonostream bench — {result['machine']['cpu']}", fontsize=10)
    return fig


LOG_FROM = 5  # a latency axis goes logarithmic when its curves span at least this ratio


def _cdf(ax, curves: list, title: str) -> None:
    cdf = [q / 100 for q in range(101)]
    for label, values in curves:
        ax.step(values, cdf, where="post", label=label)
    ax.set(ylabel="fraction of frames ≤ x", title=title, ylim=(0, 1.01))
    _ms_axis(ax, [v for _, values in curves for v in values if v > 0])
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)


def _ms_axis(ax, values: list) -> None:
    """Log scale for a wide span, labelled at 1, 2, 5 × 10^k in plain numbers, the other ticks
    unlabelled (matplotlib's default labels them 4×10^0, 6×10^0..., and they overlap); linear
    for a narrow span, where a log axis would have too few of those ticks."""
    import matplotlib.ticker as ticker

    if not values or max(values) < LOG_FROM * min(values):
        ax.set_xlabel("ms")
        return
    ax.set(xscale="log", xlabel="ms (log)")
    ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())


def _throughput(ax, result: dict) -> None:
    bars = [(r["label"], r["throughput_fps"]) for r in result["model_only"]["runs"]]
    bars += [(f"pipeline {r['label']}", r["throughput_fps"]) for r in result["end_to_end"]["runs"]]
    bars.append(("baseline", result["baseline"]["throughput_fps"]))
    names, values = zip(*bars, strict=True)
    colours = ["tab:blue"] * len(result["model_only"]["runs"]) + ["tab:green"] * len(
        result["end_to_end"]["runs"]) + ["tab:red"]
    ax.barh(names, values, color=colours)
    ax.invert_yaxis()
    ax.set(xlabel="frames/s", title="throughput")
    for i, v in enumerate(values):
        ax.text(v, i, f" {v:.0f}", va="center", fontsize=8)


def _stacked(ax, result: dict) -> None:
    """One bar per configuration: the mean time of each part of capture→publish, stacked."""
    rows = [(f"pipeline {r['label']}", r["stages_ms"]["mean"]) for r in result["end_to_end"]["runs"]
            if r.get("stages_ms")]
    base = result["baseline"]["latency_ms"]
    rows.append(("baseline", {p: base[p].get("mean", 0.0) if p in base else 0.0 for p in PARTS}))
    names = [n for n, _ in rows]
    left = [0.0] * len(rows)
    for part in PARTS:
        widths = [(m.get(part) or 0.0) for _, m in rows]
        ax.barh(names, widths, left=left, label=part)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    ax.invert_yaxis()
    ax.set(xlabel="ms (mean per frame)", title="where the time goes: capture→publish by stage")
    ax.legend(fontsize=7, loc="lower right")
