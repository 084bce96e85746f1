"""dicom: source — recorded US cine loops made here with pydicom: frames, timing, the tissue
region as the scan area, mm_per_px in the results, bad input, and no patient data in the output."""

import json
import logging
import math

import numpy as np
import pytest

pytest.importorskip("pydicom")

from engines.dicom import DicomError  # noqa: E402
from engines.simulator.dicom_export import Region, simulated_cine, write_dicom  # noqa: E402
from streamer.cli import main  # noqa: E402
from streamer.config import PreprocessConfig  # noqa: E402
from streamer.frames import SourceEnded  # noqa: E402
from streamer.preprocess import PolarCrop, Preprocessor  # noqa: E402
from streamer.sources import create_source, open_source  # noqa: E402

PATIENT = {"PatientName": "Doe^Jane", "PatientID": "PID-778899", "PatientBirthDate": "19840312",
           "InstitutionName": "St Elsewhere Maternity", "AccessionNumber": "ACC-424242"}


@pytest.fixture(scope="module")
def cine():
    return simulated_cine(6, width=640, height=360, seed=1)


def _read_all(spec: str, limit: int = 100):
    frames = []
    with open_source(spec) as src:
        try:
            while len(frames) < limit:
                frame = src.read(1.0)
                if frame is not None:
                    frames.append(frame)
        except SourceEnded:
            pass
    return frames


@pytest.mark.parametrize("photometric, grey, tol", [
    ("MONOCHROME2", True, 0), ("MONOCHROME1", True, 0), ("RGB", False, 0),
    ("YBR_FULL_422", False, 2.0)])
def test_frames_count_order_and_pixels(cine, tmp_path, photometric, grey, tol):
    frames = [f[:, :, 1].copy() for f in cine.frames] if grey else cine.frames
    path = write_dicom(tmp_path / "loop.dcm", frames, photometric=photometric, frame_time_ms=40)
    out = _read_all(f"dicom:{path}")
    assert [f.seq for f in out] == list(range(6))
    assert [f.t_source_ns for f in out] == [i * 40_000_000 for i in range(6)]
    for got, want in zip(out, frames, strict=True):
        assert got.image.shape == want.shape and got.image.dtype == np.uint8
        assert np.abs(got.image.astype(int) - want).mean() <= tol


def test_jpeg_baseline_loop_decodes(cine, tmp_path):
    from pydicom.pixels import get_decoder
    from pydicom.uid import JPEGBaseline8Bit

    if not get_decoder(JPEGBaseline8Bit).is_available:
        pytest.skip("no JPEG decoder plugin installed")
    path = write_dicom(tmp_path / "jpeg.dcm", cine.frames, regions=cine.regions, jpeg=True)
    out = _read_all(f"dicom:{path}")
    assert len(out) == 6 and out[0].image.shape == (360, 640, 3)
    assert np.abs(out[3].image.astype(int) - cine.frames[3]).mean() < 3  # lossy, close
    assert out[0].area is not None and out[0].area.sector is not None


def test_jpeg_through_pydicom_matches_the_opencv_path(cine, tmp_path):
    """Baseline JPEG is decoded by OpenCV (fast); pydicom's plugins must give the same frame."""
    from pydicom.pixels import get_decoder
    from pydicom.uid import JPEGBaseline8Bit

    from engines.dicom import DicomLoop

    if not get_decoder(JPEGBaseline8Bit).is_available:
        pytest.skip("no JPEG decoder plugin installed")
    loop = DicomLoop(write_dicom(tmp_path / "j.dcm", cine.frames[:2], jpeg=True))
    fast = loop.frame(1)
    loop._opencv_jpeg = False
    assert np.abs(loop.frame(1).astype(int) - fast).mean() < 1.0


def test_rle_lossless_loop_decodes_exactly(cine, tmp_path):
    import pydicom
    from pydicom.uid import RLELossless

    path = write_dicom(tmp_path / "rle.dcm", cine.frames[:3])
    ds = pydicom.dcmread(path)
    ds.compress(RLELossless, np.stack([f[..., ::-1] for f in cine.frames[:3]]))
    ds.save_as(path)
    out = _read_all(f"dicom:{path}")
    assert len(out) == 3 and all(np.array_equal(f.image, w) for f, w in zip(out, cine.frames,
                                                                              strict=False))


