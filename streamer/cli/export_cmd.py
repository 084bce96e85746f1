"""streamer export: a checkpoint (or a fresh architecture) to a static ONNX graph."""

from __future__ import annotations

from streamer.errors import UserError

HELP = "export a model to ONNX with the soft proposal unrolled to a fixed count"


def add_arguments(p) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument("--checkpoint", help="sonostream or fetalnav checkpoint (default: the bundled model)")
    src.add_argument("--arch", help="random-initialised architecture (for tests and timing)")
    p.add_argument("--head", choices=("shared", "per_class"), default="shared", help="with --arch")
    p.add_argument("--out", required=True, help="output .onnx path")
    p.add_argument("--iterations", type=int, default=None,
                   help="unrolled soft-proposal iterations (default: the model's)")
    p.add_argument("--mode", choices=("unrolled", "stationary"), default="unrolled",
                   help="static soft-proposal form")
    p.add_argument("--batch", choices=("1", "dynamic"), default="1", help="batch dimension")


def run(args) -> int:
    try:
        from engines.export import export_onnx
        from engines.model import ModelConfig, SPNModel
    except ImportError as exc:
        raise UserError(f"export needs torch (pip install 'sonostream[train]'): {exc}") from exc
    from engines.defaults import default_checkpoint
    from engines.model_info import file_sha256
    from streamer.cli import inputs

    if args.iterations is not None and args.iterations < 1:
        raise UserError("--iterations must be ≥ 1")
    if args.arch:
        model, digest = SPNModel(ModelConfig(arch=args.arch, head=args.head)).eval(), ""
    else:
        path = args.checkpoint or default_checkpoint()
        model, digest = inputs.load_model(path), file_sha256(path)
    out = export_onnx(model, args.out, iterations=args.iterations, mode=args.mode,
                      dynamic_batch=args.batch == "dynamic", source_sha256=digest)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")
    return 0
