"""Kept frames as DICOM Secondary Capture in the source's study, read back with pydicom: the
study's UID and the attributes it needs copied exactly, nothing else of the patient, new series
and instance UIDs, and the pixels of the PNG crop."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from streamer.errors import UserError
from streamer.sinks import parse_sink_spec, sink_class
from tests.streamer.test_keyframes_sink import publish, result

pydicom = pytest.importorskip("pydicom")
from engines.simulator.dicom_export import write_dicom  # noqa: E402

STUDY = {"PatientName": "Müller^Jürgen", "PatientID": "P-0042", "PatientBirthDate": "19900102",
         "PatientSex": "M", "StudyInstanceUID": "1.2.826.0.1.3680043.8.498.4711",
         "StudyDate": "20261204", "StudyTime": "101500", "AccessionNumber": "ACC7", "StudyID": "S9"}
NOT_COPIED = {"InstitutionName": "St Elsewhere", "OperatorsName": "Op^Erator",
              "PatientAddress": "1 Road", "OtherPatientIDs": "X9", "PatientWeight": "61",
              "SeriesInstanceUID": "1.2.826.0.1.3680043.8.498.99", "StudyDescription": "OB 2nd"}


def source_file(path, study=STUDY, charset="ISO_IR 100"):
    frame = np.zeros((480, 640, 3), np.uint8)
    patient = {"SpecificCharacterSet": charset, **study, **NOT_COPIED,
               "ReferringPhysicianName": "Ref^Doc"}
    return write_dicom(path, [frame], patient=patient)


def open_sink(spec, opened):
    kind, parsed = parse_sink_spec(spec)
    sink = sink_class(kind)(parsed).open()
    opened.append(sink)
    return sink


@pytest.fixture
def opened():
    sinks = []
    yield sinks
    for s in sinks:
        s.close()


def test_each_kept_frame_is_a_secondary_capture_in_the_source_study(tmp_path, opened):
    src = source_file(tmp_path / "exam.dcm")
    sink = open_sink(f"keyframes:{tmp_path / 'out'},exam=e,dicom=1,source=dicom:{src}", opened)
    publish(sink, result(3, 1.0, head=0.9, spine=0.8), result(9, 6.0, head=0.95))
    index = json.loads((sink.folder / "index.json").read_text())
    assert index["source"] == {"kind": "dicom", "study_uid": STUDY["StudyInstanceUID"]}
    kept = [r for region in ("head", "spine") for r in index["regions"][region]]
    assert [r["dicom"] for r in kept] == ["head/9.dcm", "head/3.dcm", "spine/3.dcm"]
    series, instances = set(), set()
    for r in kept:
        ds = pydicom.dcmread(sink.folder / r["dicom"])
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture Image Storage
        assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID
        assert ds.Modality == "US" and ds.ConversionType == "WSD"
        for key, value in STUDY.items():
            assert str(ds[key].value) == value, key
        assert ds.ReferringPhysicianName == ""  # present (the study module asks), never copied
        for key in NOT_COPIED:
            if key != "SeriesInstanceUID":
                assert key not in ds, key
        assert ds.SeriesInstanceUID != NOT_COPIED["SeriesInstanceUID"]
        series.add(ds.SeriesInstanceUID)
        instances.add(ds.SOPInstanceUID)
        png = cv2.imread(str(sink.folder / r["crop"]), cv2.IMREAD_UNCHANGED)
        assert ds.PhotometricInterpretation == "RGB"
        assert np.array_equal(ds.pixel_array, cv2.cvtColor(png, cv2.COLOR_BGR2RGB))
    assert len(series) == 1 and len(instances) == 3  # one new series, a new instance each


def test_a_grey_source_gives_monochrome_captures(tmp_path, opened):
    src = source_file(tmp_path / "exam.dcm", charset="ISO_IR 192")
    sink = open_sink(f"keyframes:{tmp_path / 'out'},exam=e,dicom=1,source=dicom:{src}", opened)
    r = result(4, 1.0, head=0.9)
    publish(sink, result(4, 1.0, head=0.9, image=cv2.cvtColor(r.image, cv2.COLOR_BGR2GRAY)))
    ds = pydicom.dcmread(sink.folder / "head" / "4.dcm")
    png = cv2.imread(str(sink.folder / "head" / "4.png"), cv2.IMREAD_UNCHANGED)
    assert ds.PhotometricInterpretation == "MONOCHROME2" and png.ndim == 2
    assert np.array_equal(ds.pixel_array, png)
    assert str(ds.PatientName) == STUDY["PatientName"]


def test_captures_need_one_study_said_in_one_line(tmp_path, opened):
    folder = tmp_path / "two"
    folder.mkdir()
    source_file(folder / "a.dcm")
    source_file(folder / "b.dcm", study={**STUDY, "StudyInstanceUID": "1.2.3.4"})
    no_study = source_file(tmp_path / "none.dcm", study={"PatientID": "P-1"})
    for src, words in ((folder, "belong to 2 studies"), (no_study, "no valid StudyInstanceUID")):
        with pytest.raises(UserError, match=words) as err:
            open_sink(f"keyframes:{tmp_path / 'out'},dicom=1,source=dicom:{src}", opened)
        assert "\n" not in str(err.value) and "P-1" not in str(err.value)
    # without dicom=1 such a source is fine: no single study, none recorded
    sink = open_sink(f"keyframes:{tmp_path / 'out'},exam=ok,source=dicom:{folder}", opened)
    assert json.loads((sink.folder / "index.json").read_text())["source"] == \
        {"kind": "dicom", "study_uid": None}


def test_without_pydicom_the_keyframes_dicom_option_says_which_extra(monkeypatch):
    import sys

    from streamer.keyframes import dicom_sc

    monkeypatch.setitem(sys.modules, "pydicom", None)
    with pytest.raises(UserError, match=r"keyframes dicom=1 needs pydicom.*sonostream\[dicom\]"):
        dicom_sc._pydicom()
