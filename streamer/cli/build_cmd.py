"""streamer build: an ONNX model (precision decided in the graph) to a TensorRT plan + sidecar."""

from __future__ import annotations

from pathlib import Path

from streamer.errors import UserError

HELP = "build a TensorRT plan from an ONNX model (fp32, fp16 or int8 Q/DQ; strongly typed)"
FP16_FRAMES = "sim:n=32,seed=7"  # what the FP16 conversion is measured on (scripts/gpu_check too)


def add_arguments(p) -> None:
    p.add_argument("--onnx", required=True, help="ONNX model (streamer export / calibrate)")
    p.add_argument("--out", help="plan path (default: the ONNX path with .plan)")
    p.add_argument("--precision", choices=("auto", "fp16"), default="auto",
                   help="auto: as the ONNX says; fp16: convert an FP32 ONNX to mixed FP16 first")
    p.add_argument("--batch", default="1", help="batch sizes, e.g. 1 or 8,32: the plan runs batch 1 up "
                                                "to the largest, optimised for the first")
    p.add_argument("--workspace-mb", type=int, default=1024, help="builder workspace (MB)")
    p.add_argument("--timing-cache", metavar="FILE", help="load and save TensorRT's timing cache here")
    p.add_argument("--data", default=FP16_FRAMES,
                   help="frames for measuring the FP16 conversion (with --precision fp16)")
    p.add_argument("--no-tf32", action="store_true",
                   help="strict FP32: TensorRT otherwise runs FP32 convolutions and matmuls in TF32")
    p.add_argument("--device", default="cuda", help="the GPU to build on and for, cuda or cuda:N")
    p.add_argument("--force", action="store_true", help="rebuild even if a fitting plan exists")


def parse_batches(text: str) -> tuple[int, ...]:
    try:
        batches = tuple(int(b) for b in text.split(","))
    except ValueError:
        raise UserError(f"--batch must be comma-separated integers, got {text!r}") from None
    if min(batches) < 1:
        raise UserError("--batch sizes must be ≥ 1")
    return batches


def fp16_onnx(onnx_path: Path, data: str = FP16_FRAMES, out: Path | None = None) -> Path:
    """An FP32 ONNX converted to mixed FP16, measured on the frames of ``data``."""
    import onnx

    from calibration.frames import load_frames
    from engines.model_info import ModelInfo
    from engines.precision import convert_fp16

    info = ModelInfo.from_onnx(onnx_path)
    if info.precision != "fp32":
        raise UserError(f"--precision fp16 needs an FP32 ONNX; {onnx_path} is {info.precision}")
    out = out or onnx_path.with_suffix(".fp16.onnx")
    model, kept = convert_fp16(onnx.load(str(onnx_path)), load_frames(data, info.input_size, 32))
    onnx.save(model, str(out))
    print(f"wrote {out} ({len(kept)} nodes kept FP32)")
    return out


def run(args) -> int:
    from engines.tensorrt.build import BuildOptions, build_plan, ensure_plan
    from engines.tensorrt.cuda import device_index

    onnx_path = Path(args.onnx)
    if not onnx_path.is_file():
        raise FileNotFoundError(f"ONNX model not found: {onnx_path}")
    if not args.device.startswith("cuda"):
        raise UserError(f"--device must be cuda or cuda:N, got {args.device!r}")
    options = BuildOptions(parse_batches(args.batch), args.workspace_mb, args.timing_cache,
                           tf32=not args.no_tf32, device=device_index(args.device))
    if args.precision == "fp16":
        onnx_path = fp16_onnx(onnx_path, args.data)
    plan = Path(args.out) if args.out else onnx_path.with_suffix(".plan")
    side = build_plan(onnx_path, plan, options) if args.force else ensure_plan(plan, onnx_path, options)
    if side.batch_range != options.batch_range or side.tf32 != options.tf32:
        side = build_plan(onnx_path, plan, options)  # fits this GPU, but not what was asked for
    print(f"plan {plan}: {side.precision}, TensorRT {side.tensorrt_version}, {side.gpu_name} "
          f"(sm {side.compute_capability}), batches {side.batch_range[0]}..{side.batch_range[1]}"
          f"{'' if side.tf32 else ', strict FP32'}")
    return 0
