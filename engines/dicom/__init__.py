"""DICOM ultrasound: cine loops read with pydicom and checked before a frame is played
(``loop``), and the scanner's Sequence of Ultrasound Regions as the scan area, the seed of the
sector fit and the pixel spacing (``regions``)."""

from engines.dicom.loop import EXTRA, DicomError, DicomLoop, dicom_files, frame_intervals
from engines.dicom.regions import (
    ScanArea,
    UsRegion,
    brightest_frame,
    read_regions,
    scan_area,
    tissue_region,
)

__all__ = ["EXTRA", "DicomError", "DicomLoop", "ScanArea", "UsRegion", "brightest_frame",
           "dicom_files", "frame_intervals", "read_regions", "scan_area", "tissue_region"]
