"""A corrupt DICOM element is named (keyword and tag) with its problem, never echoed: a length that
runs over the elements after it would carry patient attributes and control bytes into the line."""

import logging
import struct

import numpy as np
import pytest

pytest.importorskip("pydicom")

from engines.simulator.dicom_export import write_dicom  # noqa: E402
from streamer.cli import main  # noqa: E402

CT = "1.2.840.10008.5.1.4.1.1.2"
NAME, ID = "Phantom^Test", "PID-778899"


def overrun(path, header: bytes, until: bytes) -> None:
    """Make the explicit-VR element starting with ``header`` (tag + VR) long enough to swallow
    everything up to the end of ``until``: the next element pydicom reads is the one after it."""
    data = bytearray(path.read_bytes())
    at = data.index(header)
    end = data.index(until, at) + len(until)
    struct.pack_into("<H", data, at + 6, end - (at + 8))
    path.write_bytes(bytes(data))


def exam(tmp_path, name: str, **kwargs):
    frames = [np.full((64, 64), 80, np.uint8)] * 2
    return write_dicom(tmp_path / name, frames, patient={"PatientName": NAME, "PatientID": ID},
                       **kwargs)


def modality_over_patient(tmp_path):
    """Modality (0008,0060) of a CT file whose length runs over PatientName and PatientID."""
    path = exam(tmp_path, "overrun.dcm", sop_class=CT)
    overrun(path, b"\x08\x00\x60\x00CS", ID.encode())
    return path


def frames_over_rows(tmp_path):
    """NumberOfFrames (0028,0008) whose length runs over Rows (0028,0010)."""
    path = exam(tmp_path, "frames.dcm")
    overrun(path, b"\x28\x00\x08\x00IS", b"\x28\x00\x10\x00US\x02\x00" + struct.pack("<H", 64))
    return path


def photometric_over_frames(tmp_path):
    """PhotometricInterpretation (0028,0004) whose length runs over NumberOfFrames."""
    path = exam(tmp_path, "photometric.dcm")
    overrun(path, b"\x28\x00\x04\x00CS", b"\x28\x00\x08\x00IS\x02\x002 ")
    return path


@pytest.mark.parametrize("craft, element", [
    (modality_over_patient, "Modality (0008,0060)"),
    (frames_over_rows, "NumberOfFrames (0028,0008)"),
    (photometric_over_frames, "PhotometricInterpretation (0028,0004)"),
])
def test_run_names_the_element_never_its_bytes(tmp_path, capsys, caplog, recwarn, craft, element):
    """Before: `... not ultrasound (Modality US\\x10\\x00\\x10\\x00PN\\x0c\\x00Phantom^Test\\x10\\x00
    \\x00LO\\n\\x00PID-778899, SOP class ...)`, exit 2 with the patient in the line."""
    import pydicom

    path = craft(tmp_path)
    if craft is modality_over_patient:  # the file does carry the patient inside Modality
        assert NAME in pydicom.dcmread(path).Modality
    with caplog.at_level(logging.DEBUG):
        code = main(["run", "--source", f"dicom:{path}", "--publish", "", "--metrics-port", "0"])
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, lines
    assert path.name in lines[0] and element in lines[0] and "corrupt" in lines[0]
    everything = out + err + caplog.text + "".join(str(w.message) for w in recwarn)
    for token in ("Phantom", "Test", "PID", "778899"):
        assert token not in everything
    assert not any(ord(ch) < 32 and ch not in "\n\t" for ch in everything), repr(err)
