import math

import numpy as np
import pytest

from engines.input_recipe import (
    FETALNAV,
    SONOSTREAM,
    SONOSTREAM_AREA,
    InputRecipe,
    crop_geometry,
    crop_to_ratio,
    minmax,
    ratio_window,
    resize_bilinear,
)
from engines.polar import PolarMap, SectorGeometry


def test_crop_to_ratio_cuts_the_side_in_excess_about_the_centre_as_the_release():
    # aspect = rows / columns; the release's frame at 0.5 mm is 320 x 163: too deep for 1.5
    assert ratio_window(320, 163, 1.5) == (38, 0, 244, 163)  # int(320 * 1.5 / (320/163)) = 244
    # too wide: columns cut to int(w * actual / aspect)
    assert ratio_window(100, 300, 1.5) == (0, 117, 100, 66)
    assert ratio_window(150, 100, 1.5) == (0, 0, 150, 100)  # already at the ratio
    image = np.arange(320 * 163).reshape(320, 163)
    crop = crop_to_ratio(image, 1.5)
    assert crop.shape == (244, 163) and crop[0, 0] == image[38, 0]


def test_crop_rect_and_recipe_metadata_round_trip():
    assert FETALNAV.crop_rect((10, 20, 163, 320)) == (10, 58, 163, 244)
    assert SONOSTREAM.crop_rect((10, 20, 163, 320)) == (10, 20, 163, 320)
    assert InputRecipe.from_json(FETALNAV.to_json()) == FETALNAV
    assert InputRecipe.from_json(SONOSTREAM.to_json()) == SONOSTREAM
    # no recipe, or one recorded before the shrink existed: the INTER_AREA filter it trained with
    assert InputRecipe.from_json("") == SONOSTREAM_AREA
    legacy = '{"aspect": 0.0, "name": "sonostream", "resize": "area", "scale": "unit", "spacing": 0.0}'
    assert InputRecipe.from_json(legacy) == SONOSTREAM_AREA and SONOSTREAM_AREA.shrink == "area"
    assert SONOSTREAM.shrink == "halving"
    with pytest.raises(ValueError, match="shrink"):
        InputRecipe(shrink="nearest")
    with pytest.raises(ValueError, match="unknown keys"):
        InputRecipe.from_json('{"aspect": 1.5, "colour": 1}')
    with pytest.raises(ValueError, match="aspect"):
        InputRecipe(aspect=-1)


def test_minmax_is_the_release_rescale():
    x = np.array([[10, 20], [30, 50]], np.uint8)
    assert np.allclose(minmax(x), [[0, 0.25], [0.5, 1.0]])
    assert np.allclose(FETALNAV.to_input(x), minmax(x))
    assert np.allclose(SONOSTREAM.to_input(x), x / 255.0)
    assert np.all(minmax(np.zeros((3, 3), np.uint8)) == 0)


@pytest.mark.parametrize("shape,size", [((387, 344), (224, 224)), ((50, 60), (224, 224)),
                                        ((7, 500), (224, 30)), ((244, 163), (224, 224))])
def test_resize_matches_pillows_bilinear(shape, size):
    """scipy's imresize (the release's resize) is Pillow's BILINEAR on 8-bit data. Current
    Pillow may run the two passes in the other order when one side grows and the other
    shrinks (the release's Pillow ran the horizontal one first): then within one grey level."""
    Image = pytest.importorskip("PIL.Image")
    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    expected = np.asarray(Image.fromarray(image).resize(size[::-1], Image.BILINEAR)).astype(int)
    got = resize_bilinear(image, size).astype(int)
    same_direction = (shape[0] >= size[0]) == (shape[1] >= size[1])
    assert np.abs(got - expected).max() <= (0 if same_direction else 1)


