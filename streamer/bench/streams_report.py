"""The streams curve and the goals against the measured bounds, as terminal lines and a PNG
(p99 against the number of streams)."""

from __future__ import annotations

from pathlib import Path


def _f(x, spec: str = ".2f") -> str:
    return "-" if x is None else format(x, spec)


def streams_lines(section: dict | None) -> list[str]:
    if not section:
        return []
    lines = [f"streams (simulated {section['fps']:g} fps 1080p scanners through one pipeline and "
             f"one model; figures after a {section['warmup_s']:g} s warm-up)",
             f"{'N':>4}{'p50 median':>12}{'p99 median':>12}{'p99 worst':>11}{'dropped':>9}"
             f"{'cores':>7}{'workers':>9}  {'held':<5} batches"]
    for p in section["curve"]:
        batches = ",".join(f"{k}×{v}" for k, v in p["batches"].items())
        lines.append(f"{p['streams']:>4}{_f(p['p50_median_ms']):>12}{_f(p['p99_median_ms']):>12}"
                     f"{_f(p['p99_worst_ms']):>11}{p['dropped']:>9}{p['cpu']['cpu_cores_busy']:>7.2f}"
                     f"{p['inference_workers']:>9}  {'yes' if p['held'] else 'no':<5} {batches}")
    lines.append(f"  most streams held (every stream's p99 < {section['budget_ms']:g} ms, none "
                 f"dropped): {section['held']}; the model alone allows "
                 f"{_f(section['bound_streams'], '.1f')} ({_f(section['held_x_bound'], '.2f')}x)")
    return lines


LABELS = {"saturation_x_bound": ("saturation / model alone (same precision)", "x", ">="),
          "overhead_vs_paced_p50_ms": ("live p50 - paced model alone p50", " ms", "<="),
          "p99_x_p50": ("live p99 / live p50", "x", "<="),
          "streams_x_bound": ("streams held / (model alone / 30)", "x", ">=")}


def bound_target_lines(targets: dict | None) -> list[str]:
    rows = (targets or {}).get("against_bounds")
    if not rows:
        return []
    lines = ["targets against the bounds this run measured:"]
    for name, (label, unit, op) in LABELS.items():
        row = rows.get(name)
        if row is None:
            continue
        verdict = ("no verdict: " + row["noise"].split(":")[0] if row.get("noise")
                   else {True: "met", False: "NOT met", None: "-"}[row["met"]])
        lines.append(f"  {label:<42}{_f(row['value'], '.3f'):>8}{unit:<3} goal {op} "
                     f"{row['goal']}{unit:<3} {verdict}")
    for precision, sat in rows["saturation_x_bound"]["by_precision"].items():
        lines.append(f"  ({precision} saturation {_f(sat['fps'], '.0f')} frames/s against the "
                     f"model alone's {_f(sat['bound_fps'], '.0f')} ({sat['bound_run']}): "
                     f"{_f(sat['x_bound'], '.2f')}x)")
    return lines


def streams_plot_path(plot_path: str | Path) -> Path:
    """``out.png`` → ``out-streams.png``."""
    path = Path(plot_path)
    return path.with_name(f"{path.stem}-streams{path.suffix or '.png'}")


def plot_streams(result: dict, path: str | Path) -> Path:
    """p99 (worst and median stream) and p50 against the number of streams, the budget line,
    and the streams the model alone allows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker as ticker

    section = result["streams"]
    points = section["curve"]
    n = [p["streams"] for p in points]
    fig, ax = plt.subplots(figsize=(7.5, 4.5), layout="constrained")
    ax.plot(n, [p["p99_worst_ms"] for p in points], "o-", label="p99, worst stream")
    ax.plot(n, [p["p99_median_ms"] for p in points], "s--", label="p99, median stream")
    ax.plot(n, [p["p50_median_ms"] for p in points], "^:", label="p50, median stream")
    dropped = [p for p in points if p["dropped"]]
    if dropped:
        ax.plot([p["streams"] for p in dropped], [p["p99_worst_ms"] for p in dropped], "rx",
                markersize=10, label="frames dropped")
    ax.axhline(section["budget_ms"], color="grey", lw=1)
    ax.text(n[0], section["budget_ms"], f" {section['budget_ms']:g} ms", va="bottom", fontsize=8)
    if section["bound_streams"]:
        ax.axvline(section["bound_streams"], color="tab:red", lw=1, ls="--",
                   label=f"model alone / 30 fps: {section['bound_streams']:.1f}")
    ax.set(xlabel="streams (1080p, 30 fps each)", ylabel="capture→publish ms", yscale="log",
           title=f"{section['held']} streams held — {result['machine']['cpu']}, "
                 f"{result['machine']['cores_usable']} cores")
    ax.yaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(ticker.NullFormatter())
    ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
