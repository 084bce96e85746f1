"""The result as a terminal table, a JSON file and a PNG (latency CDFs and throughput bars)."""

from __future__ import annotations

import json
from pathlib import Path


def _f(x, spec: str = ".2f") -> str:
    return "-" if x is None else format(x, spec)


def _x(x) -> str:
    return "-" if x is None else f"{x:.2f}x"


def _machine_lines(m: dict) -> list[str]:
    peak = m["peak_gflops"]
    return [f"machine: {m['cpu']} · {m['cores_usable']} usable cores · GPU {m['gpu'] or 'none'} · "
            f"load {m['load_average_at_start']}",
            f"measured peak (float32 {peak['matrix']}² matmul): {_f(peak['peak'], '.1f')} GFLOP/s all "
            f"threads, {_f(peak.get('peak_1_thread'), '.1f')} GFLOP/s one thread"]


def _model_lines(section: dict) -> list[str]:
    model = section["model"]
    lines = [f"model only — {model['flops_per_frame'] / 1e9:.3f} GFLOP/frame ({model['onnx']})",
             f"{'backend':<24}{'p50':>8}{'p90':>8}{'p99':>8}{'max':>8}{'fps':>9}{'+RSS MB':>8}"
             f"{'GFLOP/s':>9}{'%peak':>7}{'x base':>8}"]
    for r in section["runs"]:
        lat = r["latency_ms"]
        lines.append(f"{r['label']:<24}" + "".join(_f(lat.get(k)).rjust(8) for k in ("p50", "p90", "p99", "max"))
                     + f"{r['throughput_fps']:9.1f}{r['rss_growth_mb']:8.0f}{r['gflops']:9.1f}"
                     f"{_f(r['pct_of_peak'], '.1f'):>7}{_x(r['vs_baseline']['throughput']):>8}")
    lines.append("  (latency ms per call, one call = one batch; +RSS: peak memory growth in the run; x base: frames/s over the baseline's inference)")
    return lines


def _e2e_lines(section: dict, base: dict) -> list[str]:
    lines = ["end to end (capture→publish ms, simulated 1080p scanner → pipeline → ZMQ on loopback)",
             f"{'config':<16}{'capt':>6}{'proc':>6}{'drop':>6}{'p50':>8}{'p90':>8}{'p99':>8}{'max':>8}"
             f"{'infer':>8}{'ovh':>7}{'fps':>8}{'cpu':>6}{'fps x':>7}{'p50 x':>7}"]
    for r in section["runs"]:
        lat, c = r["latency_ms"]["capture_to_publish"], r["counts"]
        lines.append(f"{r['label']:<16}{c['captured']:6d}{c['processed']:6d}{c['dropped']:6d}"
                     + "".join(_f(lat.get(k)).rjust(8) for k in ("p50", "p90", "p99", "max"))
                     + f"{_f(r['latency_ms']['inference'].get('p50')):>8}{_f(r['pipeline_overhead_ms_p50']):>7}"
                     f"{r['throughput_fps']:8.1f}{r['cpu']['cpu_cores_busy']:6.2f}"
                     f"{_x(r['vs_baseline']['throughput']):>7}{_x(r['vs_baseline']['latency_p50']):>7}")
    lat = base["latency_ms"]["capture_to_publish"]
    lines.append(f"{'baseline':<16}{base['frames']:6d}{base['frames']:6d}{0:6d}"
                 + "".join(_f(lat.get(k)).rjust(8) for k in ("p50", "p90", "p99", "max"))
                 + f"{_f(base['latency_ms']['inference'].get('p50')):>8}{'':>7}"
                 f"{base['throughput_fps']:8.1f}{base['cpu']['cpu_cores_busy']:6.2f}{'1.00x':>7}{'1.00x':>7}")
    lines.append(f"  baseline: {base['engine']}, one loop (ovh = p50 minus inference p50; cpu = cores busy;"
                 " x: over the baseline, > 1 better)")
    return lines


def table(result: dict) -> str:
    lines = _machine_lines(result["machine"]) + [""] + _model_lines(result["model_only"]) + [""]
    lines += _e2e_lines(result["end_to_end"], result["baseline"])
    lines += ["", f"saturation throughput vs baseline: {_x(result['speedup_vs_baseline'])}"]
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
    """Latency CDFs (model only; end to end with the baseline) and throughput bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    model, e2e = _curves(result)
    fig, axes = plt.subplots(1, 3, figsize=(17, 5))
    cdf = [q / 100 for q in range(101)]
    for ax, curves, title in ((axes[0], model, "model only: latency per call"),
                              (axes[1], e2e, "end to end: capture→publish")):
        for label, values in curves:
            ax.step(values, cdf, where="post", label=label)
        ax.set(xscale="log", xlabel="ms (log)", ylabel="fraction of frames ≤ x", title=title, ylim=(0, 1.01))
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    bars = [(r["label"], r["throughput_fps"]) for r in result["model_only"]["runs"]]
    bars += [(f"pipeline {r['label']}", r["throughput_fps"]) for r in result["end_to_end"]["runs"]]
    bars.append(("baseline", result["baseline"]["throughput_fps"]))
    names, values = zip(*bars, strict=True)
    colours = ["tab:blue"] * len(result["model_only"]["runs"]) + ["tab:green"] * len(
        result["end_to_end"]["runs"]) + ["tab:red"]
    axes[2].barh(names, values, color=colours)
    axes[2].invert_yaxis()
    axes[2].set(xlabel="frames/s", title="throughput")
    for i, v in enumerate(values):
        axes[2].text(v, i, f" {v:.0f}", va="center", fontsize=8)
    fig.suptitle(f"sonostream bench — {result['machine']['cpu']}", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
