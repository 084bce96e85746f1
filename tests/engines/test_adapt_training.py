"""What streamer adapt needs of the trainer (also `streamer train`'s): validation may lack a class,
early stopping, the starting weights kept unless beaten, and a resumed run equal to an
uninterrupted one."""

import json

import numpy as np
import pytest
import torch

from engines.adapt.data import Frames
from engines.checkpoint import load_checkpoint, read_checkpoint
from engines.model import ModelConfig, SPNModel
from engines.train_config import TrainConfig
from engines.training import Trainer


def frames(n: int, classes=("head", "spine"), seed: int = 0) -> Frames:
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, len(classes))) < 0.5).astype(np.float32)
    images = (rng.random((n, 64, 64)) * 255).astype(np.uint8)
    images[labels[:, 0] > 0, 10:30, 10:30] = 255  # something to learn
    return Frames(images, labels, [f"l{i % 3}" for i in range(n)], tuple(classes))


def config(tmp_path, **kw) -> TrainConfig:
    kw = {"epochs": 3, "batch_size": 4, "input_size": 64, "progress": False, "seed": 1, **kw}
    return TrainConfig(data="mem", val="mem", out=str(tmp_path), **kw)


def weights(path):
    return load_checkpoint(path).state_dict()


def test_validation_lacking_a_class_is_accepted_and_counts_frames_without_it(tmp_path):
    """Before: ValueError "the validation classes ['head'] differ from the training classes"."""
    val = frames(6, ("head",), seed=1)
    trainer = Trainer(config(tmp_path, epochs=1), frames(8), val)
    assert trainer.val_y.shape == (6, 2) and not trainer.val_y[:, 1].any()
    assert trainer.val_y[:, 0].tolist() == val.labels[:, 0].tolist()
    trainer.run()


def test_a_class_only_validation_names_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"\['limbs'\] only in validation"):
        Trainer(config(tmp_path), frames(8), frames(4, ("head", "limbs")))


def scripted(monkeypatch, scores):
    """validate() reports these mean accuracies in turn (epoch 0 first when it is scored)."""
    it = iter(scores)
    monkeypatch.setattr(Trainer, "validate", lambda self: {"mean_accuracy": next(it), "loss": 0.5})


def test_early_stopping_stops_after_patience_epochs_without_a_better_score(tmp_path, monkeypatch):
    scripted(monkeypatch, [0.5, 0.7, 0.6, 0.65, 0.9, 0.9])
    trainer = Trainer(config(tmp_path, epochs=6, patience=2), frames(8), frames(4))
    model_path = trainer.run()
    assert [h["epoch"] for h in trainer.history] == [1, 2, 3, 4]  # 3 and 4 no better than 2
    assert read_checkpoint(model_path)["epoch"] == 2
    assert json.loads((tmp_path / "history.json").read_text())["history"][-1]["epoch"] == 4


def test_the_starting_weights_are_kept_unless_an_epoch_beats_them(tmp_path, monkeypatch):
    scripted(monkeypatch, [0.8, 0.7, 0.75])
    model = SPNModel(ModelConfig(classes=("head", "spine"), input_size=64))
    start = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = Trainer(config(tmp_path, epochs=2, keep_start=True), frames(8), frames(4),
                      model=model)
    out = weights(trainer.run())
    assert [h["epoch"] for h in trainer.history] == [0, 1, 2]
    assert all(torch.equal(out[k], start[k]) for k in start)


class Interrupt(Exception):
    pass


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path, monkeypatch):
    """Before: a resumed run drew epoch 2's batches from a fresh generator, so it ended with other
    weights than the run that was never stopped."""
    data, val = frames(16), frames(6, seed=2)
    Trainer(config(tmp_path / "whole"), data, val).run()
    whole = read_checkpoint(tmp_path / "whole" / "last.pt")["state_dict"]  # epoch 3's, not the best

    batches = Trainer._batches

    def stop_in_epoch_2(self):
        for i, batch in enumerate(batches(self)):
            if self.epoch == 1 and i == 2:
                raise Interrupt
            yield batch

    monkeypatch.setattr(Trainer, "_batches", stop_in_epoch_2)
    with pytest.raises(Interrupt):
        Trainer(config(tmp_path / "cut"), data, val).run()
    assert read_checkpoint(tmp_path / "cut" / "last.pt")["epoch"] == 1
    monkeypatch.setattr(Trainer, "_batches", batches)
    resumed = Trainer(config(tmp_path / "cut", resume=True), data, val)
    assert resumed.epoch == 1
    resumed.run()
    again = read_checkpoint(tmp_path / "cut" / "last.pt")["state_dict"]
    assert all(torch.equal(again[k], whole[k]) for k in whole)


def test_train_command_takes_a_validation_folder_lacking_a_class(tmp_path, capsys):
    """Before: exit 2, "the validation classes ['head'] differ from the training classes"."""
    import cv2

    from streamer.cli import main

    def folder(name, header, rows):
        d = tmp_path / name
        d.mkdir()
        lines = [header]
        for i, labels in enumerate(rows):
            cv2.imwrite(str(d / f"{i}.png"), np.full((64, 64), 40 * i % 255, np.uint8))
            lines.append(f"{i}.png," + ",".join(map(str, labels)))
        (d / "labels.csv").write_text("\n".join(lines) + "\n")
        return d

    train = folder("train", "image,head,spine", [(1, 0), (0, 1), (1, 1), (0, 0)])
    val = folder("val", "image,head", [(1,), (0,)])
    code = main(["train", "--data", f"folder:{train}", "--val", f"folder:{val}", "--out",
                 str(tmp_path / "run"), "--epochs", "1", "--batch-size", "2", "--input-size", "64",
                 "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert load_checkpoint(tmp_path / "run" / "model.pt").cfg.classes == ("head", "spine")
    bad = folder("bad", "image,limbs", [(1,), (0,)])
    code = main(["train", "--data", f"folder:{train}", "--val", f"folder:{bad}", "--out",
                 str(tmp_path / "run2"), "--epochs", "1", "--input-size", "64", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "['limbs'] only in validation" in err[0]
    assert not (tmp_path / "run2").exists()