def test_realtime_follows_the_frame_time_vector(cine, tmp_path, monkeypatch):
    from streamer.sources import base
    from tests.streamer.test_sources import FakeClock

    vector = [0, 30, 90, 30, 90, 30]  # ms from the previous frame
    path = write_dicom(tmp_path / "ftv.dcm", cine.frames, frame_time_vector=vector)
    clock = FakeClock()  # the pacer's clock, advanced only by its sleeps: exact, whatever the load
    monkeypatch.setattr(base, "time", clock)
    out = _read_all(f"dicom:{path},realtime=1")
    assert [f.t_source_ns // 1_000_000 for f in out] == list(np.cumsum(vector))
    assert clock.now_ns == sum(vector[1:]) * 1_000_000  # 270 ms of intervals between six frames


def test_lossless_ignores_pacing_and_cine_rate_gives_the_timing(cine, tmp_path, monkeypatch):
    from streamer.sources import base
    from tests.streamer.test_sources import FakeClock

    path = write_dicom(tmp_path / "cine.dcm", cine.frames, frame_time_ms=None, cine_rate=5)
    clock = FakeClock()
    monkeypatch.setattr(base, "time", clock)
    out = _read_all(f"dicom:{path}")
    assert clock.slept == []  # realtime=0: as fast as it decodes, never waiting for 5 fps
    assert out[1].t_source_ns == 200_000_000
    src = create_source(f"dicom:{path},realtime=1")
    assert src.live and not create_source(f"dicom:{path}").live


def test_loop_and_single_frame_image(cine, tmp_path):
    path = write_dicom(tmp_path / "one.dcm", cine.frames[:1])
    assert len(_read_all(f"dicom:{path}")) == 1  # a single-frame US image is a one-frame loop
    looped = _read_all(f"dicom:{path},loop=1", limit=5)
    assert [f.seq for f in looped] == list(range(5))
    assert all(np.array_equal(f.image, cine.frames[0]) for f in looped)


def test_folder_plays_files_in_name_order(cine, tmp_path):
    for name, part in (("exam10.dcm", cine.frames[4:]), ("exam2.dcm", cine.frames[:4])):
        write_dicom(tmp_path / name, part, frame_time_ms=50)
    (tmp_path / "notes.txt").write_text("not played")
    out = _read_all(f"dicom:{tmp_path}")
    assert [f.seq for f in out] == list(range(6))
    assert all(np.array_equal(f.image, w) for f, w in zip(out, cine.frames, strict=True))
    assert out[4].t_source_ns == 200_000_000  # exam10 starts after exam2's 4 frames


def test_tissue_region_is_the_scan_area_with_spacing_and_sector(cine, tmp_path):
    path = write_dicom(tmp_path / "r.dcm", cine.frames, regions=cine.regions)
    region = cine.regions[0]
    x0, y0, x1, y1 = region.bounds
    area = _read_all(f"dicom:{path}")[0].area
    assert area.rect == (x0, y0, x1 - x0 + 1, y1 - y0 + 1)
    assert area.mm_per_px == pytest.approx((region.cm_per_px[0] * 10, region.cm_per_px[1] * 10))
    g = area.sector  # its axis runs through the reference pixel (the probe face's centre)
    face_x = x0 + g.apex[0] + g.r_min * math.sin((g.angle_min + g.angle_max) / 2)
    assert face_x == pytest.approx(x0 + region.reference[0] + 0.5, abs=0.5)
    assert g.angle_min == pytest.approx(-g.angle_max, abs=0.03)


def test_two_regions_use_the_tissue_one_and_say_so(cine, tmp_path, caplog):
    tissue = cine.regions[0]
    doppler = Region((0, 300, 639, 359), data_type=3, spatial_format=3, cm_per_px=None)
    path = write_dicom(tmp_path / "two.dcm", cine.frames, regions=[doppler, tissue])
    with caplog.at_level(logging.INFO):
        area = _read_all(f"dicom:{path}")[0].area
    assert area.rect[:2] == tissue.bounds[:2]
    assert "2 ultrasound regions; using the tissue region" in caplog.text
    assert "PW spectral Doppler" in caplog.text


def test_without_regions_the_fan_is_searched(cine, tmp_path):
    path = write_dicom(tmp_path / "plain.dcm", cine.frames)
    assert all(f.area is None for f in _read_all(f"dicom:{path}"))


def test_preprocess_crops_the_scan_area_instead_of_searching(cine, tmp_path):
    path = write_dicom(tmp_path / "r.dcm", cine.frames, regions=cine.regions)
    frame = _read_all(f"dicom:{path}")[0]
    frame.image = frame.image.copy()
    frame.image[:, :120] = np.random.default_rng(0).integers(0, 255, (360, 120, 3))  # a distractor
    x, y, w, h = frame.area.rect
    sector = Preprocessor(PreprocessConfig(representation="sector"), 64).process(frame).crop
    assert (sector.x, sector.y, sector.w, sector.h) == (x, y, w, h)
    polar = Preprocessor(PreprocessConfig(representation="polar"), 64).process(frame).crop
    assert isinstance(polar, PolarCrop) and (polar.x, polar.y) == (x, y)
    full = Preprocessor(PreprocessConfig(mode="full"), 64).process(frame).crop  # asked for: kept
    assert (full.x, full.y, full.w, full.h) == (0, 0, 640, 360)




@pytest.mark.parametrize("representation", ["sector", "polar"])
def test_run_reports_mm_per_px_peaks_in_the_region_and_no_patient_data(
        cine, tmp_path, capsys, caplog, kept_metrics, representation):
    from prometheus_client import generate_latest

    path = write_dicom(tmp_path / "exam.dcm", cine.frames, regions=cine.regions, patient=PATIENT)
    record = tmp_path / "results.jsonl"
    with caplog.at_level(logging.DEBUG):
        code = main(["run", "--source", f"dicom:{path}", "--publish", "tcp://127.0.0.1:*",
                     "--metrics-port", "0", "--record", str(record),
                     "--representation", representation])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "captured 6, processed 6, dropped 0, invalid 0" in out
    results = [json.loads(line) for line in record.read_text().splitlines()]
    assert len(results) == 6
    x0, y0, x1, y1 = cine.regions[0].bounds
    for r in results:
        assert r["mm_per_px"] == pytest.approx([v * 10 for v in cine.regions[0].cm_per_px])
        for c in r["classes"].values():
            assert x0 <= c["peak"][0] <= x1 and y0 <= c["peak"][1] <= y1
    everything = (record.read_text() + out + err + caplog.text
                  + generate_latest(kept_metrics[0].registry).decode())
    assert "the tissue region" in caplog.text  # the logs did speak about the file
    from engines.dicom import DicomLoop

    assert not any(k in DicomLoop(path).ds for k in PATIENT)  # never even parsed
    for value in PATIENT.values():
        for token in value.replace("^", " ").split():
            assert token not in everything


def test_det_message_round_trips_mm_per_px(cine, tmp_path):
    from streamer.frames import FrameResult, Timing
    from streamer.protocol import decode_result, encode_result

    result = FrameResult("s", 1, 0, (360, 640), (), Timing(capture=1), mm_per_px=(0.25, 0.5))
    assert decode_result(encode_result(result)).mm_per_px == (0.25, 0.5)
    plain = FrameResult("s", 1, 0, (360, 640), (), Timing(capture=1))
    assert "mm_per_px" not in json.loads(encode_result(plain)[1])
    assert decode_result(encode_result(plain)).mm_per_px is None


# -- bad input: one clear line each, exit 2, before any frame ------------------------------------
def _bad(tmp_path, cine, case: str):
    frames = [f[:, :, 1].copy() for f in cine.frames[:2]]
    path = tmp_path / f"{case}.dcm"
    if case == "not_dicom":
        path.write_bytes(b"\x89PNG not a dicom file at all" * 10)
    elif case == "ct":
        write_dicom(path, frames, modality="CT", sop_class="1.2.840.10008.5.1.4.1.1.2")
    elif case in ("short", "absurd", "htj2k", "mpeg4"):
        import pydicom

        write_dicom(path, frames)
        ds = pydicom.dcmread(path)
        if case == "short":
            ds.PixelData = ds.PixelData[: len(ds.PixelData) // 2]
        elif case == "absurd":
            ds.Rows = 60000
        else:
            from pydicom.encaps import encapsulate
            from pydicom.uid import HTJ2K, MPEG4HP41

            ds.file_meta.TransferSyntaxUID = HTJ2K if case == "htj2k" else MPEG4HP41
            ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + bytes(64)] * 2)
        ds.save_as(path)
    return path


