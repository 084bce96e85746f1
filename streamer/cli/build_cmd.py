"""streamer build: an ONNX model (precision decided in the graph) to a TensorRT plan + sidecar."""

from __future__ import annotations

from pathlib import Path

HELP = "build a TensorRT plan from an ONNX model (fp32, fp16 or int8 Q/DQ; strongly typed)"


def add_arguments(p) -> None:
    p.add_argument("--onnx", required=True, help="ONNX model (streamer export / calibrate)")
    p.add_argument("--out", help="plan path (default: the ONNX path with .plan)")
    p.add_argument("--precision", choices=("auto", "fp16"), default="auto",
                   help="auto: as the ONNX says; fp16: convert an FP32 ONNX to mixed FP16 first")
    p.add_argument("--batch", default="1", help="batch sizes, e.g. 1 or 1,8,32 (optimised for the first)")
    p.add_argument("--workspace-mb", type=int, default=1024, help="builder workspace (MB)")
    p.add_argument("--timing-cache", metavar="FILE", help="load and save TensorRT's timing cache here")
    p.add_argument("--data", default="sim:n=32,seed=7",
                   help="frames for measuring the FP16 conversion (with --precision fp16)")
    p.add_argument("--force", action="store_true", help="rebuild even if a fitting plan exists")


def parse_batches(text: str) -> tuple[int, ...]:
    try:
        batches = tuple(int(b) for b in text.split(","))
    except ValueError:
        raise ValueError(f"--batch must be comma-separated integers, got {text!r}") from None
    if min(batches) < 1:
        raise ValueError("--batch sizes must be ≥ 1")
    return batches


def _fp16_onnx(onnx_path: Path, data: str) -> Path:
    import onnx

    from calibration.frames import load_frames
    from engines.model_info import ModelInfo
    from engines.precision import convert_fp16

    info = ModelInfo.from_onnx(onnx_path)
    if info.precision != "fp32":
        raise ValueError(f"--precision fp16 needs an FP32 ONNX; {onnx_path} is {info.precision}")
    out = onnx_path.with_suffix(".fp16.onnx")
    model, kept = convert_fp16(onnx.load(str(onnx_path)), load_frames(data, info.input_size, 32))
    onnx.save(model, str(out))
    print(f"wrote {out} ({len(kept)} nodes kept FP32)")
    return out


def run(args) -> int:
    from engines.tensorrt.build import BuildOptions, build_plan, ensure_plan

    onnx_path = Path(args.onnx)
    if not onnx_path.is_file():
        raise FileNotFoundError(f"ONNX model not found: {onnx_path}")
    options = BuildOptions(parse_batches(args.batch), args.workspace_mb, args.timing_cache)
    if args.precision == "fp16":
        onnx_path = _fp16_onnx(onnx_path, args.data)
    plan = Path(args.out) if args.out else onnx_path.with_suffix(".plan")
    side = build_plan(onnx_path, plan, options) if args.force else ensure_plan(plan, onnx_path, options)
    if side.batch_range != [min(options.batch_sizes), max(options.batch_sizes)]:
        side = build_plan(onnx_path, plan, options)  # fits this GPU, but not the batches asked for
    print(f"plan {plan}: {side.precision}, TensorRT {side.tensorrt_version}, {side.gpu_name} "
          f"(sm {side.compute_capability}), batches {side.batch_range}")
    return 0
