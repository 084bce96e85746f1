"""streamer bench: model-only and end-to-end latency/throughput beside a naive baseline."""

from __future__ import annotations

import sys
from pathlib import Path

from streamer.cli import CommandError
from streamer.errors import user_input

HELP = "measure latency and throughput (model only and end to end) beside a naive baseline"


def add_arguments(p) -> None:
    p.add_argument("--model", metavar="PATH", help="ONNX model (default: the bundled model)")
    p.add_argument("--checkpoint", metavar="PATH", help="PyTorch checkpoint for the torch backend and "
                   "the baseline (default: the bundled one, when --model is not given)")
    p.add_argument("--onnx-int8", metavar="PATH", help="also time this INT8 ONNX model")
    p.add_argument("--onnx-fp16", metavar="PATH", help="also time this FP16 ONNX model")
    p.add_argument("--duration", type=float, metavar="SECONDS", help="per configuration (default 5)")
    p.add_argument("--frames", type=int, metavar="N", help="stop each configuration after N frames")
    p.add_argument("--fps", metavar="LIST", help="end-to-end frame rates (default 30,60)")
    p.add_argument("--batches", metavar="LIST", help="model-only batch sizes (default 1,8)")
    p.add_argument("--max-batch", type=int, metavar="N", help="the pipeline's micro-batch limit at "
                   "saturation (default 4)")
    p.add_argument("--threads", metavar="LIST", help="ONNX Runtime intra-op thread counts to choose "
                   "from by measurement (default 1..usable cores, at most 4; 0 = its default)")
    p.add_argument("--preprocess-in-source", action="store_true", help="the pipeline preprocesses in "
                   "the source thread instead of a thread of its own (to compare the two)")
    p.add_argument("--spin", action="store_true", help="ONNX Runtime's worker threads spin between "
                   "calls ([model] spin), in every run: the model alone and the pipelines")
    p.add_argument("--streams", metavar="N[,N...]", help="also run N simulated 1080p 30 fps "
                   "scanners through one pipeline (one model), for each N: every stream's p50, "
                   "p99 and drops, the curve of p99 against N and the most streams held "
                   "(docs/many-streams.md)")
    p.add_argument("--quick", action="store_true", help="a smoke run of a few seconds: tiny counts, "
                   "one frame rate, batch 1, no thread sweep; too short for a verdict")
    p.add_argument("--json", metavar="FILE", help="write every figure and the machine description")
    p.add_argument("--plot", metavar="FILE.png", help="latency CDFs and throughput bars")


def _existing(path: str, what: str) -> Path:
    """The path of a model file that reads (ONNX) or one line; checkpoints are read if torch is."""
    import importlib.util

    from streamer.cli import inputs

    p = inputs.existing(path, what)
    if p.suffix == ".onnx":
        inputs.model_info(p)
    elif importlib.util.find_spec("torch") is not None:
        inputs.load_model(p)
    return p


def _models(args) -> tuple[Path, Path | None]:
    from engines.defaults import DEFAULT_CHECKPOINT, default_onnx

    if args.model:
        from engines.model_info import refuse_checkpoint

        refuse_checkpoint(args.model, " and give --model {onnx}; or time it with --checkpoint")
        onnx = _existing(args.model, "model file")
        checkpoint = None
    else:
        try:
            onnx = default_onnx()
        except FileNotFoundError as exc:
            raise CommandError(str(exc)) from None
        checkpoint = DEFAULT_CHECKPOINT if DEFAULT_CHECKPOINT.is_file() else None
    if args.checkpoint:
        checkpoint = _existing(args.checkpoint, "checkpoint")
    return onnx, checkpoint


def _numbers(text: str | None, kind, flag: str) -> tuple | None:
    if text is None:
        return None
    try:
        return tuple(kind(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise CommandError(f"{flag} takes a comma-separated list of numbers, got {text!r}") from None


def plan_from_args(args):
    from dataclasses import replace

    from streamer.bench.plan import BenchPlan, quick_plan

    onnx, checkpoint = _models(args)
    extra = {p: _existing(path, f"{p} model") for p, path in
             (("int8", args.onnx_int8), ("fp16", args.onnx_fp16)) if path}
    plan = quick_plan(onnx, checkpoint, extra) if args.quick else BenchPlan(onnx, checkpoint, extra)
    changes = {"duration_s": args.duration, "frames": args.frames,
               "fps": _numbers(args.fps, float, "--fps"), "batches": _numbers(args.batches, int, "--batches"),
               "max_batch": args.max_batch, "threads": _numbers(args.threads, int, "--threads"),
               "preprocess_in_source": True if args.preprocess_in_source else None,
               "spin": True if args.spin else None,
               "streams": _numbers(args.streams, int, "--streams")}
    with user_input("bench", (ValueError,)):  # the plan validates the flags
        return replace(plan, **{k: v for k, v in changes.items() if v is not None})


def run(args) -> int:
    from streamer.bench.report import plot, table, write_json
    from streamer.bench.runner import run_bench
    from streamer.bench.streams_report import plot_streams, streams_plot_path

    plan = plan_from_args(args)
    result = run_bench(plan, progress=sys.stderr.isatty())
    print(table(result))
    if args.json:
        print(f"wrote {write_json(result, args.json)}")
    if args.plot:
        print(f"wrote {plot(result, args.plot)}")
        if result.get("streams"):
            print(f"wrote {plot_streams(result, streams_plot_path(args.plot))}")
    return 0
