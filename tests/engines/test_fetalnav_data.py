"""The paper's data set format: MetaImage frames labelled in their headers."""

import json
import shutil
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from engines.datasets import open_dataset
from engines.metaimage import read_header, resample

DATA = Path(__file__).resolve().parents[1] / "data" / "fetalnav"
FRAME_PNG = Path(__file__).resolve().parents[3] / "shared" / "reference" / "fetalnav_polar_frame.png"


def write_mhd(folder: Path, name: str, pixels: np.ndarray, *, labels="Labels = Head",
              etype="MET_UCHAR", spacing="0.5 0.5", local=False, compress=False, msb=False,
              extra_bytes=0, data_name=None):
    """A MetaImage as ITK writes one (x fastest; .mha with LOCAL data, or .mhd + .raw/.zraw)."""
    dtype = {"MET_UCHAR": "u1", "MET_SHORT": "i2", "MET_FLOAT": "f4"}.get(etype, "u1")
    data = np.ascontiguousarray(pixels.astype(np.dtype(dtype).newbyteorder(">" if msb else "<")))
    blob = data.tobytes() + b"\0" * extra_bytes
    if compress:
        blob = zlib.compress(blob)
    rows, cols = pixels.shape
    suffix = ".zraw" if compress else ".raw"
    data_name = data_name or ("LOCAL" if local else name + suffix)
    header = [labels, "ObjectType = Image", "NDims = 2", f"DimSize = {cols} {rows}",
              f"ElementSpacing = {spacing}", f"BinaryDataByteOrderMSB = {msb}",
              f"CompressedData = {compress}", f"ElementType = {etype}",
              f"ElementDataFile = {data_name}"]
    text = ("\n".join(line for line in header if line) + "\n").encode()
    if local:
        (folder / f"{name}.mha").write_bytes(text + blob)
        return folder / f"{name}.mha"
    (folder / f"{name}.mhd").write_bytes(text)
    if data_name == name + suffix:
        (folder / data_name).write_bytes(blob)
    return folder / f"{name}.mhd"


def test_the_release_frame_reads_with_its_header_and_orientation():
    image = read_header(str(DATA / "image.mhd"))
    assert image.shape == (387, 344) and image.labels == ("Placenta", "Limbs")
    assert image.spacing == pytest.approx((0.236302, 0.412964))
    pixels = image.pixels()
    if FRAME_PNG.is_file():  # the same frame as the reference PNG, pixel for pixel
        assert np.array_equal(pixels, cv2.imread(str(FRAME_PNG), cv2.IMREAD_GRAYSCALE))
    # rows run along y (depth): MetaImage stores x fastest
    assert pixels.shape[0] == int(image.header["DimSize"].split()[1])


def test_the_release_frame_through_the_recipe():
    data = open_dataset(f"fetalnav:{DATA}")
    assert data.classes == ("Limbs", "Placenta") and data.labels.tolist() == [[1.0, 1.0]]
    frame = data.frame(0)
    # 344 x 0.236 mm = 81 mm across, 387 x 0.413 mm = 160 mm deep, at 0.5 mm: ceil → 163 x 320
    assert frame.shape == (320, 163) and frame.dtype == np.uint8
    native = read_header(str(DATA / "image.mhd")).pixels()
    shrunk = cv2.resize(native, (163, 320), interpolation=cv2.INTER_AREA).astype(np.float64)
    corr = lambda a, b: np.corrcoef(a.ravel(), b.astype(np.float64).ravel())[0, 1]  # noqa: E731
    assert corr(shrunk, frame) > 0.95 and corr(shrunk, frame[::-1]) < 0.6  # not flipped
    sample = data[0]
    assert sample.image.shape == (224, 224) and sample.image.dtype == np.uint8
    assert sample.image.min() == 0 and sample.image.max() == 255  # min-max scaled
    # the crop to 1.5 kept rows 38..282 of the 320: the middle of the depth
    middle = cv2.resize(frame[38:282], (224, 224), interpolation=cv2.INTER_AREA)
    assert corr(middle.astype(np.float64), sample.image) > 0.97
    assert corr(cv2.resize(frame[:244], (224, 224)).astype(np.float64), sample.image) < 0.9


