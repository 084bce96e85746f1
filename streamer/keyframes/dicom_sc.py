"""Kept frames as DICOM Secondary Capture images in the source's study, for PACS.

The source's study is read once, when the sink opens: only the attributes in STUDY_ATTRIBUTES
(pydicom parses nothing else), and nothing of them is logged or shown in an error. Each image gets
the source's Study Instance UID, one new Series Instance UID for the exam's keyframes and a new
SOP Instance UID. Modality is US: the pixels are the scanner's ultrasound image (its fan), and
PACS worklists and hanging protocols file a series by modality, where OT would set it apart from
the exam it belongs to. Conversion type WSD (a workstation made it). pydicom is the ``dicom`` extra.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from engines.dicom.loop import EXTRA, UID, DicomError, pydicom_module
from streamer.errors import UserError

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture Image Storage
# Patient and study attributes the study needs, copied exactly; nothing else of the source is.
STUDY_ATTRIBUTES = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex",
                    "StudyInstanceUID", "StudyDate", "StudyTime", "AccessionNumber", "StudyID")
MODALITY = "US"
SERIES_DESCRIPTION = "sonostream keyframes"


def _pydicom():
    """pydicom, its value checks silenced as the loop reader has them (they would warn with the
    value itself, a patient's name); a one-line error naming the extra when it is missing."""
    try:
        return pydicom_module()
    except DicomError:
        raise UserError(f"keyframes dicom=1 needs pydicom, an optional extra: {EXTRA}") from None


@dataclass(frozen=True)
class Study:
    uid: str
    elements: tuple = ()  # the source's DataElements of STUDY_ATTRIBUTES (empty: uid only)


def read_study(path: str, copy: bool) -> Study | None:
    """The study of a ``dicom:`` source's files (a file or a folder); ``copy``: also the attributes
    an image added to it needs, and every file must belong to one study (else one line). None
    without ``copy`` when the files name no single study."""
    from engines.dicom import dicom_files

    pydicom = _pydicom()
    uids, first = set(), None
    for name in dicom_files(path):
        try:
            ds = pydicom.dcmread(name, specific_tags=list(STUDY_ATTRIBUTES), stop_before_pixels=True)
            uid = str(ds.get("StudyInstanceUID", "") or "").strip(" \0")
        except Exception:  # a corrupt element: named by keyword alone, its bytes never shown
            raise UserError(f"keyframes: {Path(name).name}: StudyInstanceUID cannot be read") from None
        if not (uid and len(uid) <= 64 and UID.fullmatch(uid)):
            if not copy:
                return None
            raise UserError(f"keyframes dicom=1: {Path(name).name} has no valid StudyInstanceUID "
                            "(0020,000D), so there is no study to add keyframes to")
        uids.add(uid)
        first = ds if first is None else first
    if len(uids) != 1:
        if not copy:
            return None
        raise UserError(f"keyframes dicom=1: the files of {path} belong to {len(uids)} studies; "
                        "give the files of one study")
    elements = tuple(first[k] for k in STUDY_ATTRIBUTES if k in first) if copy else ()
    return Study(uids.pop(), elements)


def new_uid() -> str:
    return _pydicom().uid.generate_uid()


def secondary_capture(crop: np.ndarray, study: Study, series_uid: str, number: int,
                      description: str):
    """A Secondary Capture dataset of ``crop`` (grey: MONOCHROME2; BGR: RGB) in ``study``."""
    pydicom = _pydicom()
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SECONDARY_CAPTURE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID
    ds = FileDataset("", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8, whatever the source's names were written in
    ds.SOPClassUID, ds.SOPInstanceUID = SECONDARY_CAPTURE, meta.MediaStorageSOPInstanceUID
    for key in STUDY_ATTRIBUTES:  # type 2: present, empty when the source has none
        setattr(ds, key, "")
    for element in study.elements:  # as the source holds it (no check that could show it)
        ds[element.tag] = element
    ds.StudyInstanceUID = study.uid
    ds.ReferringPhysicianName = ""  # type 2 in the study module: present, never copied
    ds.Modality, ds.SeriesInstanceUID, ds.SeriesNumber = MODALITY, series_uid, ""
    ds.SeriesDescription = SERIES_DESCRIPTION
    ds.ConversionType = "WSD"
    ds.InstanceNumber, ds.PatientOrientation = number, ""
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.DerivationDescription = description
    grey = crop.ndim == 2
    ds.Rows, ds.Columns = crop.shape[:2]
    ds.SamplesPerPixel = 1 if grey else 3
    ds.PhotometricInterpretation = "MONOCHROME2" if grey else "RGB"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    if not grey:
        ds.PlanarConfiguration = 0
    pixels = crop if grey else cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    ds["PixelData"].VR = "OB"
    return ds


def write_secondary_capture(path: Path, crop: np.ndarray, study: Study, series_uid: str,
                            number: int, description: str) -> None:
    """The dataset written under a temporary name, then renamed into place. A failure names the
    file and the kind of error, never a value (it could be the patient's)."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        ds = secondary_capture(crop, study, series_uid, number, description)
        ds.save_as(str(tmp), enforce_file_format=True)
        os.replace(tmp, path)
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise OSError(f"cannot write {path.name}: {type(exc).__name__}") from None
