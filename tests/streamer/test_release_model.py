"""A checkpoint from the paper's code: exported, then run live with its class names and recipe."""

import json
import math

import pytest
import torch

from engines.classes import RELEASE_CLASSES
from engines.input_recipe import FETALNAV, SONOSTREAM_AREA
from engines.model_info import ModelInfo
from streamer.cli import main
from streamer.config import PreprocessConfig
from streamer.frames import Frame
from streamer.preprocess import Preprocessor
from tests.engines import release_transcription as release
from tests.streamer.conftest import make_screen


@pytest.fixture(scope="module")
def release_onnx(tmp_path_factory):
    torch.manual_seed(5)
    model = release.SPNetWSL(release.resnet18_features(), 512, 7, 32)
    release.randomise(model, seed=5)
    folder = tmp_path_factory.mktemp("release")
    torch.save({"epoch": 3, "arch": "resnet18", "state_dict": model.state_dict(),
                "best_score": 0.5}, folder / "release.pth.tar")
    out = folder / "release.onnx"
    assert main(["export", "--checkpoint", str(folder / "release.pth.tar"), "--out", str(out)]) == 0
    return out


def test_streamer_run_publishes_the_release_class_names(release_onnx, tmp_path, capsys):
    info = ModelInfo.from_onnx(release_onnx)
    assert info.classes == RELEASE_CLASSES and info.recipe == FETALNAV
    record = tmp_path / "det.jsonl"
    code = main(["run", "--model", str(release_onnx), "--source", "sim:realtime=0,seed=2",
                 "--publish", "tcp://127.0.0.1:*", "--metrics-port", "0", "--max-frames", "4",
                 "--record", str(record)])
    assert code == 0, capsys.readouterr().err
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    assert lines
    for msg in lines:
        assert list(msg["classes"]) == list(RELEASE_CLASSES)
        background = msg["classes"]["Background"]
        assert background["peak"] is None and background["box"] is None
        assert 0.0 <= background["score"] <= 1.0
        for name in ("Abdomen", "Head", "Limbs", "Placenta", "Spine", "Thorax"):
            x, y = msg["classes"][name]["peak"]
            assert 0 <= x < 1920 and 0 <= y < 1080


def test_live_preprocessing_applies_the_release_recipe_and_maps_back_to_the_screen():
    screen, (fx, fy, fw, fh) = make_screen()
    ours = Preprocessor(PreprocessConfig(representation="polar"), 224)
    theirs = Preprocessor(PreprocessConfig(representation="polar"), 224, recipe=FETALNAV)
    for seq in range(12):  # the sector is fitted after a few frames
        frame = Frame(seq, screen)
        plain, cut = ours.process(frame), theirs.process(frame)
    g_full, g = plain.crop.polar.geometry, cut.crop.polar.geometry
    depth, arc = g.r_max - g.r_min, 0.5 * (g.r_min + g.r_max) * (g.angle_max - g.angle_min)
    full_ratio = (g_full.r_max - g_full.r_min) / (
        0.5 * (g_full.r_min + g_full.r_max) * (g_full.angle_max - g_full.angle_min))
    assert math.isclose(depth / arc, 1.5, rel_tol=1e-6)
    if full_ratio > 1.5:  # too deep: depth cut at both ends, angles kept
        assert g.r_min > g_full.r_min and g.r_max < g_full.r_max
    else:  # too wide: angles cut at both sides, depth kept
        assert g.angle_min > g_full.angle_min and g.angle_max < g_full.angle_max
    t = cut.tensor[0, 0]
    assert t.min() == 0.0 and t.max() == pytest.approx(1.0)  # the release's min-max
    # the corners and centre of the model input land on the fan on the screen
    for u, v in ((0, 0), (224, 224), (112, 112), (0, 224)):
        x, y = cut.crop.to_source(u, v)
        assert fx - 2 <= x <= fx + fw + 2 and fy - 2 <= y <= fy + fh + 2
    # the centre of the input is the centre of the (cut) sector, inside the full one
    u, v = plain.crop.polar.image_to_polar(*cut.crop.polar.polar_to_image(112, 112))
    assert 0 < u < 224 and 0 < v < 224


def test_export_refuses_names_that_do_not_fit(release_onnx, tmp_path, capsys):
    checkpoint = release_onnx.parent / "release.pth.tar"
    code = main(["export", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "x.onnx"),
                 "--classes", "a,b"])
    assert code == 2
    assert "2 class names given for a checkpoint with 7 classes" in capsys.readouterr().err
    code = main(["export", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "y.onnx"),
                 "--classes", "a,b,c,d,e,f,g"])
    assert code == 0
    assert ModelInfo.from_onnx(tmp_path / "y.onnx").classes == tuple("abcdefg")


def test_the_pipeline_gives_preprocessing_the_models_recipe(release_onnx, random_onnx):
    from engines.backends import create_backend
    from streamer.config import Config
    from streamer.pipeline import build_pipeline
    from streamer.sources import create_source

    # a model that records no recipe is taken for one of ours from before the halving shrink
    for path, recipe in ((release_onnx, FETALNAV), (random_onnx, SONOSTREAM_AREA)):
        with create_backend("onnxruntime", path) as backend:
            pipeline = build_pipeline(Config(), create_source("sim:realtime=0"), backend, [])
            assert pipeline.stages.preprocess.recipe == recipe