@pytest.mark.parametrize("case, message", [
    ("not_dicom", "not a DICOM file"),
    ("ct", "not ultrasound (Modality CT"),
    ("short", "shorter than Rows x Columns x Frames"),
    ("absurd", "absurd dimensions 60000x640"),
    ("htj2k", "no decoder for it is installed: pip install 'sonostream[dicom]'"),
    ("mpeg4", "which pydicom cannot decode"),
])
def test_bad_input_is_one_line_exit_2_before_any_frame(cine, tmp_path, capsys, case, message):
    if case == "htj2k":
        from pydicom.pixels import get_decoder
        from pydicom.uid import HTJ2K

        if get_decoder(HTJ2K).is_available:
            pytest.skip("an HTJ2K decoder is installed here")
    path = _bad(tmp_path, cine, case)
    record = tmp_path / "r.jsonl"
    code = main(["run", "--source", f"dicom:{path}", "--publish", "tcp://127.0.0.1:*",
                 "--metrics-port", "0", "--record", str(record)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert message in err[0] and f"{case}.dcm" in err[0]
    assert not record.exists() or record.read_text() == ""


def test_a_bad_file_in_a_folder_stops_it_before_playing(cine, tmp_path):
    write_dicom(tmp_path / "a1.dcm", cine.frames[:2])
    _bad(tmp_path, cine, "short").rename(tmp_path / "a2.dcm")
    with pytest.raises(DicomError, match="a2.dcm: pixel data are"):
        create_source(f"dicom:{tmp_path}").open()


def test_an_roi_outside_any_file_of_a_folder_is_refused_before_any_frame(cine, tmp_path, capsys):
    """Before: the smaller file's frames were all invalid (exit 0); the roi must fit every file."""
    folder = tmp_path / "exams"
    folder.mkdir()
    write_dicom(folder / "a1.dcm", [f[:, :, 1].copy() for f in cine.frames[:2]])  # 640x360
    write_dicom(folder / "a2.dcm", [f[:300, :500, 1].copy() for f in cine.frames[:2]])
    config = tmp_path / "site.toml"
    config.write_text("[preprocess]\nroi = [0, 0, 600, 340]\n")
    code = main(["run", "--config", str(config), "--source", f"dicom:{folder}", "--publish", "",
                 "--metrics-port", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "roi [0, 0, 600, 340] (x, y, w, h) lies outside the source's 500x300 frames" in err[0]


def test_missing_pydicom_names_the_extra(monkeypatch, tmp_path, cine):
    import sys

    path = write_dicom(tmp_path / "x.dcm", cine.frames[:1])
    monkeypatch.setitem(sys.modules, "pydicom", None)
    with pytest.raises(DicomError, match=r"needs pydicom.*pip install 'sonostream\[dicom\]'"):
        create_source(f"dicom:{path}").open()


def test_a_bare_dcm_path_is_a_dicom_source(cine, tmp_path):
    from streamer.sources import parse_source_spec

    path = str(write_dicom(tmp_path / "exam,1.dcm", cine.frames[:2]))
    assert parse_source_spec(path) == ("dicom", {"path": path})
    assert len(_read_all(path)) == 2


def test_missing_file_is_refused_at_the_spec():
    from streamer.errors import UserError

    with pytest.raises(UserError, match="DICOM file or folder not found"):
        create_source("dicom:/nonexistent/exam.dcm")


@pytest.mark.parametrize("target", ["/no/such.dcm", "/no/such/folder", "/no/such/folder/"])
def test_run_with_a_missing_file_or_folder_is_one_line_exit_2(tmp_path, capsys, target):
    """Not a traceback and exit 1: bad input, named, before the model loads."""
    code = main(["run", "--source", f"dicom:{target}", "--publish", "tcp://127.0.0.1:*",
                 "--metrics-port", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("streamer run: error:") and target in err[0]


def test_the_export_command_writes_a_small_loop_by_default(tmp_path, capsys):
    """A try-out exam, not 187 MB of 1080p RGB: 640x360 unless asked, its size said."""
    import pydicom

    from engines.simulator.dicom_export import main as export

    out = tmp_path / "exam.dcm"
    assert export([str(out), "--frames", "2"]) == 0
    ds = pydicom.dcmread(out)
    assert (ds.Columns, ds.Rows, int(ds.NumberOfFrames)) == (640, 360, 2)
    assert out.stat().st_size < 2 * 640 * 360 * 3 + 100_000
    assert capsys.readouterr().out.strip() == f"wrote {out}: 2 frames 640x360, 1.4 MB"


def test_exported_exams_are_kept_out_of_git():
    """DICOM files are patient data: wherever one is written in the checkout, git ignores it."""
    from fnmatch import fnmatch
    from pathlib import Path

    ignore = (Path(__file__).resolve().parents[2] / ".gitignore").read_text().split()
    for name in ("exam.dcm", "exam.DCM", "loop.dicom"):
        assert any(fnmatch(name, pattern) for pattern in ignore), name
