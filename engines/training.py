"""Weakly supervised training: image-level labels only (boxes are never seen here).

The paper's recipe as defaults (its code: SGD lr 0.05, momentum 0.6, weight decay 5e-4, batch 7,
30 epochs, lr ×0.1 every 5, class-balanced sampling, horizontal flips, [0,1] scaling).
Frames are materialised once into memory (on every core) so that generating them does not
compete with the cores that train.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm

from engines.augment import photometric
from engines.checkpoint import read_checkpoint, save_checkpoint
from engines.datasets.materialise import materialise
from engines.errors import UserError
from engines.model import ModelConfig, SPNModel
from engines.scoring import detection_report, probabilities
from engines.soft_proposal import choose_iterations, measure_convergence
from engines.train_config import TrainConfig

log = logging.getLogger(__name__)


def balanced_weights(labels: np.ndarray) -> np.ndarray:
    """Sampling weight per frame: rarer classes (and empty frames as a class) drawn more often."""
    groups = np.concatenate([labels, (labels.sum(1, keepdims=True) == 0)], axis=1).astype(bool)
    freq = groups.mean(0).clip(min=1.0 / len(labels))
    return np.array([np.mean(1.0 / freq[g]) for g in groups])


def to_tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).float().div_(255.0).unsqueeze(1)


def predict(model: SPNModel, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            out.append(model(to_tensor(images[i : i + batch_size]))[0].numpy())
    return np.concatenate(out)


def validation_columns(val_classes, classes) -> list[int | None]:
    """Per training class, its column in the validation labels (None: validation lacks it, so
    none of its frames shows it); ValueError when validation names a class training lacks."""
    val_classes, classes = tuple(val_classes), tuple(classes)
    extra = [c for c in val_classes if c not in classes]
    if extra:
        raise ValueError(f"the validation classes {list(val_classes)} differ from the training "
                         f"classes {list(classes)}: {extra} only in validation (validation may "
                         "lack a class, not add one)")
    return [val_classes.index(c) if c in val_classes else None for c in classes]


def _frames(dataset, progress: bool, what: str) -> tuple[np.ndarray, np.ndarray]:
    """A data set's images and labels in memory (one that holds them already hands them over)."""
    arrays = getattr(dataset, "arrays", None)
    return arrays() if callable(arrays) else materialise(dataset, progress, what)


