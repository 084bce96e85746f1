import cv2
import numpy as np
import pytest

from engines.classes import REGIONS
from engines.datasets import Dataset, Sample, open_dataset


def _png(path, value, shape=(40, 50)):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full(shape, value, np.uint8))


def test_sim_spec():
    ds = open_dataset("sim:n=5,seed=3,style=heldout", input_size=64)
    assert isinstance(ds, Dataset) and len(ds) == 5 and ds.classes == REGIONS
    s = ds[4]
    assert isinstance(s, Sample) and s.image.shape == (64, 64) and s.image.dtype == np.uint8
    assert s.labels.dtype == np.float32 and s.labels.shape == (6,)
    assert isinstance(s.boxes, dict) and set(s.boxes) == {
        c for c, v in zip(REGIONS, s.labels, strict=True) if v}
    assert np.array_equal(ds[-1].image, s.image)
    assert len(open_dataset("sim")) == 1000
    with pytest.raises(IndexError):
        ds[5]


def test_folder_spec(tmp_path):
    for i, v in enumerate((10, 100, 200)):
        _png(tmp_path / "imgs" / f"{i}.png", v)
    (tmp_path / "labels.csv").write_text(
        "image,head,spine\nimgs/0.png,1,0\nimgs/1.png,0,1\nimgs/2.png,1,1\n")
    for spec in (f"folder:{tmp_path}", str(tmp_path)):
        ds = open_dataset(spec, input_size=32)
        assert len(ds) == 3 and ds.classes == ("head", "spine")
        s = ds[1]
        assert s.image.shape == (32, 32) and int(s.image.mean()) == 100 and s.boxes is None
        assert s.labels.tolist() == [0.0, 1.0] and ds[2].labels.tolist() == [1.0, 1.0]


def _planes(root, header_train="Train "):
    rows = [("a", "Fetal brain", 1), ("b", "Fetal abdomen", 1), ("c", "Fetal thorax", 0),
            ("d", "Fetal femur", 0), ("e", "Maternal cervix", 1), ("f", "Other", 0)]
    lines = [f"Image_name;Patient_num;Plane;Brain_plane;Operator;US_Machine;{header_train}"]
    for name, plane, tr in rows:
        lines.append(f"{name};1;{plane};Not A Brain;Op. 1;Voluson E6;{tr}")
        _png(root / "Images" / f"{name}.png", 50)
    (root / "FETAL_PLANES_DB_data.csv").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("header", ["Train ", "Train"])
def test_fetal_planes_spec(tmp_path, header):
    _planes(tmp_path, header)
    ds = open_dataset(f"fetal_planes:{tmp_path}", input_size=48)
    assert len(ds) == 6 and ds.classes == REGIONS
    lab = np.stack([ds[i].labels for i in range(6)])
    want = np.zeros((6, 6), np.float32)
    for row, c in enumerate(("head", "abdomen", "thorax", "limbs")):
        want[row, REGIONS.index(c)] = 1
    assert np.array_equal(lab, want)
    assert ds[0].image.shape == (48, 48)
    assert len(open_dataset(f"fetal_planes:{tmp_path},split=train")) == 3
    test = open_dataset(f"fetal_planes:{tmp_path},split=test")
    assert len(test) == 3 and test[0].labels[REGIONS.index("thorax")] == 1


def test_bad_specs(tmp_path):
    _png(tmp_path / "x.png", 1)
    (tmp_path / "labels.csv").write_text("image,head\nx.png,1\nmissing.png,0\n")
    bad_labels = tmp_path / "bad"
    _png(bad_labels / "x.png", 1)
    (bad_labels / "labels.csv").write_text("image,head\nx.png,2\n")
    planes = tmp_path / "planes"
    _planes(planes)
    specs = ["", "nope:x", "sim:n=abc", "sim:foo=1", "sim:style=weird", "sim:n=0",
             f"folder:{tmp_path / 'none'}", f"folder:{tmp_path}", f"folder:{bad_labels}",
             f"fetal_planes:{tmp_path}", f"fetal_planes:{planes},split=val",
             str(tmp_path / "planes" / "Images")]
    for spec in specs:
        with pytest.raises(ValueError) as e:
            open_dataset(spec)
        assert str(e.value), spec


