"""streamer export: a checkpoint (or a fresh architecture) to a static ONNX graph."""

from __future__ import annotations

from engines.model_info import HEADS
from streamer.errors import UserError

HELP = "export a model to ONNX with the soft proposal unrolled to a fixed count"


def add_arguments(p) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument("--checkpoint", help="sonostream or fetalnav checkpoint (default: the bundled model)")
    src.add_argument("--arch", help="random-initialised architecture (for tests and timing)")
    p.add_argument("--head", choices=HEADS, default="shared", help="with --arch")
    p.add_argument("--out", help="output .onnx path (required unless --triton-repo)")
    p.add_argument("--iterations", type=int, default=None,
                   help="unrolled soft-proposal iterations (default: the model's)")
    p.add_argument("--mode", choices=("unrolled", "stationary"), default="unrolled",
                   help="static soft-proposal form")
    p.add_argument("--batch", choices=("1", "dynamic"), default="1", help="batch dimension")
    p.add_argument("--classes", help="with a checkpoint from the paper's code: its class names in "
                   "output order, comma-separated (default: the release's Abdomen, Background, "
                   "Head, Limbs, Placenta, Spine, Thorax)")
    p.add_argument("--activation", choices=("sigmoid", "softmax"),
                   help="with a checkpoint from the paper's code (default: sigmoid, as it trained)")
    p.add_argument("--triton-repo", metavar="DIR", help="also write a Triton model repository for "
                   "that ONNX (or the bundled model without --out): see docs/deploy.md")
    p.add_argument("--plan", help="with --triton-repo: serve this TensorRT plan (built from it)")
    p.add_argument("--model", metavar="ONNX|DIR", help="with --triton-repo and no --out: this ONNX "
                   "model, or a folder streamer adapt wrote (default: the bundled model)")


def _triton_repo(args, onnx) -> None:
    from engines.defaults import default_onnx
    from engines.serving.triton_repo import write_triton_repo

    config = write_triton_repo(onnx or default_onnx(), args.triton_repo, plan=args.plan)
    print(f"wrote {config.parent} (Triton model repository {args.triton_repo})")


def run(args) -> int:
    if args.plan and not args.triton_repo:
        raise UserError("--plan goes with --triton-repo")
    if args.model and (args.out or not args.triton_repo):
        raise UserError("--model goes with --triton-repo, without --out")
    if not args.out:
        if not args.triton_repo:
            raise UserError("--out is required (or --triton-repo for the bundled model)")
        from streamer.cli.inputs import model_file

        _triton_repo(args, model_file(args.model) if args.model else None)
        return 0
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
        overrides = {"classes": [c.strip() for c in args.classes.split(",")]} if args.classes else {}
        if args.activation:
            overrides["activation"] = args.activation
        model, digest = inputs.load_model(path, **overrides), file_sha256(path)
    out = export_onnx(model, args.out, iterations=args.iterations, mode=args.mode,
                      dynamic_batch=args.batch == "dynamic", source_sha256=digest)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")
    if args.triton_repo:
        _triton_repo(args, out)
    return 0