class Trainer:
    def __init__(self, cfg: TrainConfig, train, val, model: SPNModel | None = None):
        """``model``: the model to train (its classes are the training data's), instead of one
        built from ``cfg`` (arch, head, init)."""
        from engines.datasets import open_dataset

        self.cfg = cfg
        self.out = Path(cfg.out)
        self.out.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(cfg.seed)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        train = train or open_dataset(cfg.data, input_size=cfg.input_size)
        val = val or open_dataset(cfg.val, input_size=cfg.input_size)
        self.classes = tuple(train.classes)
        columns = validation_columns(val.classes, self.classes)
        self.model = model if model is not None else self._new_model(train)
        if tuple(self.model.cfg.classes) != self.classes:
            raise ValueError(f"the model's classes {list(self.model.cfg.classes)} are not the "
                             f"training classes {list(self.classes)}")
        if cfg.init and model is None:  # before the frames are read: a bad start fails at once
            self._start_from(cfg.init)
        self.train_x, self.train_y = _frames(train, cfg.progress, "training frames")
        self.val_x, val_y = _frames(val, cfg.progress, "validation frames")
        self.val_y = np.stack([val_y[:, j] if j is not None else np.zeros(len(val_y), np.float32)
                               for j in columns], axis=1)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                   weight_decay=cfg.weight_decay)
        self.sched = torch.optim.lr_scheduler.StepLR(self.opt, cfg.lr_step, cfg.lr_gamma)
        self.rng = np.random.default_rng(cfg.seed)
        self.epoch, self.best, self.best_loss, self.history = 0, -1.0, float("inf"), []
        if cfg.resume and (self.out / "last.pt").is_file():
            self._resume(self.out / "last.pt")

    def _new_model(self, train) -> SPNModel:
        cfg = self.cfg
        representation = cfg.representation or getattr(train, "representation", "sector")
        recipe = getattr(train, "recipe", None)  # the data set's input recipe (fetalnav: data)
        return SPNModel(ModelConfig(arch=cfg.arch, head=cfg.head, classes=self.classes,
                                    input_size=cfg.input_size, representation=representation,
                                    extra={"recipe": dict(recipe.__dict__)} if recipe else {}))

    def _start_from(self, path: str) -> None:
        """The weights of checkpoint ``path`` (a narrower compact model is widened first, computing
        the same); one UserError naming it when they cannot start this model."""
        from engines.checkpoint import load_checkpoint

        try:
            start = load_checkpoint(path)
            if start.cfg.arch != self.model.cfg.arch:
                from engines.widen import widen

                log.info("widening %s into %s", start.cfg.arch, self.model.cfg.arch)
                start = widen(start, self.model.cfg.arch, seed=self.cfg.seed)
            self.model.load_state_dict(start.state_dict())
        except (ValueError, RuntimeError) as exc:  # unreadable, not widenable, or other shapes
            raise UserError(f"--init {path}: {str(exc).strip().splitlines()[0]}") from exc
        log.info("initialised from %s", path)

    def _resume(self, path: Path) -> None:
        state = read_checkpoint(path)
        self.model.load_state_dict(state["state_dict"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.epoch, self.best = int(state["epoch"]), float(state["best"])
        self.best_loss = float(state.get("best_loss", float("inf")))
        self.history = json.loads(state["history"])
        self.rng = np.random.default_rng([self.cfg.seed, self.epoch])
        if "rng" in state:  # the sampler's own state: the run goes on as if never stopped
            self.rng.bit_generator.state = json.loads(state["rng"])
        log.info("resumed from %s at epoch %d", path, self.epoch)

    def _batches(self):
        n, bs = len(self.train_x), self.cfg.batch_size
        if self.cfg.balanced:
            p = balanced_weights(self.train_y)
            order = self.rng.choice(n, size=n, replace=True, p=p / p.sum())
        else:
            order = self.rng.permutation(n)
        for i in range(0, n - bs + 1 if n >= bs else n, bs):
            idx = order[i : i + bs]
            x = self.train_x[idx]
            if self.cfg.augment:
                x = photometric(x, self.rng, self.cfg.augment)
            if self.cfg.hflip:
                flip = self.rng.random(len(idx)) < 0.5
                x = np.where(flip[:, None, None], x[:, :, ::-1], x)
            yield to_tensor(np.ascontiguousarray(x)), torch.from_numpy(self.train_y[idx])

    def train_epoch(self) -> float:
        self.model.train()
        losses = []
        steps = max(1, len(self.train_x) // self.cfg.batch_size)
        bar = tqdm(self._batches(), total=steps, desc=f"epoch {self.epoch + 1}/{self.cfg.epochs}",
                   disable=not self.cfg.progress, unit="batch")
        for x, y in bar:
            loss = F.binary_cross_entropy_with_logits(self.model(x)[0], y)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            losses.append(loss.item())
            if self.cfg.progress:
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}", all=self._left(bar, steps))
        self.sched.step()
        return float(np.mean(losses))

    def _left(self, bar, steps: int) -> str:
        """What the whole run has left at most (early stopping may end it sooner), from this
        epoch's pace and the epochs timed before it."""
        rate = bar.format_dict.get("rate") or (bar.n / max(bar.format_dict["elapsed"], 1e-9))
        if not rate:
            return "?"
        trained = [h for h in self.history if h["epoch"] > 0]
        epoch_s = trained[-1]["seconds"] if trained else steps / rate
        left = (steps - bar.n) / rate + (self.cfg.epochs - self.epoch - 1) * epoch_s
        return tqdm.format_interval(left) + " left"

    def validate(self) -> dict:
        scores = predict(self.model, self.val_x)
        report = detection_report(self.val_y, probabilities(scores, self.model.cfg.activation),
                                  self.classes)
        report["loss"] = float(F.binary_cross_entropy_with_logits(
            torch.from_numpy(scores), torch.from_numpy(self.val_y)))
        return report

    def stalled(self) -> bool:
        """Early stopping: ``patience`` epochs in a row without a better validation score."""
        if not self.cfg.patience or not self.history:
            return False
        marked = [h["epoch"] for h in self.history if h.get("best")]  # older runs: the top score
        best = max(marked) if marked else max(self.history, key=lambda h: h["val_mean_accuracy"])["epoch"]
        return self.epoch - best >= self.cfg.patience

    def _score_start(self) -> None:
        """Epoch 0: the starting weights' validation score, the one to beat (keep_start)."""
        start, report = time.time(), self.validate()
        self.best, self.best_loss = report["mean_accuracy"], report["loss"]
        self.history.append({"epoch": 0, "loss": None, "val_mean_accuracy": self.best,
                             "val_loss": self.best_loss, "best": True, "lr": 0.0,
                             "seconds": time.time() - start})
        log.info("epoch 0 (the starting weights): validation mean accuracy %.4f", self.best)
        self._save("best.pt")

    def run(self) -> Path:
        if self.cfg.keep_start and not self.history:
            self._score_start()
        while self.epoch < self.cfg.epochs and not self.stalled():
            start, lr = time.time(), self.opt.param_groups[0]["lr"]  # the rate this epoch trains at
            loss = self.train_epoch()
            self.epoch += 1
            report = self.validate()
            acc, val_loss = report["mean_accuracy"], report["loss"]
            better = acc > self.best or (acc == self.best and val_loss < self.best_loss)
            self.history.append({"epoch": self.epoch, "loss": loss, "val_mean_accuracy": acc,
                                 "val_loss": val_loss, "best": better, "lr": lr,
                                 "seconds": time.time() - start})
            log.info("epoch %d: loss %.4f, validation mean accuracy %.4f", self.epoch, loss, acc)
            if better:  # the higher accuracy; on a tie, the lower validation loss
                self.best, self.best_loss = acc, val_loss
                self._save("best.pt")
            self._save("last.pt")
        if self.stalled():
            log.info("stopped early: no better validation score in the last %d epochs",
                     self.cfg.patience)
        return self.finish()

    def _save(self, name: str) -> Path:
        """Written whole to a temporary file and renamed, so a crash while saving leaves the
        previous checkpoint intact."""
        path = self.out / name
        tmp = path.with_name(f".{name}.tmp")
        save_checkpoint(
            self.model, tmp, epoch=self.epoch, best=self.best, best_loss=self.best_loss,
            optimizer=self.opt.state_dict(), scheduler=self.sched.state_dict(),
            history=json.dumps(self.history), train_config=json.dumps(asdict(self.cfg)),
            rng=json.dumps(self.rng.bit_generator.state),
        )
        tmp.replace(path)
        return path

    def finish(self) -> Path:
        """Reload the best weights, fix the unrolled count from measured convergence, save model.pt."""
        best = read_checkpoint(self.out / "best.pt")
        self.model.load_state_dict(best["state_dict"])
        self.model.eval()
        with torch.no_grad():
            u = self.model.proposal_input(to_tensor(self.val_x[:64]))
        needed = measure_convergence(u, self.model.cfg.factor)
        self.model.cfg = self.model.cfg.replace(iterations=choose_iterations(needed))
        (self.out / "history.json").write_text(json.dumps(
            {"arch": self.model.cfg.arch, "data": self.cfg.data, "augment": self.cfg.augment,
             "history": self.history, "convergence_iterations": needed,
             "unrolled_iterations": self.model.cfg.iterations}, indent=1))
        return save_checkpoint(self.model, self.out / "model.pt", epoch=best["epoch"])


def train(cfg: TrainConfig, train_data=None, val_data=None) -> Path:
    return Trainer(cfg, train_data, val_data).run()