def test_resampling_matches_simpleitk():
    sitk = pytest.importorskip("SimpleITK")
    img = sitk.ReadImage(str(DATA / "image.mhd"))
    size = [163, 320, 1]
    out = sitk.Resample(img, size, sitk.Transform(), sitk.sitkLinear, img.GetOrigin(),
                        [0.5, 0.5, 1.0], img.GetDirection(), 0.0, img.GetPixelIDValue())
    image = read_header(str(DATA / "image.mhd"))
    ours = resample(image.pixels(), image.spacing, 0.5)
    assert np.array_equal(sitk.GetArrayFromImage(out)[0], ours)


def test_formats_labels_and_classes(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (30, 40)).astype(np.uint8)
    write_mhd(tmp_path, "a", a, labels="Labels = Placenta, Limbs")
    write_mhd(tmp_path, "b", a.astype(np.int16) * 10, labels="Label = Head", etype="MET_SHORT",
              msb=True)
    write_mhd(tmp_path, "c", a, labels="Labels = Head", local=True)
    (tmp_path / "sub").mkdir()
    write_mhd(tmp_path / "sub", "d", a, labels="Label = Background", compress=True)
    data = open_dataset(f"fetalnav:{tmp_path},aspect=1.5,spacing=0.5", input_size=64)
    assert data.classes == ("Background", "Head", "Limbs", "Placenta")  # sorted label set
    assert data.labels.tolist() == [[0, 0, 1, 1], [0, 1, 0, 0], [0, 1, 0, 0], [1, 0, 0, 0]]
    frames = [data.frame(i) for i in range(4)]
    assert all(f.shape == (30, 40) for f in frames)
    assert np.array_equal(frames[0], a) and np.array_equal(frames[2], a)
    assert np.array_equal(frames[3], a) and np.array_equal(frames[1], a.astype(np.int16) * 10)
    assert data[1].image.shape == (64, 64)
    # a coarser spacing is resampled up
    write_mhd(tmp_path, "e", a, spacing="1.0 0.25")
    data = open_dataset(f"fetalnav:{tmp_path}")
    e = [i for i, image in enumerate(data.images) if image.path.endswith("e.mhd")]
    assert data.frame(e[0]).shape == (15, 80)  # x: 40 px at 1 mm, y: 30 px at 0.25 mm


@pytest.mark.parametrize("case,message", [
    ("missing_raw", "pixel data 'x.raw' is missing"),
    ("short_raw", "holds 1199 bytes, the header says 1200"),
    ("long_mha", "holds 1210 bytes"),
    ("element_type", "unsupported ElementType 'MET_LONG'"),
    ("no_label", "no 'Label = X' or 'Labels = A, B' header line"),
    ("volume", "only 2-D images"),
    ("nifti", "NIfTI is not supported"),
    ("dims_text", "DimSize must hold integers, got '40 x'"),
    ("spacing_text", "ElementSpacing must hold numbers, got '0.5 mm'"),
])
def test_each_bad_file_is_named_with_its_reason_in_one_line(tmp_path, case, message):
    a = np.zeros((30, 40), np.uint8)
    write_mhd(tmp_path, "good", a)
    if case == "missing_raw":
        write_mhd(tmp_path, "x", a, data_name="x.raw")
        (tmp_path / "x.raw").unlink(missing_ok=True)
    elif case == "short_raw":
        path = write_mhd(tmp_path, "x", a)
        (tmp_path / "x.raw").write_bytes(b"\0" * 1199)
    elif case == "long_mha":
        write_mhd(tmp_path, "x", a, local=True, extra_bytes=10)
    elif case == "element_type":
        write_mhd(tmp_path, "x", a, etype="MET_LONG")
    elif case == "no_label":
        write_mhd(tmp_path, "x", a, labels="")
    elif case == "volume":
        path = write_mhd(tmp_path, "x", a)
        path.write_text(path.read_text().replace("NDims = 2", "NDims = 3")
                        .replace("DimSize = 40 30", "DimSize = 40 30 2"))
    elif case in ("dims_text", "spacing_text"):
        path = write_mhd(tmp_path, "x", a)
        path.write_text(path.read_text().replace("DimSize = 40 30", "DimSize = 40 x")
                        if case == "dims_text" else
                        path.read_text().replace("ElementSpacing = 0.5 0.5", "ElementSpacing = 0.5 mm"))
    else:
        (tmp_path / "x.nii.gz").write_bytes(b"")
    with pytest.raises(ValueError) as err:
        open_dataset(f"fetalnav:{tmp_path}")
    name = "x.nii.gz" if case == "nifti" else "x.mha" if case == "long_mha" else "x.mhd"
    text = str(err.value)
    assert "\n" not in text and text.startswith(f"1 bad MetaImage file(s) in {tmp_path}: {name}: ")
    assert message in text


