"""dicom:DIR data sets: labelled frames of DICOM loops, cropped as the streamer crops them."""

import json

import cv2
import numpy as np
import pytest

pytest.importorskip("pydicom")

from engines.datasets import for_representation, open_dataset  # noqa: E402
from engines.simulator.dicom_export import simulated_cine, write_dicom  # noqa: E402

CLASSES = "head,spine,thorax,abdomen,limbs,placenta"


@pytest.fixture(scope="module")
def exams(tmp_path_factory):
    root = tmp_path_factory.mktemp("exams")
    cine = simulated_cine(8, width=640, height=360, seed=2)
    write_dicom(root / "a.dcm", cine.frames[:5], regions=cine.regions)
    write_dicom(root / "b.dcm", cine.frames[5:])  # no regions: the largest bright area
    return root, cine


def _labels(root, text: str):
    (root / "labels.csv").write_text(text)
    return root


def test_frame_ranges_and_whole_files_become_samples(exams):
    root, cine = exams
    _labels(root, f"file,frames,{CLASSES}\na.dcm,0-2,1,0,0,0,0,1\na.dcm,4,0,1,0,0,0,0\n"
                  f"b.dcm,,0,0,1,0,0,0\n")
    ds = open_dataset(f"dicom:{root}", input_size=64)
    assert len(ds) == 3 + 1 + 3 and ds.classes == tuple(CLASSES.split(","))
    assert [s.labels.tolist() for s in (ds[0], ds[3], ds[6])] == [
        [1, 0, 0, 0, 0, 1], [0, 1, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0]]
    x0, y0, x1, y1 = cine.regions[0].bounds  # frame 4 of a.dcm, cropped to its tissue region
    want = cv2.resize(cv2.cvtColor(cine.frames[4][y0:y1 + 1, x0:x1 + 1], cv2.COLOR_BGR2GRAY),
                      (64, 64), interpolation=cv2.INTER_AREA)
    assert np.array_equal(ds[3].image, want)
    b = ds[6].image  # no region: cropped to the fan, not the whole screen with its UI
    whole = cv2.resize(cv2.cvtColor(cine.frames[5], cv2.COLOR_BGR2GRAY), (64, 64),
                       interpolation=cv2.INTER_AREA)
    assert b.shape == (64, 64) and b.mean() > whole.mean() + 10


def test_per_file_labels_and_polar_form(exams):
    root, _ = exams
    _labels(root, f"file,{CLASSES}\na.dcm,0,0,0,1,0,0\n")
    assert len(open_dataset(f"dicom:{root}", 64)) == 5
    polar = open_dataset(for_representation(f"dicom:{root}", "polar"), 64)
    assert polar.representation == "polar" and polar[0].image.shape == (64, 64)
    sector = open_dataset(f"dicom:{root}", 64)
    assert not np.array_equal(polar[0].image, sector[0].image)
    assert polar[0].image[-8:].mean() > sector[0].image[-8:, :8].mean()  # no black corners


@pytest.mark.parametrize("text, message", [
    (f"file,frames,{CLASSES}\na.dcm,3-9,1,0,0,0,0,0\n", "outside a.dcm's 0-4"),
    (f"file,frames,{CLASSES}\na.dcm,0-2,1,0,0,0,0,0\na.dcm,2,1,0,0,0,0,0\n", "labelled twice"),
    (f"file,frames,{CLASSES}\nc.dcm,,1,0,0,0,0,0\n", "'c.dcm' not found"),
    (f"file,frames,{CLASSES}\na.dcm,x,1,0,0,0,0,0\n", "frames must be empty, N or A-B"),
    (f"image,{CLASSES}\na.dcm,1,0,0,0,0,0\n", "header must be 'file'"),
    (f"file,{CLASSES}\na.dcm,2,0,0,0,0,0\n", "labels must be 0 or 1"),
])
def test_bad_labels_are_one_clear_error(exams, text, message):
    root, _ = exams
    _labels(root, text)
    with pytest.raises(ValueError, match=message):
        open_dataset(f"dicom:{root}", 64)


def test_eval_command_on_labelled_exams(exams, tmp_path, capsys):
    """A labelled exam evaluated with the bundled (polar) model through `streamer eval`."""
    from streamer.cli import main

    root, _ = exams
    _labels(root, f"file,frames,{CLASSES}\na.dcm,,0,0,0,1,1,0\nb.dcm,0-1,0,0,0,1,0,0\n")
    assert main(["eval", "--data", f"dicom:{root}", "--out", str(tmp_path), "--examples", "0",
                 "--quiet"]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["data"] == f"dicom:{root},polar=1" and report["frames"] == 7
    assert 0 <= report["mean_accuracy"] <= 1
