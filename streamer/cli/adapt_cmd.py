"""streamer adapt: your labelled loops → a model folder that streamer run, serve and export take.

Everything the user gives is read and checked before anything is written: the labels (one line
naming the file and line), the starting model, every frame of every labelled loop (one that does
not decode is named), the classes (a labelled class the model does not know, one no frame shows,
one only validation shows). The same command run again resumes an interrupted adaptation.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import sys
import time
from pathlib import Path

from streamer.errors import UserError

HELP = "adapt a model to your scanner from labelled loops (labels.csv over DICOM or video files)"
VIDEO = (".mp4", ".avi", ".mkv", ".mov")
FLAGS = {"epochs": "most epochs to train",
         "patience": "stop after this many epochs without a better validation score (0: never)",
         "batch_size": "frames per training step", "lr": "learning rate (SGD)",
         "lr_step": "epochs between learning-rate steps", "lr_gamma": "learning-rate step factor",
         "seed": "seed of the split and the sampling",
         "calibration_frames": "training frames INT8 is calibrated on",
         "threads": "torch threads (0: torch's default)"}
DICOM = (".dcm", ".dicom")


def add_arguments(p) -> None:
    from engines.adapt.run import DEFAULT_IN_STYLE, DEFAULT_REHEARSE, AdaptConfig

    d = AdaptConfig.__dataclass_fields__
    p.add_argument("--data", required=True, metavar="DIR",
                   help="labelled loops: a folder with labels.csv (file, frames, one 0/1 column per "
                        "class) over its DICOM or video files; dicom:DIR and video:DIR too")
    p.add_argument("--out", required=True, metavar="DIR", help="the model folder to write")
    p.add_argument("--init", default="", metavar="CHECKPOINT",
                   help="start from this checkpoint: ours, or a release checkpoint of the paper's "
                        "code (default: the bundled model)")
    p.add_argument("--classes", help="with a release checkpoint: its class names in output order")
    p.add_argument("--val", default="", metavar="DIR",
                   help="validation loops of their own (default: whole loops held out of --data)")
    p.add_argument("--val-fraction", type=float, default=d["val_fraction"].default,
                   help="share of the frames held out, whole loops at a time (default: %(default)s)")
    for name, text in FLAGS.items():
        f = d[name]
        p.add_argument("--" + name.replace("_", "-"), type=type(f.default), default=f.default,
                       help=f"{text} (default: %(default)s)")
    p.add_argument("--in-style", default=DEFAULT_IN_STYLE, metavar="SPEC",
                   help="frames of the starting model's own style, to measure what it forgets "
                        "('none': skip; default: %(default)s)")
    p.add_argument("--rehearse", default="auto", metavar="SPEC",
                   help="frames of the starting model's own training data mixed into training, so "
                        "that it keeps what it knew ('none'; default auto: for the bundled model "
                        f"{DEFAULT_REHEARSE}, none for another start)")
    p.add_argument("--int8-target", choices=("tensorrt", "cpu"), default="tensorrt",
                   help="Q/DQ placement of the INT8 model (default: %(default)s)")
    p.add_argument("--force", action="store_true",
                   help="write over a finished adaptation, another command's unfinished one, or a "
                        "folder no adaptation made")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def config(args):
    from engines.adapt.run import AdaptConfig

    try:
        return AdaptConfig(
            out=args.out, data=args.data, init=args.init, val=args.val,
            val_fraction=args.val_fraction, epochs=args.epochs, patience=args.patience,
            batch_size=args.batch_size, lr=args.lr, lr_step=args.lr_step, lr_gamma=args.lr_gamma,
            seed=args.seed, in_style="" if args.in_style == "none" else args.in_style,
            rehearse=rehearse_spec(args.rehearse, args.init),
            calibration_frames=args.calibration_frames, int8_target=args.int8_target,
            threads=args.threads, progress=not args.quiet)
    except ValueError as exc:
        raise UserError(f"adapt: {exc}") from None


def rehearse_spec(text: str, init: str) -> str:
    from engines.adapt.run import DEFAULT_REHEARSE

    if text == "auto":
        return DEFAULT_REHEARSE if _bundled(init) else ""
    return "" if text == "none" else text


def _bundled(init: str) -> bool:
    from engines.defaults import DEFAULT_CHECKPOINT

    return not init or os.path.realpath(init) == os.path.realpath(DEFAULT_CHECKPOINT)


def labelled_folder(spec: str) -> tuple[str, str, list]:
    """(kind, folder, label rows) of a --data/--val; one line naming what is wrong."""
    from engines.datasets.range_labels import read_range_labels

    scheme, colon, rest = spec.partition(":")
    kind, root = (scheme, rest) if colon and scheme in ("dicom", "video") else ("", spec)
    if not os.path.isdir(root):
        raise UserError(f"{spec}: not a folder")
    labels = os.path.join(root, "labels.csv")
    if not os.path.isfile(labels):
        raise UserError(f"{labels} not found: label the loops first (streamer label)")
    try:
        classes, rows = read_range_labels(labels)
    except (ValueError, OSError) as exc:
        raise UserError(str(exc)) from None
    if not rows:
        raise UserError(f"{labels}: no labelled loop")
    kinds = {"dicom" if r.file.lower().endswith(DICOM) else
             "video" if r.file.lower().endswith(VIDEO) else "other" for r in rows}
    if kinds - {kind or next(iter(kinds))} or "other" in kinds:
        raise UserError(f"{labels}: its files must all be DICOM ({', '.join(DICOM)}) or all video "
                        f"({', '.join(VIDEO)})" + (f", as {scheme}: says" if kind else ""))
    return kind or kinds.pop(), root, (classes, rows)


def data_id(root: str, rows) -> str:
    """labels.csv and the size of each loop it names: what a resumed run must find again."""
    h = hashlib.sha256(Path(root, "labels.csv").read_bytes())
    for name in sorted({r.file for r in rows}):
        path = os.path.join(root, name)
        h.update(f"{name}:{os.path.getsize(path) if os.path.isfile(path) else -1}".encode())
    return h.hexdigest()[:16]


def recipe_name(model) -> str:
    """The input recipe the model was trained with (older models: INTER_AREA's)."""
    from engines.input_recipe import InputRecipe

    return InputRecipe.from_json(model.cfg.extra.get("recipe")).name


def read_loops(spec: str, kind: str, root: str, model, progress: bool):
    """Every labelled frame as the streamer feeds the model for that source, with its loop."""
    from engines.adapt.data import read_frames
    from engines.datasets import for_representation, open_dataset

    cfg = model.cfg
    try:
        if kind == "video":
            from streamer.adapt_video import VideoLoops

            dataset = VideoLoops(root, cfg)
        else:
            dicom = for_representation(f"dicom:{root}", cfg.representation, recipe_name(model))
            dataset = open_dataset(dicom, cfg.input_size)
    except (ValueError, OSError) as exc:
        raise UserError(" ".join(str(exc).split())) from None
    return read_frames(dataset, lambda i: dataset.items[i][0], progress,
                       f"labelled frames of {spec}")


def spec_frames(spec: str, model, progress: bool, what: str):
    """Frames of a data spec (the starting model's own style), with their boxes, as the model
    takes them."""
    from engines.adapt.data import read_frames
    from streamer.cli import inputs

    cfg = model.cfg
    dataset = inputs.dataset(spec, cfg.representation, cfg.input_size, recipe_name(model))
    return read_frames(dataset, lambda i: spec, progress, f"{what} {spec}",
                       boxes=what != "rehearsal frames")


def quantiser(target: str, method: str = "entropy"):
    """INT8 Q/DQ of an FP32 ONNX model with its precision check (streamer calibrate's steps)."""

    def quantise(onnx, calib, held, out, report_dir) -> dict:
        import shutil
        import tempfile

        from calibration.int8 import choose_proposal_precision
        from calibration.report import compare, write_report

        with tempfile.TemporaryDirectory() as tmp:
            best, tried = choose_proposal_precision(onnx, calib, held, tmp, method, target)
            shutil.copyfile(best, out)
        results = compare(onnx, {"int8": out}, held)
        write_report({"model": str(onnx), "held_out_frames": len(held), "method": method,
                      "target": target, "proposal_trials": tried, "results": results}, report_dir)
        r = results["int8"]
        return {"target": target, "method": method, "calibration_frames": len(calib),
                "held_out_frames": len(held), "decision_agreement": r["decision_agreement"],
                "max_abs_dprob": r["max_abs_dprob"], "p50_ms": r.get("p50_ms"),
                "fp32_p50_ms": results["fp32"].get("p50_ms")}

    return quantise


def commands(args, kind: str, root: str, rows) -> dict[str, str]:
    from engines.adapt.card import commands as uses

    source = f"dicom:{root}" if kind == "dicom" else os.path.join(root, rows[0].file)
    out = uses(args.out, source)
    out["adapt"] = adapt_command(args)
    return out


def adapt_command(args) -> str:
    """This command as typed, in canonical form: --data, --out and every flag not at its default."""
    from engines.adapt.run import DEFAULT_IN_STYLE, AdaptConfig

    defaults = {k: f.default for k, f in AdaptConfig.__dataclass_fields__.items()
                if k not in ("out", "data")}
    defaults.update(in_style=DEFAULT_IN_STYLE, rehearse="auto", classes=None, force=False,
                    quiet=False)
    parts = ["streamer", "adapt", "--data", args.data, "--out", args.out]
    for name, default in defaults.items():
        value = getattr(args, name, default)
        if value == default or name in ("progress", "force", "quiet"):
            continue
        parts += ["--" + name.replace("_", "-"), str(value)]
    return " ".join(shlex.quote(p) for p in parts)


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _start(args, labelled, where):
    from engines.adapt.start import load_start, matched_classes, narrowed

    overrides = {"classes": [c.strip() for c in args.classes.split(",")]} if args.classes else {}
    start = load_start(args.init, **overrides)
    return narrowed(start, matched_classes(start.cfg.classes, labelled, where))


def _start_ood(init: str):
    """The bundled model's OOD statistics (its ONNX carries them), to say how familiar your
    frames looked to it; None for another start."""
    from engines import ood
    from engines.defaults import DEFAULT_ONNX

    return ood.load(DEFAULT_ONNX) if _bundled(init) else None


def prepare(args, cfg):
    """Everything read and checked; (fingerprint, mode, Inputs). Nothing written yet."""
    from engines.adapt import folder
    from engines.adapt.data import check_positives
    from engines.adapt.run import Inputs
    from engines.classes import REGIONS
    from engines.defaults import DEFAULT_ONNX

    kind, root, (labelled, rows) = labelled_folder(args.data)
    where = os.path.join(root, "labels.csv")
    start = _start(args, labelled, where)
    ids = data_id(root, rows)
    val_spec = None
    if args.val:
        val_spec = labelled_folder(args.val)
        ids += "+" + data_id(val_spec[1], val_spec[2][1])
    fingerprint = cfg.fingerprint(ids)
    mode = folder.check(cfg.out, fingerprint, args.force)
    data = read_loops(args.data, kind, root, start, cfg.progress).with_classes(start.cfg.classes)
    check_positives(data, where)
    val = None
    if val_spec is not None:
        val = read_loops(args.val, val_spec[0], val_spec[1], start, cfg.progress)
        only_val(val, start.cfg.classes, os.path.join(val_spec[1], "labels.csv"))
        val = val.with_classes(start.cfg.classes)
    extra = {name: spec_frames(spec, start, cfg.progress, what) if spec else None
             for name, spec, what in (("in_style", cfg.in_style, "in-style frames"),
                                      ("rehearse", cfg.rehearse, "rehearsal frames"))}
    shipped = DEFAULT_ONNX if _bundled(args.init) and start.cfg.classes == REGIONS else None
    return fingerprint, mode, Inputs(data=data, start=start, start_ood=_start_ood(args.init),
                                     start_onnx=shipped,
                                     val=val, quantise=quantiser(cfg.int8_target),
                                     commands=commands(args, kind, root, rows), **extra)


def only_val(val, classes, where: str) -> None:
    """A class validation frames show that no training frame is labelled with: one line."""
    from engines.adapt.split import check_validation_classes

    train = {c.lower() for c in classes}
    extra = [c for c in val.classes if c.lower() not in train]
    if extra:
        import numpy as np

        ones = np.ones((1, len(extra)), np.float32)
        check_validation_classes(ones * 0, val.with_classes(extra).labels, extra, where)


def run(args) -> int:
    from engines.adapt import folder
    from engines.adapt.run import adapt

    cfg = config(args)
    started = time.perf_counter()
    fingerprint, mode, inputs = prepare(args, cfg)
    inputs.read_seconds = round(time.perf_counter() - started, 1)
    state = folder.begin(cfg.out, fingerprint, mode)
    if mode == "resume":
        say(f"resuming the adaptation in {cfg.out}")
    try:
        state = adapt(cfg, inputs, state, say)
    except KeyboardInterrupt:
        say(f"interrupted: run the same command again to resume ({cfg.out} keeps every finished "
            "epoch and step)")
        return 130
    steps = state["steps"]
    before, after = steps["before"]["validation"], steps["after"]["validation"]
    print(f"validation mean accuracy {100 * before['mean_accuracy']:.1f} → "
          f"{100 * after['mean_accuracy']:.1f}%; wrote {Path(cfg.out) / folder.CARD}")
    print(f"run it: {inputs.commands['run']}")
    return 0