def test_eval_names_the_first_bad_files_with_reasons_and_counts_the_rest(tmp_path, capsys):
    """Before: `streamer eval` printed `5 bad MetaImage file(s) in DIR:` and nothing more (the
    files were on the lines the one-line error cut off)."""
    from streamer.cli import main

    a = np.zeros((30, 40), np.uint8)
    write_mhd(tmp_path, "good", a)
    for i in range(4):
        write_mhd(tmp_path, f"unlabelled{i}", a, labels="")
    write_mhd(tmp_path, "wrongtype", a, etype="MET_LONG")
    code = main(["eval", "--data", f"fetalnav:{tmp_path}", "--out", str(tmp_path / "out"),
                 "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    # sorted by path: the first three are named with their reasons, the other two counted
    assert f"5 bad MetaImage file(s) in {tmp_path}: unlabelled0.mhd: no 'Label = X'" in err[0]
    assert "unlabelled1.mhd: no 'Label" in err[0] and "unlabelled2.mhd: no 'Label" in err[0]
    assert err[0].endswith("; and 2 more") and "wrongtype" not in err[0]


def test_corrupt_compressed_data_names_the_file(tmp_path):
    path = write_mhd(tmp_path, "z", np.zeros((10, 10), np.uint8), compress=True)
    (tmp_path / "z.zraw").write_bytes(b"not zlib")
    data = open_dataset(f"fetalnav:{tmp_path}")
    with pytest.raises(ValueError, match=f"{path}: compressed pixel data is corrupt"):
        data[0]


def test_bad_specs(tmp_path):
    with pytest.raises(ValueError, match="not a directory"):
        open_dataset(f"fetalnav:{tmp_path}/none")
    with pytest.raises(ValueError, match="no .mhd or .mha"):
        open_dataset(f"fetalnav:{tmp_path}")
    with pytest.raises(ValueError, match=r"unknown option\(s\) crop in .fetalnav:"):
        open_dataset(f"fetalnav:{tmp_path},crop=2")


def copy_release_frame(folder: Path, name: str, labels: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    text = (DATA / "image.mhd").read_text().replace("Labels = Placenta, Limbs", labels)
    (folder / f"{name}.mhd").write_text(text.replace("image.raw", f"{name}.raw"))
    shutil.copy(DATA / "image.raw", folder / f"{name}.raw")


def test_train_export_and_eval_on_a_metaimage_folder(tmp_path, capsys):
    from engines.checkpoint import load_checkpoint
    from engines.input_recipe import InputRecipe
    from engines.model_info import ModelInfo
    from streamer.cli import main

    labels = ["Labels = Placenta, Limbs", "Label = Head", "Label = Background", "Label = Spine"]
    for split, count in (("train", 8), ("validate", 4)):
        for i in range(count):
            copy_release_frame(tmp_path / split, f"f{i}", labels[i % len(labels)])
    out = tmp_path / "run"
    code = main(["train", "--data", f"fetalnav:{tmp_path}/train", "--val",
                 f"fetalnav:{tmp_path}/validate", "--out", str(out), "--epochs", "1",
                 "--batch-size", "4", "--input-size", "64", "--quiet"])
    assert code == 0, capsys.readouterr().err
    model = load_checkpoint(out / "model.pt")
    assert model.cfg.classes == ("Background", "Head", "Limbs", "Placenta", "Spine")
    assert model.cfg.representation == "polar"
    assert InputRecipe.from_json(model.cfg.extra["recipe"]).aspect == 1.5
    assert main(["export", "--checkpoint", str(out / "model.pt"), "--out",
                 str(out / "model.onnx")]) == 0
    assert ModelInfo.from_onnx(out / "model.onnx").recipe.name == "fetalnav"
    code = main(["eval", "--onnx", str(out / "model.onnx"), "--data",
                 f"fetalnav:{tmp_path}/validate", "--out", str(out / "eval"), "--quiet",
                 "--examples", "0"])
    assert code == 0, capsys.readouterr().err
    report = json.loads((out / "eval" / "report.json").read_text())
    assert report["frames"] == 4 and list(report["per_class"]) == list(model.cfg.classes)


def test_validation_classes_must_match_training(tmp_path, capsys):
    from streamer.cli import main

    copy_release_frame(tmp_path / "train", "a", "Label = Head")
    copy_release_frame(tmp_path / "validate", "a", "Label = Spine")
    code = main(["train", "--data", f"fetalnav:{tmp_path}/train", "--val",
                 f"fetalnav:{tmp_path}/validate", "--out", str(tmp_path / "run"), "--epochs", "1",
                 "--input-size", "64", "--quiet"])
    assert code == 2
    assert "validation classes ['Spine'] differ from the training classes ['Head']" in \
        capsys.readouterr().err


def test_a_spacing_that_would_resample_to_gigapixels_is_refused_before_any_array(tmp_path,
                                                                                 monkeypatch):
    """ElementSpacing 100 mm on a 100×120 image, resampled to 0.5 mm: 20000×24000 pixels."""
    import engines.metaimage as mi

    path = write_mhd(tmp_path, "wide", np.zeros((120, 100), np.uint8), spacing="100 100")
    made = []
    monkeypatch.setattr(mi, "_linear", lambda *a, **k: made.append(a))  # no interpolation run
    image = read_header(str(path))
    with pytest.raises(ValueError, match="would make 20000x24000 pixels"):
        resample(image.pixels(), image.spacing, 0.5)
    assert made == []
    with pytest.raises(ValueError, match="cannot open data|more than"):
        open_dataset(f"fetalnav:{tmp_path},spacing=0.0001", input_size=64)[0]


def test_compressed_data_that_inflates_past_its_header_is_refused_unheld(tmp_path):
    """A small .zraw inflating to 64 MB where the header says 64×64: stopped at 4,097 bytes."""
    path = write_mhd(tmp_path, "bomb", np.zeros((64, 64), np.uint8), compress=True)
    (tmp_path / "bomb.zraw").write_bytes(zlib.compress(b"\0" * (64 << 20), 9))
    image = read_header(str(path))
    with pytest.raises(ValueError, match="inflates past the 4096 bytes"):
        image.pixels()


def test_a_data_file_outside_the_headers_folder_is_never_read(tmp_path):
    inner = tmp_path / "set"
    inner.mkdir()
    (tmp_path / "secret.raw").write_bytes(b"\1" * 64)
    for name in ("../secret.raw", str(tmp_path / "secret.raw")):
        path = write_mhd(inner, "trav", np.zeros((8, 8), np.uint8), data_name=name)
        with pytest.raises(ValueError, match="outside the header's folder"):
            read_header(str(path))
    sub = inner / "data"
    sub.mkdir()
    (sub / "ok.raw").write_bytes(b"\2" * 64)
    ok = write_mhd(inner, "below", np.zeros((8, 8), np.uint8), data_name="data/ok.raw")
    assert read_header(str(ok)).pixels().max() == 2  # below the header's folder is fine


def test_a_header_declaring_gigapixels_is_refused_at_once(tmp_path):
    path = write_mhd(tmp_path, "huge", np.zeros((4, 4), np.uint8))
    path.write_text(path.read_text().replace("DimSize = 4 4", "DimSize = 100000 100000"))
    with pytest.raises(ValueError, match="more than this reader takes"):
        read_header(str(path))


@pytest.mark.parametrize("aspect", ["1e308", "nan", "-1"])
def test_an_absurd_aspect_is_refused_in_one_line(aspect):
    with pytest.raises(ValueError, match="aspect must be in"):
        open_dataset(f"fetalnav:{DATA},aspect={aspect}", input_size=64)
