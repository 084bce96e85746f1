"""An adaptation from start to finish: split by loop, evaluate the starting model, train, export,
refit the OOD statistics, INT8 with its precision check, evaluate again, write the model card.

Every step's result is kept in the output folder's state file once it is done, so running the
same command again after Ctrl-C or a crash goes on from the step it stopped in (training from its
last finished epoch). INT8 calibration lives outside ``engines`` (``calibration`` imports
``engines``), so the caller hands it in as ``quantise``.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from engines.adapt import folder, steps
from engines.adapt.data import Frames
from engines.adapt.split import check_validation_classes, split_by_loop

log = logging.getLogger(__name__)
DEFAULT_IN_STYLE = "sim:n=500,seed=1000,style=classic"
DEFAULT_REHEARSE = "sim:n=600,seed=77,style=classic+train"  # the bundled model's training styles


@dataclass(frozen=True)
class AdaptConfig:
    out: str
    data: str = ""  # what the labelled frames are (the card names it)
    init: str = ""  # checkpoint to start from ("": the bundled model)
    val: str = ""  # validation loops of their own ("": held out of ``data`` by loop)
    val_fraction: float = 0.2
    epochs: int = 8
    patience: int = 0  # every epoch trains: 20-200 validation frames are too few to stop on
    batch_size: int = 16
    lr: float = 0.001  # gentler than 0.005, which lost more of the look's independent frames
    lr_step: int = 4
    lr_gamma: float = 0.3
    seed: int = 0
    in_style: str = DEFAULT_IN_STYLE  # the starting model's own style, to measure forgetting
    rehearse: str = ""  # frames of the starting model's own training data, mixed into training
    calibration_frames: int = 200
    int8_target: str = "tensorrt"
    threads: int = 0
    progress: bool = True

    def __post_init__(self):
        for name in ("epochs", "batch_size", "lr_step", "calibration_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if self.patience < 0 or self.lr <= 0 or not 0 < self.lr_gamma <= 1:
            raise ValueError("patience must be ≥ 0, lr > 0 and lr_gamma in (0, 1]")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")

    def fingerprint(self, data_id: str) -> dict:
        """What decides the result: a resumed run must have the same."""
        skip = {"out", "threads", "progress"}
        return {**{k: v for k, v in asdict(self).items() if k not in skip}, "data_id": data_id}


@dataclass
class Inputs:
    """What the caller read and checked before anything is written."""

    data: Frames  # labelled frames, classes already the starting model's (narrowed) ones
    start: object  # the starting SPNModel, narrowed to the labelled classes
    start_ood: object = None  # its OOD statistics, where it has some (the bundled model)
    start_onnx: Path | None = None  # its ONNX export as shipped, where there is one (the same
    # classes): judged as users run it, and no export to wait for
    val: Frames | None = None
    in_style: Frames | None = None
    rehearse: Frames | None = None  # trained on beside the user's frames, never judged on
    quantise: Callable | None = None  # (fp32 onnx, calibration, held-out, out, report dir) -> dict
    commands: dict | None = None  # name -> command line, for the card
    read_seconds: float = 0.0  # reading and checking everything above, this session


class Adaptation:
    def __init__(self, cfg: AdaptConfig, inputs: Inputs, state: dict, say=log.info):
        self.cfg, self.inputs, self.state, self.say = cfg, inputs, state, say
        self.out, self.work = Path(cfg.out), Path(cfg.out) / folder.WORK
        self.classes = tuple(inputs.start.cfg.classes)
        self.train_set, self.val_set, self.split = self._split()

    def _split(self):
        data, val = self.inputs.data, self.inputs.val
        if val is not None:
            check_validation_classes(data.labels, val.labels, self.classes, self.cfg.val)
            return data, val, {"train_loops": data.loop_names(), "val_loops": val.loop_names(),
                               "train_frames": len(data), "val_frames": len(val)}
        s = split_by_loop(data.loops, data.labels, self.cfg.val_fraction, self.cfg.seed)
        return data.subset(s.train), data.subset(s.val), s.as_dict()

    def step(self, name: str, what: str, fn: Callable[[], dict]) -> dict:
        done = self.state["steps"]
        if name in done:
            self.say(f"{what}: done before")
            return done[name]
        self.say(f"{what}...")
        start = time.perf_counter()
        result = fn()
        result["seconds"] = round(time.perf_counter() - start, 1)
        done[name] = result
        folder.write_state(self.out, self.state)
        return result

    def checks(self) -> dict[str, Frames]:
        """Validation loops and the in-style frames: where before and after are compared."""
        out = {"validation": self.val_set}
        if self.inputs.in_style is not None:
            out["in_style"] = self.inputs.in_style
        return out

    def before(self) -> dict:
        onnx = self.inputs.start_onnx or steps.export(self.inputs.start, self.work / "start.onnx")
        out = {name: steps.evaluate(onnx, f, self.classes) for name, f in self.checks().items()}
        if self.inputs.start_ood is not None:
            out["unfamiliar"] = {name: steps.unfamiliar(self.inputs.start_ood, onnx, f.images,
                                                        self.work)
                                 for name, f in self.checks().items()}
        return out

    def train(self) -> dict:
        from engines.train_config import TrainConfig
        from engines.training import Trainer

        c, m = self.cfg, self.inputs.start.cfg
        tc = TrainConfig(data=c.data or "labelled loops", val=c.val or "held-out loops",
                         out=str(self.work / "train"), epochs=c.epochs, batch_size=c.batch_size,
                         lr=c.lr, lr_step=c.lr_step, lr_gamma=c.lr_gamma, patience=c.patience,
                         seed=c.seed, threads=c.threads, resume=True, progress=c.progress,
                         keep_start=True, input_size=m.input_size, arch=m.arch, head=m.head,
                         representation=m.representation)
        frames = self.train_set
        if self.inputs.rehearse is not None:
            frames = frames.joined(self.inputs.rehearse)
        trainer = Trainer(tc, frames, self.val_set, model=self.inputs.start)
        path = trainer.run()
        shutil.copyfile(path, self.out / folder.CHECKPOINT)
        best = max(h["epoch"] for h in trainer.history if h.get("best"))
        trained = sum(h["epoch"] > 0 for h in trainer.history)
        return {"epochs": trained, "best_epoch": best, "stopped_early": trained < c.epochs,
                "rehearsal_frames": len(frames) - len(self.train_set),
                "history": trainer.history}

    def export(self) -> dict:
        from engines.checkpoint import load_checkpoint

        path = steps.export(load_checkpoint(self.out / folder.CHECKPOINT), self.work / "fp32.onnx")
        return {"onnx": str(path)}

    def ood(self) -> dict:
        tmp = self.work / "with_ood.onnx"
        shutil.copyfile(self.work / "fp32.onnx", tmp)
        result = steps.refit_ood(tmp, self.train_set, self.checks(), self.work,
                                 f"{len(self.train_set)} training frames of {self.cfg.data}")
        tmp.replace(self.out / folder.MODEL)
        return result

    def int8(self) -> dict:
        if self.inputs.quantise is None:
            return {"skipped": "no INT8 calibration here"}
        calib = steps.as_input(steps.spread(self.train_set.images, self.cfg.calibration_frames))
        held = steps.as_input(steps.spread(self.val_set.images, 32))
        result = self.inputs.quantise(self.out / folder.MODEL, calib, held,
                                      self.out / folder.INT8, self.out / folder.PRECISION)
        result["validation"] = steps.evaluate(self.out / folder.INT8, self.val_set, self.classes)
        return result

    def after(self) -> dict:
        return {name: steps.evaluate(self.out / folder.MODEL, f, self.classes)
                for name, f in self.checks().items()}

    def run(self) -> dict:
        started = time.perf_counter()
        self.say(f"{len(self.train_set)} training frames of {len(self.split['train_loops'])} loops, "
                 f"{len(self.val_set)} validation frames of {len(self.split['val_loops'])} loops; "
                 f"classes {', '.join(self.classes)}")
        self.state["split"] = self.split
        shown = self.val_set.labels.sum(0)
        self.state["val_positives"] = {c: int(n) for c, n in zip(self.classes, shown, strict=True)}
        self.step("before", "evaluating the starting model", self.before)
        self.step("train", "training", self.train)
        self.step("export", "exporting ONNX", self.export)
        self.step("ood", "refitting the OOD statistics on your frames", self.ood)
        self.step("int8", "INT8 calibration and its precision check", self.int8)
        self.step("after", "evaluating the adapted model", self.after)
        self.state["session_seconds"] = round(time.perf_counter() - started, 1)
        return self.state


def adapt(cfg: AdaptConfig, inputs: Inputs, state: dict, say=log.info) -> dict:
    """Run (or resume) the adaptation into ``cfg.out``; the state with every step's results."""
    from engines.adapt import card

    state = Adaptation(cfg, inputs, state, say).run()
    card.write(cfg, state, inputs)
    state["done"] = True
    folder.write_state(cfg.out, state)
    return state
