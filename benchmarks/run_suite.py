"""The full `streamer bench` suite, recorded: writes benchmarks/results/<date>-<host-kind>.json,
.png and .md (headline numbers, the table, the conditions it ran under).

    python benchmarks/run_suite.py                 # the bundled model (+ fp16/int8 variants)
    python benchmarks/run_suite.py --model m.onnx --checkpoint m.pt --duration 10
    python benchmarks/run_suite.py --readme README.md --note "quiet machine"   # + README's table
    python benchmarks/run_suite.py --streams 1,8,16 --out-dir /tmp/bench        # another curve

Without the bundled model it benchmarks a random-init compact model (same arithmetic, so the
speed figures hold; the md says so). FP16/INT8 variants are built from the ONNX model with the
project's own converters on simulated frames; a variant that fails to build is left out.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def host_kind(machine: dict) -> str:
    """e.g. ``cpu2-amd-epyc`` or ``h100-cpu16-intel-xeon``."""
    cpu = re.sub(r"[^a-z0-9]+", "-", machine["cpu"].lower()).strip("-")
    cpu = "-".join(w for w in cpu.split("-") if w not in ("r", "tm", "cpu", "processor"))[:30].strip("-")
    kind = f"cpu{machine['cores_usable']}-{cpu}"
    if machine.get("gpu"):
        gpu = re.sub(r"[^a-z0-9]+", "-", machine["gpu"].lower().replace("nvidia", "")).strip("-")
        kind = f"{gpu}-{kind}"
    return kind


def random_model(workdir: Path) -> tuple[Path, Path]:
    """The compact architecture with random weights, as ONNX and as a checkpoint."""
    import torch

    from engines.checkpoint import save_checkpoint
    from engines.export import export_onnx
    from engines.model import ModelConfig, SPNModel

    torch.manual_seed(0)
    model = SPNModel(ModelConfig(arch="compact")).eval()
    return export_onnx(model, workdir / "compact.onnx"), save_checkpoint(model, workdir / "compact.pt")


def sim_frames(size: int, count: int) -> np.ndarray:
    """Model inputs cut from the simulated scanner, as the pipeline would prepare them."""
    import cv2

    from engines.simulator import LiveFeed

    feed, out = LiveFeed(seed=1, fps=5.0), []
    for _ in range(count):
        s = feed.next()
        x, y, w, h = s.fan_roi
        grey = cv2.cvtColor(s.image[y : y + h, x : x + w], cv2.COLOR_BGR2GRAY)
        out.append(cv2.resize(grey, (size, size), interpolation=cv2.INTER_AREA))
    return (np.stack(out).astype(np.float32) / 255.0)[:, None]


def build_variants(onnx_path: Path, workdir: Path) -> dict[str, Path]:
    """fp16 and int8 ONNX files next to the fp32 one; a failure leaves that variant out."""
    import onnx

    from engines.model_info import ModelInfo

    frames = sim_frames(ModelInfo.from_onnx(onnx_path).input_size, 24)
    made = {}
    try:
        from engines.precision import convert_fp16

        model, _ = convert_fp16(onnx.load(str(onnx_path)), frames[:8])
        made["fp16"] = workdir / "model_fp16.onnx"
        onnx.save(model, str(made["fp16"]))
    except Exception as exc:  # a converter still in development must not sink the suite
        print(f"fp16 variant left out: {exc}", file=sys.stderr)
        made.pop("fp16", None)
    try:
        from calibration.int8 import quantize_int8

        made["int8"] = quantize_int8(onnx_path, frames, workdir / "model_int8.onnx", progress=False,
                                     target="cpu")  # U8S8 Q/DQ: what ONNX Runtime on this CPU runs fast
    except Exception as exc:
        print(f"int8 variant left out: {exc}", file=sys.stderr)
    return made


def headline(result: dict) -> list[str]:
    e2e = {r["label"]: r for r in result["end_to_end"]["runs"]}
    base = result["baseline"]
    lines = []
    for label, r in e2e.items():
        lat, c = r["latency_ms"]["capture_to_publish"], r["counts"]
        lines.append(f"- pipeline {label}: capture→publish p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms, "
                     f"max {lat['max']:.2f} ms; captured {c['captured']}, processed {c['processed']}, "
                     f"dropped {c['dropped']} ({r['dropped_while_running']} while running); "
                     f"overhead (p50 − model alone p50) {r['overhead_vs_model_ms_p50']:.2f} ms; "
                     f"{r['throughput_fps']:.1f} frames/s; {r['cpu']['cpu_cores_busy']:.2f} cores busy")
        st = r["stages_ms"]["mean"]
        lines.append("  - mean ms per stage: " + ", ".join(f"{k} {v:.3f}" for k, v in st.items()))
    blat = base["latency_ms"]["capture_to_publish"]
    lines.append(f"- baseline ({base['engine']}): p50 {blat['p50']:.2f} ms, p99 {blat['p99']:.2f} ms, "
                 f"{base['throughput_fps']:.1f} frames/s")
    lines.append(f"- saturation throughput / baseline: **{result['speedup_vs_baseline']:.2f}x**")
    for r in result["model_only"]["runs"]:
        lat = r["latency_ms"]
        lines.append(f"- model only {r['label']}: p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms, "
                     f"{r['throughput_fps']:.1f} frames/s, {r['gflops']:.1f} GFLOP/s")
    return lines


def write_markdown(result: dict, path: Path, note: str) -> None:
    from streamer.bench.report import table

    m = result["machine"]
    text = [f"# streamer bench — {path.stem}", "",
            f"{m['cpu']}, {m['cores_usable']} usable cores, GPU {m['gpu'] or 'none'}; "
            f"load average at start {m['load_average_at_start']}. {note}", "",
            "## Headline", "", *headline(result), "",
            "## Table", "", "```", table(result), "```", "",
            f"Plot: `{path.with_suffix('.png').name}`"
            + (f", streams: `{path.stem}-streams.png`" if result.get("streams") else "")
            + f"; every figure: `{path.with_suffix('.json').name}`.", ""]
    path.write_text("\n".join(text))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model"), p.add_argument("--checkpoint")
    p.add_argument("--duration", type=float, default=8.0, help="seconds per configuration")
    p.add_argument("--no-variants", action="store_true", help="skip building fp16/int8 models")
    p.add_argument("--out-dir", type=Path, default=RESULTS)
    p.add_argument("--note", default="", help="conditions to record (e.g. 'CPU shared with training')")
    p.add_argument("--quick", action="store_true", help="a smoke run of the driver itself")
    p.add_argument("--readme", type=Path, help="also write README's benchmark table from this run")
    p.add_argument("--streams", default="1,4,8,12,16,20",
                   help="numbers of 30 fps streams through one pipeline (the curve; '' skips it)")
    args = p.parse_args(argv)

    from engines.defaults import DEFAULT_CHECKPOINT, DEFAULT_ONNX
    from streamer.bench.machine import describe
    from streamer.cli import main as streamer

    work = Path(tempfile.mkdtemp(prefix="sonostream-bench-"))
    note = args.note
    if args.model:
        onnx_path, checkpoint = Path(args.model), args.checkpoint and Path(args.checkpoint)
    elif DEFAULT_ONNX.is_file():
        onnx_path, checkpoint = DEFAULT_ONNX, DEFAULT_CHECKPOINT if DEFAULT_CHECKPOINT.is_file() else None
    else:
        onnx_path, checkpoint = random_model(work)
        note += " Model: random-init compact (the bundled model was absent; same arithmetic)."
    bench = ["bench", "--model", str(onnx_path), "--duration", str(args.duration)]
    bench += ["--streams", args.streams] if args.streams and not args.quick else []
    bench += ["--checkpoint", str(checkpoint)] if checkpoint else []
    if not args.no_variants and not args.quick:
        for precision, path in build_variants(onnx_path, work).items():
            bench += [f"--onnx-{precision}", str(path)]
    stem = args.out_dir / f"{dt.date.today():%Y-%m-%d}-{host_kind(describe())}"
    stem.parent.mkdir(parents=True, exist_ok=True)
    rc = streamer([*bench, *(["--quick"] if args.quick else []), "--json", f"{stem}.json",
                   "--plot", f"{stem}.png"])
    if rc == 0:
        write_markdown(json.loads(Path(f"{stem}.json").read_text()), Path(f"{stem}.md"), note.strip())
        print(f"wrote {stem}.md")
        if args.readme:
            from readme_table import main as readme_table

            readme_table([f"{stem}.json", "--readme", str(args.readme), "--note", note.strip()])
    return rc


if __name__ == "__main__":
    sys.exit(main())
