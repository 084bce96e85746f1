"""streamer adapt's split by loop, its class checks and the narrowed starting model."""

import numpy as np
import pytest
import torch

from engines.adapt.data import Frames, check_positives
from engines.adapt.split import check_validation_classes, split_by_loop
from engines.adapt.start import matched_classes, narrowed
from engines.errors import UserError
from engines.model import ModelConfig, SPNModel


def random_loops(rng, loops: int, classes: int):
    """Loops of 3-30 frames; each loop shows a few classes in runs, as a sweep does."""
    names, labels = [], []
    for k in range(loops):
        n = int(rng.integers(3, 31))
        shown = rng.random(classes) < 0.4
        names += [f"loop_{k}.dcm"] * n
        labels.append((rng.random((n, classes)) < 0.7) & shown)
    return names, np.concatenate(labels).astype(np.float32)


@pytest.mark.parametrize("seed", range(40))
def test_no_loop_has_frames_on_both_sides_and_training_keeps_every_class(seed):
    rng = np.random.default_rng(seed)
    loops, labels = random_loops(rng, int(rng.integers(2, 25)), 6)
    labels[0] = 1  # every class shown somewhere
    s = split_by_loop(loops, labels, 0.2, seed)
    train = {loops[i] for i in s.train}
    val = {loops[i] for i in s.val}
    assert train and val and not train & val
    assert sorted(s.train + s.val) == list(range(len(loops)))
    assert set(s.train_loops) == train and set(s.val_loops) == val
    assert np.all(labels[list(s.train)].sum(0) > 0)  # validation may lack a class, training never


def test_a_class_shown_in_one_loop_only_stays_in_training_and_validation_lacks_it():
    loops = [f"l{k}" for k in range(5) for _ in range(10)]
    labels = np.zeros((50, 2), np.float32)
    labels[:, 0] = np.tile([0, 1], 25)
    labels[30:40, 1] = 1  # only loop l3 shows class 1
    for seed in range(10):
        s = split_by_loop(loops, labels, 0.4, seed)
        assert "l3" in s.train_loops and labels[list(s.val), 1].sum() == 0


def test_one_loop_cannot_be_split():
    with pytest.raises(UserError, match="at least 2"):
        split_by_loop(["a"] * 5, np.ones((5, 2), np.float32), 0.2, 0)


def test_a_class_only_validation_shows_is_one_line_naming_the_file():
    train, val = np.array([[1, 0], [1, 0]], np.float32), np.array([[0, 1]], np.float32)
    with pytest.raises(UserError) as err:
        check_validation_classes(train, val, ("head", "spine"), "val/labels.csv")
    assert str(err.value) == ("val/labels.csv: spine shown in validation frames but in no "
                              "training frame; label training loops that show it")
    check_validation_classes(val * 0 + [[1, 0]], train, ("head", "spine"), "x")  # lacking: fine


def test_a_class_no_frame_shows_is_refused_naming_the_labels():
    frames = Frames(np.zeros((3, 8, 8), np.uint8), np.array([[1, 0]] * 3, np.float32),
                    ["a"] * 3, ("head", "limbs"))
    with pytest.raises(UserError, match=r"^d/labels.csv: no frame is labelled with limbs"):
        check_positives(frames, "d/labels.csv")


def test_labelled_classes_match_the_model_by_name_in_its_spelling_and_order():
    model = ("Abdomen", "Background", "Head", "Limbs")
    assert matched_classes(model, ("head", "abdomen"), "x") == ("Abdomen", "Head")
    with pytest.raises(UserError, match=r"^d/labels.csv: kidney not among the classes"):
        matched_classes(model, ("head", "kidney"), "d/labels.csv")


def test_frames_take_label_columns_by_name():
    f = Frames(np.zeros((2, 8, 8), np.uint8), np.array([[1, 0], [0, 1]], np.float32),
               ["a", "b"], ("head", "spine"))
    g = f.with_classes(("Spine", "Head", "Limbs"))
    assert g.classes == ("Spine", "Head", "Limbs")
    assert g.labels.tolist() == [[0, 1, 0], [1, 0, 0]]


@pytest.mark.parametrize("head", ["shared", "per_class"])
def test_a_narrowed_model_gives_the_same_outputs_for_the_classes_it_keeps(head):
    torch.manual_seed(0)
    model = SPNModel(ModelConfig(head=head, input_size=64, proposal_mode="unrolled")).eval()
    keep = ("thorax", "head", "placenta")  # any subset; kept in the model's own order
    keep = tuple(c for c in model.cfg.classes if c in keep)
    small = narrowed(model, keep)
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        (s, m), (s2, m2) = model(x), small(x)
    idx = [model.cfg.classes.index(c) for c in keep]
    assert small.cfg.classes == keep
    torch.testing.assert_close(s2, s[:, idx])
    torch.testing.assert_close(m2, m[:, idx])
