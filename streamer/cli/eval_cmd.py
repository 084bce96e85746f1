"""streamer eval: detection and localisation metrics of a model on labelled frames."""

from __future__ import annotations

from pathlib import Path

from streamer.errors import UserError

HELP = "evaluate a model: per-class accuracy/precision/recall/F1/AP, pointing game, box IoU"


def add_arguments(p) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument("--checkpoint", help="torch checkpoint (.pt)")
    src.add_argument("--onnx", help="ONNX model (runs on ONNX Runtime)")
    p.add_argument("--data", default="sim:n=2000,seed=1000,style=train", help="data spec")
    p.add_argument("--out", required=True, help="folder for report.json, report.md, maps.png")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--examples", type=int, default=8, help="frames drawn in maps.png (0: none)")
    p.add_argument("--quiet", action="store_true")


def run(args) -> int:
    from engines.datasets import for_representation
    from engines.defaults import default_onnx
    from engines.evaluation import evaluate, write_report
    from engines.report_grid import write_grid
    from streamer.cli import inputs

    if args.batch_size < 1 or not 0 < args.threshold < 1 or args.examples < 0:
        raise UserError("--batch-size must be ≥ 1, --threshold in (0, 1) and --examples ≥ 0")
    model = args.checkpoint or args.onnx or default_onnx()
    if str(model).endswith(".onnx"):
        info = inputs.model_info(model)
        size, representation, recipe = info.input_size, info.representation, info.recipe.name
    else:
        from engines.input_recipe import InputRecipe

        payload = inputs.checkpoint(model)
        config = payload.get("config", {}) if isinstance(payload, dict) else {}
        size, representation = config.get("input_size", 224), config.get("representation", "sector")
        recipe = InputRecipe.from_json(config.get("extra", {}).get("recipe")).name
        inputs.load_model(model)  # the weights fit the architecture, or one line
    dataset = inputs.dataset(args.data, representation, size, recipe)
    args.data = for_representation(args.data, representation, recipe)
    report, ex = evaluate(model, dataset, batch_size=args.batch_size, progress=not args.quiet,
                          threshold=args.threshold, keep=args.examples)
    report["data"] = args.data
    out = write_report(report, args.out)
    if args.examples:
        write_grid(Path(out) / "maps.png", ex["examples"], ex["probabilities"], report["classes"])
    print((Path(out) / "report.md").read_text())
    return 0
