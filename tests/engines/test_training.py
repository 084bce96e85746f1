"""A tiny end-to-end train → export → eval run on a few dozen simulated frames."""

import json

import numpy as np
import pytest
import torch

from engines.checkpoint import load_checkpoint, read_checkpoint
from engines.training import TrainConfig, balanced_weights, train
from streamer.cli import main


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("train")
    cfg = TrainConfig(data="sim:n=24,seed=1", val="sim:n=12,seed=2", out=str(out), epochs=2,
                      batch_size=8, input_size=64, progress=False)
    return out, train(cfg)


def test_training_writes_checkpoints_and_history(trained):
    out, model_path = trained
    assert {p.name for p in out.glob("*.pt")} >= {"best.pt", "last.pt", "model.pt"}
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history["history"]] == [1, 2]
    assert (history["arch"], history["data"], history["augment"]) == ("compact", "sim:n=24,seed=1", 0.0)  # what each stage was
    assert history["history"][1]["lr"] == pytest.approx(0.05)
    model = load_checkpoint(model_path)
    assert model.cfg.input_size == 64 and 1 <= model.cfg.iterations <= 20
    assert model.cfg.iterations == history["unrolled_iterations"]


def test_history_records_the_rate_each_epoch_trained_at(tmp_path):
    """Not the rate the scheduler set for the next epoch (the README's training line reads it)."""
    cfg = TrainConfig(data="sim:n=8,seed=1", val="sim:n=4,seed=2", out=str(tmp_path), epochs=2,
                      batch_size=4, input_size=64, progress=False, lr=0.04, lr_step=1, lr_gamma=0.5)
    train(cfg)
    history = json.loads((tmp_path / "history.json").read_text())["history"]
    assert [h["lr"] for h in history] == pytest.approx([0.04, 0.02])


def test_resume_continues_where_it_stopped(trained, tmp_path):
    out, _ = trained
    cfg = TrainConfig(data="sim:n=24,seed=1", val="sim:n=12,seed=2", out=str(out), epochs=3,
                      batch_size=8, input_size=64, progress=False, resume=True)
    train(cfg)
    state = read_checkpoint(out / "last.pt")
    assert state["epoch"] == 3 and len(json.loads(state["history"])) == 3


def test_training_changes_the_weights_deterministically(tmp_path):
    def run(name):
        cfg = TrainConfig(data="sim:n=16,seed=1", val="sim:n=8,seed=2", out=str(tmp_path / name),
                          epochs=1, batch_size=8, input_size=64, progress=False, seed=5)
        return load_checkpoint(train(cfg)).head.adconv.weight
    torch.manual_seed(123)
    a = run("a")
    b = run("b")
    assert torch.equal(a, b)


def test_training_steps_lower_the_loss_and_move_the_weights(tmp_path):
    """Four epochs on 16 frames: the training loss on those frames falls and the weights leave their
    initial values (a trainer that never steps its optimiser fails both)."""
    from engines.training import Trainer, to_tensor

    cfg = TrainConfig(data="sim:n=16,seed=1,style=classic", val="sim:n=8,seed=2,style=classic", out=str(tmp_path), epochs=4,
                      batch_size=4, input_size=64, progress=False, seed=3, balanced=False,
                      hflip=False)
    trainer = Trainer(cfg, None, None)
    x, y = to_tensor(trainer.train_x), torch.from_numpy(trainer.train_y)

    def loss() -> float:
        trainer.model.eval()
        with torch.no_grad():
            return torch.nn.functional.binary_cross_entropy_with_logits(trainer.model(x)[0], y).item()

    initial = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    before = loss()
    trainer.run()
    after = loss()
    assert after < before - 0.005, (before, after)
    moved = [k for k, v in trainer.model.state_dict().items()
             if v.is_floating_point() and not torch.equal(v, initial[k])]
    assert {"features.0.weight", "head.adconv.weight", "head.classifier.0.weight"} <= set(moved)


def test_balanced_weights_favour_rare_classes():
    labels = np.array([[1, 0], [1, 0], [1, 0], [0, 1], [0, 0]], np.float32)
    w = balanced_weights(labels)
    assert w[3] > w[0] and w[4] > w[0]