def test_crop_geometry_keeps_the_central_depths_or_angles_at_the_ratio():
    deep = SectorGeometry((100, -20), 20, 420, -0.4, 0.4)  # depth 400, arc at mid-depth 176
    g = crop_geometry(deep, 1.5)
    arc = 0.5 * (g.r_min + g.r_max) * (g.angle_max - g.angle_min)
    assert math.isclose((g.r_max - g.r_min) / arc, 1.5, rel_tol=1e-9)
    assert math.isclose(g.r_min + g.r_max, deep.r_min + deep.r_max)  # centred in depth
    assert (g.angle_min, g.angle_max) == (deep.angle_min, deep.angle_max)
    wide = SectorGeometry((100, -20), 20, 120, -0.7, 0.7)
    g = crop_geometry(wide, 1.5)
    assert (g.r_min, g.r_max) == (wide.r_min, wide.r_max)
    assert math.isclose(g.angle_min, -g.angle_max)
    assert math.isclose(100 / (70 * (g.angle_max - g.angle_min)), 1.5)
    # the polar frame of the cropped sector maps back inside the full sector
    pm = PolarMap(g, 224)
    u, v = np.meshgrid(np.linspace(0, 224, 9), np.linspace(0, 224, 9))
    x, y = pm.polar_to_image(u, v)
    full = PolarMap(wide, 224)
    fu, fv = full.image_to_polar(x, y)
    assert fu.min() >= -1e-6 and fu.max() <= 224 + 1e-6 and fv.min() >= -1e-6


def test_simulated_frames_for_a_release_model_follow_its_recipe():
    from engines.datasets import for_representation, open_dataset

    spec = for_representation("sim:n=3,seed=4", "polar", "fetalnav")
    assert spec == "sim:n=3,seed=4,polar=1,recipe=fetalnav"
    assert for_representation(spec, "polar", "fetalnav") == spec
    plain, cut = open_dataset("sim:n=3,seed=4,polar=1", 64), open_dataset(spec, 64)
    sectors = 0
    for i in range(3):
        s = cut[i]
        assert s.image.min() == 0 and s.image.max() == 255  # min-max
        if s.sector is None:  # a linear probe: no sector to cut
            continue
        sectors += 1
        pm = s.sector[0]
        g = pm.geometry
        arc = 0.5 * (g.r_min + g.r_max) * (g.angle_max - g.angle_min)
        assert math.isclose((g.r_max - g.r_min) / arc, 1.5, rel_tol=1e-6)
        assert plain[i].sector[0].geometry != g
    assert sectors >= 1
    with pytest.raises(ValueError, match="unknown input recipe"):
        open_dataset("sim:n=1,polar=1,recipe=nope")


def test_eval_matches_label_columns_to_the_models_classes_by_name():
    from engines.evaluation import align_labels

    labels = np.array([[1, 0], [0, 1]], np.float32)
    out = align_labels(labels, ("head", "limbs"), ("Abdomen", "Background", "Head", "Limbs"))
    assert out.tolist() == [[0, 0, 1, 0], [0, 0, 0, 1]]
    assert align_labels(labels, ("a", "b"), ("a", "b")) is labels
    with pytest.raises(ValueError, match=r"\['spine'\] are not among the model's"):
        align_labels(labels, ("head", "spine"), ("Head", "Limbs"))


def test_equalised_recipe_gives_one_input_under_any_monotone_gain_curve():
    from engines.input_recipe import SONOSTREAM_EQUALISED, recipe_named

    rng = np.random.default_rng(0)
    frame = (rng.rayleigh(30, (64, 64)).clip(0, 150)).astype(np.uint8)
    frame[:8] = 0  # outside the sector stays black
    brighter = (255 * (frame / 150.0) ** 0.6).round().astype(np.uint8)  # gain and a gamma: monotone
    assert len(np.unique(brighter)) == len(np.unique(frame))  # no two levels merged
    x = SONOSTREAM_EQUALISED.to_input(frame)
    assert np.array_equal(x, SONOSTREAM_EQUALISED.to_input(brighter))
    assert not np.array_equal(SONOSTREAM.to_input(frame), SONOSTREAM.to_input(brighter))
    assert np.all(x[:8] == 0) and x.max() == 1.0
    # what training data sets hold, divided by 255, is the live input (to float32 rounding)
    assert np.allclose(SONOSTREAM_EQUALISED.stored(frame) / np.float32(255), x, rtol=0, atol=1e-7)
    assert not np.allclose(frame / np.float32(255), x, atol=0.05)
    assert recipe_named("sonostream-equalised") == SONOSTREAM_EQUALISED
    assert InputRecipe.from_json(SONOSTREAM_EQUALISED.to_json()) == SONOSTREAM_EQUALISED
