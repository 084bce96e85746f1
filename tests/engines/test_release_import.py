"""A checkpoint saved as the paper's release saves it, imported, exported and run on ONNX Runtime,
against a transcription of the release model written apart from ours."""

from pathlib import Path

import numpy as np
import pytest
import torch

from engines.backends import create_backend
from engines.checkpoint import load_checkpoint
from engines.classes import RELEASE_CLASSES
from engines.datasets import open_dataset
from engines.export import export_onnx
from engines.input_recipe import FETALNAV
from engines.model_info import ModelInfo
from tests.engines import release_transcription as release

DATA = Path(__file__).resolve().parents[1] / "data" / "fetalnav"


def reference_input() -> torch.Tensor:
    """The release's own frame through its recipe (a real image: maps with structure)."""
    image = open_dataset(f"fetalnav:{DATA}")[0].image
    flipped = image[:, ::-1]  # a second, different frame for the batch
    return torch.from_numpy(np.stack([image, flipped])[:, None].astype(np.float32) / 255.0)


def save_as_release(model, path, arch):
    """As the release's engine saves (experiments/engine.py save_checkpoint)."""
    torch.save({"epoch": 17, "arch": arch, "state_dict": model.state_dict(), "best_score": 0.9},
               path)


def run_onnx(path, x):
    with create_backend("onnxruntime", path) as backend:
        return [backend.infer(x[i : i + 1].numpy()) for i in range(len(x))]


def compare(transcribed, onnx_path, x, label):
    with torch.no_grad():
        scores, maps = transcribed.eval()(x)
    outs = run_onnx(onnx_path, x)
    got_scores = np.concatenate([o.scores for o in outs])
    got_maps = np.concatenate([o.maps for o in outs])
    d_logit = float(np.abs(got_scores - scores.numpy()).max())
    d_prob = float(np.abs(1 / (1 + np.exp(-got_scores)) - torch.sigmoid(scores).numpy()).max())
    d_map = float(np.abs(got_maps - maps.numpy()).max())
    scale = float(np.abs(maps.numpy()).max())
    print(f"\n{label}: max|Δlogit| {d_logit:.2e} (logits up to {float(scores.abs().max()):.3g}), "
          f"max|Δp| {d_prob:.2e}, max|Δmap| {d_map:.2e} (maps up to {scale:.3g})")
    assert d_logit < 2e-3 * max(1.0, float(scores.abs().max()))
    assert d_prob < 1e-3
    assert d_map < 1e-3 * scale
    # the same class wins, and each class's map peaks where the transcription's does
    assert (got_scores.argmax(1) == scores.numpy().argmax(1)).all()
    peaks = lambda m: m.reshape(*m.shape[:2], -1).argmax(-1)  # noqa: E731
    assert (peaks(got_maps) == peaks(maps.numpy())).mean() > 0.9
    return d_logit, d_map


@pytest.mark.slow
def test_release_vgg13_bn_checkpoint_imports_with_its_classes_activation_and_recipe(tmp_path):
    torch.manual_seed(0)
    transcribed = release.SPNetWSL(release.vgg_features(batch_norm=True), 512, 7, 512)
    release.randomise(transcribed)
    path = tmp_path / "checkpoint_17.pth.tar"
    save_as_release(transcribed, path, "vgg13_bn")

    model = load_checkpoint(path)
    assert model.cfg.arch == "vgg13_bn" and model.cfg.head == "shared"
    assert model.cfg.classes == RELEASE_CLASSES
    assert model.cfg.classes == ("Abdomen", "Background", "Head", "Limbs", "Placenta", "Spine",
                                 "Thorax")
    assert model.cfg.activation == "sigmoid"

    onnx_path = export_onnx(model, tmp_path / "release.onnx", iterations=20)
    info = ModelInfo.from_onnx(onnx_path)
    assert info.classes == RELEASE_CLASSES and info.activation == "sigmoid"
    assert info.representation == "polar" and info.recipe == FETALNAV
    assert (info.recipe.aspect, info.input_size, info.recipe.scale) == (1.5, 224, "minmax")
    compare(transcribed, onnx_path, reference_input(), "vgg13_bn shared head")


@pytest.mark.slow
def test_per_class_release_layout_with_its_real_key_names(tmp_path):
    torch.manual_seed(1)
    transcribed = release.MultiLinearSPNetWSL(release.resnet18_features(), 512, 7, 64)
    release.randomise(transcribed, seed=1)
    state = transcribed.state_dict()
    assert "classifiers.3.weight" in state and "spatial_poolings.6.adconv.bias" in state
    assert not any(k.startswith("classifiers.0.0.") for k in state)
    path = tmp_path / "checkpoint_05.pth.tar"
    save_as_release(transcribed, path, "resnet18")

    model = load_checkpoint(path)
    assert model.cfg.arch == "resnet18" and model.cfg.head == "per_class"
    assert model.cfg.classes == RELEASE_CLASSES and model.cfg.activation == "sigmoid"
    onnx_path = export_onnx(model, tmp_path / "per_class.onnx", iterations=20)
    compare(transcribed, onnx_path, reference_input(), "resnet18 per-class heads")


def test_class_names_can_be_overridden_and_must_match_the_count(tmp_path):
    torch.manual_seed(2)
    transcribed = release.SPNetWSL(release.resnet18_features(), 512, 3, 16)
    path = tmp_path / "three.pth.tar"
    save_as_release(transcribed, path, "resnet18")
    with pytest.raises(ValueError, match="3 classes.*pass their names"):
        load_checkpoint(path)
    with pytest.raises(ValueError, match="2 class names given"):
        load_checkpoint(path, classes=("Head", "Limbs"))
    model = load_checkpoint(path, classes=("Head", "Limbs", "Spine"), activation="softmax")
    assert model.cfg.classes == ("Head", "Limbs", "Spine") and model.cfg.activation == "softmax"


def test_a_state_dict_saved_from_data_parallel_loads(tmp_path):
    torch.manual_seed(3)
    transcribed = release.SPNetWSL(release.resnet18_features(), 512, 7, 16).eval()
    state = {f"module.{k}": v for k, v in transcribed.state_dict().items()}
    torch.save({"epoch": 1, "arch": "resnet18", "state_dict": state, "best_score": 0.0},
               tmp_path / "dp.pth.tar")
    model = load_checkpoint(tmp_path / "dp.pth.tar", proposal_mode="stationary")
    x = torch.rand(1, 1, 224, 224)
    with torch.no_grad():
        # stationary (the exact limit) vs the transcription's converged loop: close, not equal
        assert torch.allclose(model(x)[0], transcribed(x)[0], atol=1e-2, rtol=1e-2)