def test_eval_cli_writes_report_table_and_grid(trained, tmp_path):
    _, model_path = trained
    onnx_path = tmp_path / "m.onnx"
    assert main(["export", "--checkpoint", str(model_path), "--out", str(onnx_path)]) == 0
    for flag, model in (("--checkpoint", model_path), ("--onnx", onnx_path)):
        out = tmp_path / flag.strip("-")
        assert main(["eval", flag, str(model), "--data", "sim:n=16,seed=3", "--out", str(out),
                     "--examples", "2", "--quiet"]) == 0
        report = json.loads((out / "report.json").read_text())
        assert 0 <= report["mean_accuracy"] <= 1 and 0 <= report["pointing_game"] <= 1
        assert set(report["per_class"]) == {"head", "spine", "thorax", "abdomen", "limbs", "placenta"}
        assert (out / "maps.png").stat().st_size > 1000 and "| head |" in (out / "report.md").read_text()
    assert "proposal" in json.loads((tmp_path / "checkpoint" / "report.json").read_text())["localisation"]
    torch_report = json.loads((tmp_path / "checkpoint" / "report.json").read_text())
    onnx_report = json.loads((tmp_path / "onnx" / "report.json").read_text())
    # the same frames through torch and ONNX Runtime: the same decisions, so the same numbers
    assert torch_report["mean_accuracy"] == onnx_report["mean_accuracy"]
    for name, t in torch_report["per_class"].items():
        o = onnx_report["per_class"][name]
        assert [t[k] for k in ("tp", "fp", "fn", "tn")] == [o[k] for k in ("tp", "fp", "fn", "tn")]
        # AP ranks the scores: float32 differences between the backends' kernels (~1e-6 here)
        # can swap two near-tied scores of a barely trained model, and one swap of a positive
        # with an adjacent negative moves AP by less than 1/P (P positives); a wrong ranking
        # (scores reversed, shuffled) moves it by far more
        positives = t["tp"] + t["fn"]
        assert t["pointing_game"] == o["pointing_game"]
        assert t["ap"] == pytest.approx(o["ap"], abs=1 / max(positives, 1))


def test_polar_frames_are_judged_on_the_sector_image():
    """A polar peak is mapped back to the sector image and tested against the sector's box."""
    from engines.datasets import open_dataset
    from engines.evaluation import localise

    polar = open_dataset("sim:n=8,seed=3,polar=1", input_size=64)
    sample = next(s for s in (polar[i] for i in range(8)) if s.sector is not None and s.boxes)
    polar_map, sector_boxes = sample.sector
    name = next(iter(sector_boxes))
    x0, y0, x1, y1 = sector_boxes[name]
    u, v = polar_map.image_to_polar((x0 + x1) / 2, (y0 + y1) / 2)  # the box centre, in polar pixels
    classes = ("head", "spine", "thorax", "abdomen", "limbs", "placenta")
    maps = np.zeros((1, 6, 16, 16), np.float32)
    maps[0, classes.index(name), int(v / 4), int(u / 4)] = 1.0  # 16×16 map cells over 64 px
    hit = localise(maps, [(sample.boxes, sample.sector)], classes, 64)
    assert hit["per_class"][name]["pointing_game"] == 1.0
    maps[0, classes.index(name)] = np.roll(maps[0, classes.index(name)], 8, axis=(0, 1))
    miss = localise(maps, [(sample.boxes, sample.sector)], classes, 64)
    assert miss["per_class"][name]["pointing_game"] == 0.0


def test_a_model_trained_on_polar_frames_says_so(tmp_path):
    from engines.datasets import for_representation

    cfg = TrainConfig(data="sim:n=8,seed=1,polar=1", val="sim:n=4,seed=2,polar=1",
                      out=str(tmp_path), epochs=1, batch_size=4, input_size=64, progress=False)
    model = load_checkpoint(train(cfg))
    assert model.cfg.representation == "polar"
    assert for_representation("sim:n=5", "polar") == "sim:n=5,polar=1"
    assert for_representation("sim", "polar") == "sim:polar=1"
    assert for_representation("sim:n=5,polar=0", "polar") == "sim:n=5,polar=0"  # explicit wins
    assert for_representation("sim:n=5", "sector") == "sim:n=5"
    assert for_representation("folder:/x", "polar") == "folder:/x"
