"""streamer calibrate: an FP32 ONNX model to explicit Q/DQ INT8 from representative frames."""

from __future__ import annotations

import sys
from pathlib import Path

from streamer.errors import UserError

HELP = "quantise an ONNX model to INT8 (explicit Q/DQ) from representative frames"


def add_arguments(p) -> None:
    p.add_argument("--onnx", required=True, help="FP32 ONNX model (from streamer export)")
    p.add_argument("--data", required=True,
                   help="frames: sim:n=200,seed=1, a folder of images or a video file")
    p.add_argument("--out", required=True, help="output INT8 .onnx path")
    p.add_argument("--method", choices=("entropy", "percentile", "minmax"), default="entropy",
                   help="activation range calibration (default: entropy)")
    p.add_argument("--frames", type=int, default=200, help="frames to read from --data (default: 200)")
    p.add_argument("--held-out", type=int, default=32,
                   help="frames kept out of calibration for the comparison (default: 32)")
    p.add_argument("--target", choices=("tensorrt", "cpu"), default="tensorrt",
                   help="Q/DQ placement for TensorRT (symmetric, float outputs) or for ONNX Runtime "
                        "on the CPU (U8S8, fused QLinearConv: faster than FP32 on VNNI CPUs)")
    p.add_argument("--proposal", choices=("auto", "float", "int8"), default="auto",
                   help="soft-proposal MatMuls: measured choice (auto), kept float, or quantised")
    p.add_argument("--eval-data", metavar="SPEC",
                   help="with --report: labelled frames (e.g. sim:n=2000,seed=1000) for the mean "
                        "accuracy and pointing-game change of fp16/int8 against fp32")
    p.add_argument("--report", metavar="DIR",
                   help="write precision_report.json/.md comparing fp16 and int8 with fp32")


def log_polar_note(data: str) -> None:
    print(f"note: the model takes polar (beam-space) frames; {data} is used as it is, so it "
          "should hold polar frames too", file=sys.stderr)


def run(args) -> int:
    import tempfile

    import onnx

    from calibration.frames import split
    from calibration.int8 import choose_proposal_precision, quantize_int8
    from calibration.report import compare, write_report
    from engines.precision import convert_fp16
    from streamer.cli import inputs

    if args.frames < 2 or args.held_out < 0 or args.held_out >= args.frames:
        raise UserError("--frames must be ≥ 2 and --held-out between 0 and --frames - 1")
    info = inputs.model_info(args.onnx)
    if info.precision != "fp32":
        raise UserError(f"{args.onnx} is already {info.precision}; calibrate the FP32 export")
    from engines.datasets import for_representation

    data = for_representation(args.data, info.representation, info.recipe.name)
    if info.representation == "polar" and data.split(":", 1)[0] != "sim":
        log_polar_note(data)
    frames = inputs.frames(data, info.input_size, args.frames)
    calib, held = split(frames, args.held_out)
    if not len(held) and (args.report or args.proposal == "auto"):
        raise UserError("--held-out 0 leaves no frames to judge INT8 on (the report and "
                         "--proposal auto need them): give --held-out ≥ 1")
    tried = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.proposal == "auto":
            best, tried = choose_proposal_precision(args.onnx, calib, held, tmp, args.method,
                                                     args.target)
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_bytes(best.read_bytes())
        else:
            quantize_int8(args.onnx, calib, args.out, method=args.method,
                          quantise_proposal=args.proposal == "int8", target=args.target)
    print(f"wrote {args.out} (INT8 Q/DQ for {args.target}, {args.method}): calibrated on "
          f"{len(calib)} of the {len(frames)} frames read (--frames {args.frames}); {len(held)} held "
          "out, spread over the set, to judge the result (--held-out)")
    if args.report:
        fp16_path = Path(args.report) / (Path(args.onnx).stem + ".fp16.onnx")
        fp16_path.parent.mkdir(parents=True, exist_ok=True)
        fp16, kept = convert_fp16(onnx.load(args.onnx), calib[:16])
        onnx.save(fp16, str(fp16_path))
        results = compare(args.onnx, {"fp16": fp16_path, "int8": args.out}, held)
        report = {"model": str(args.onnx), "data": data, "held_out_frames": len(held),
                  "method": args.method, "fp16_fp32_nodes": kept, "proposal_trials": tried,
                  "results": results}
        if args.eval_data:
            from calibration.report import evaluate_pair

            dataset = inputs.dataset(args.eval_data, info.representation, info.input_size,
                                     info.recipe.name)
            report["accuracy"] = {name: evaluate_pair(args.onnx, path, dataset)
                                  for name, path in (("fp16", fp16_path), ("int8", Path(args.out)))}
        js, md = write_report(report, args.report)
        print(f"wrote {js} and {md}")
    return 0
