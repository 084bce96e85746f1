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


class Trainer:
    def __init__(self, cfg: TrainConfig, train, val):
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
        if tuple(val.classes) != self.classes:
            raise ValueError(f"the validation classes {list(val.classes)} differ from the "
                             f"training classes {list(self.classes)}")
        representation = cfg.representation or getattr(train, "representation", "sector")
        recipe = getattr(train, "recipe", None)  # the data set's input recipe (fetalnav: data)
        mcfg = ModelConfig(arch=cfg.arch, head=cfg.head, classes=self.classes,
                           input_size=cfg.input_size, representation=representation,
                           extra={"recipe": dict(recipe.__dict__)} if recipe else {})
        self.model = SPNModel(mcfg)
        if cfg.init:  # before the frames are read: a start that does not fit fails at once
            self._start_from(cfg.init)
        self.train_x, self.train_y = materialise(train, cfg.progress, "training frames")
        self.val_x, self.val_y = materialise(val, cfg.progress, "validation frames")
        self.opt = torch.optim.SGD(self.model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                   weight_decay=cfg.weight_decay)
        self.sched = torch.optim.lr_scheduler.StepLR(self.opt, cfg.lr_step, cfg.lr_gamma)
        self.rng = np.random.default_rng(cfg.seed)
        self.epoch, self.best, self.history = 0, -1.0, []
        if cfg.resume and (self.out / "last.pt").is_file():
            self._resume(self.out / "last.pt")

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
        self.history = json.loads(state["history"])
        self.rng = np.random.default_rng([self.cfg.seed, self.epoch])
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
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
        self.sched.step()
        return float(np.mean(losses))

    def validate(self) -> dict:
        prob = probabilities(predict(self.model, self.val_x), self.model.cfg.activation)
        return detection_report(self.val_y, prob, self.classes)

    def run(self) -> Path:
        while self.epoch < self.cfg.epochs:
            start, lr = time.time(), self.opt.param_groups[0]["lr"]  # the rate this epoch trains at
            loss = self.train_epoch()
            self.epoch += 1
            report = self.validate()
            acc = report["mean_accuracy"]
            self.history.append({"epoch": self.epoch, "loss": loss, "val_mean_accuracy": acc,
                                 "lr": lr, "seconds": time.time() - start})
            log.info("epoch %d: loss %.4f, validation mean accuracy %.4f", self.epoch, loss, acc)
            if acc > self.best:
                self.best = acc
                self._save("best.pt")
            self._save("last.pt")
        return self.finish()

    def _save(self, name: str) -> Path:
        return save_checkpoint(
            self.model, self.out / name, epoch=self.epoch, best=self.best,
            optimizer=self.opt.state_dict(), scheduler=self.sched.state_dict(),
            history=json.dumps(self.history), train_config=json.dumps(asdict(self.cfg)),
        )

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