def test_sim_polar_spec():
    from engines.polar import PolarMap, estimate_geometry

    plain = open_dataset("sim:n=12,seed=0", input_size=64)
    polar = open_dataset("sim:n=12,seed=0,polar=1", input_size=64)
    kinds = set()
    for i in range(12):
        p, q, f = polar[i], plain[i], polar.sims[0].frame(i)
        assert p.image.shape == (64, 64) and p.image.dtype == np.uint8
        assert np.array_equal(p.labels, q.labels) and set(p.boxes) == set(q.boxes)
        kinds.add(f.geometry.kind)
        if f.geometry.kind != "curvilinear":
            assert np.array_equal(p.image, q.image) and p.boxes == q.boxes  # left plain
            continue
        assert not np.array_equal(p.image, q.image)
        pm = PolarMap(estimate_geometry(f.fan_mask), 64)
        for k, b in p.boxes.items():
            assert 0 <= b[0] < b[2] <= 64 and 0 <= b[1] < b[3] <= 64
            back, true = pm.box_to_image(b), f.boxes[k]  # the polar box bounds the true region
            assert back[0] <= true[0] + 1 and back[1] <= true[1] + 1
            assert back[2] >= true[2] - 1 and back[3] >= true[3] - 1
    assert kinds == {"curvilinear", "linear"}
    with pytest.raises(ValueError, match="polar"):
        open_dataset("sim:polar=2")


@pytest.mark.parametrize("image", ["../secret.png", "/etc/passwd", "link/secret.png"])
def test_labels_csv_paths_stay_inside_the_data_folder(tmp_path, image):
    """labels.csv must not make training read files outside its folder (absolute paths, '..',
    or a symbolic link that leads out)."""
    data = tmp_path / "data"
    _png(data / "ok.png", 1)
    _png(tmp_path / "secret.png", 7)
    (data / "link").symlink_to(tmp_path)
    (data / "labels.csv").write_text(f"image,head\nok.png,1\n{image},0\n")
    with pytest.raises(ValueError, match="outside the data folder"):
        open_dataset(f"folder:{data}", input_size=16)


def test_data_sets_and_sources_share_one_spec_grammar():
    """One parser: the same booleans, the same refusals, the same messages for sim: as a data set
    and as a source."""
    from streamer.sources import create_source

    assert open_dataset("sim:n=2,polar=yes", input_size=32).polar
    assert not open_dataset("sim:n=2,polar=off", input_size=32).polar
    for bad, message in (("sim:seed=x", "option seed must be int"),
                         ("sim:seed=1,seed=2", "option 'seed' given twice"),
                         ("sim:polar=maybe", "option polar must be a boolean")):
        with pytest.raises(ValueError, match=message):
            open_dataset(bad.replace("sim:", "sim:n=2,"), input_size=32)
        if "polar" not in bad:
            with pytest.raises(ValueError, match=message):
                create_source(bad)
    with pytest.raises(ValueError, match=r"unknown option\(s\) fps in 'sim:fps=30'; known: n, polar"):
        open_dataset("sim:fps=30")


def test_mixed_styles_alternate_frame_by_frame_each_style_its_own_frames():
    mixed = open_dataset("sim:n=4,seed=3,style=classic+heldout", 64)
    classic = open_dataset("sim:n=2,seed=3,style=classic", 64)
    heldout = open_dataset("sim:n=2,seed=3,style=heldout", 64)
    for j in range(2):
        assert np.array_equal(mixed[2 * j].image, classic[j].image)
        assert np.array_equal(mixed[2 * j + 1].image, heldout[j].image)
        assert np.array_equal(mixed[2 * j + 1].labels, heldout[j].labels)
    with pytest.raises(ValueError, match="style"):
        open_dataset("sim:n=2,style=classic+cartoon", 64)
