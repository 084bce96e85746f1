"""dicom: decompression bombs — a compressed frame whose own header declares a huge image (a few
kilobytes saying 30000x30000) is refused before any decoder sees it: the whole file at open when
every frame is one, else just those frames, counted invalid while the others play."""

import cv2
import numpy as np
import pytest

pytest.importorskip("pydicom")

from engines.dicom import DicomError, DicomLoop  # noqa: E402
from engines.encoded import MAX_PIXELS, frame_size, j2k_size, jpeg_size  # noqa: E402
from engines.simulator.dicom_export import write_dicom  # noqa: E402
from streamer.cli import main  # noqa: E402
from streamer.frames import InvalidFrame, SourceEnded  # noqa: E402
from streamer.sources import open_source  # noqa: E402

H, W = 48, 64
BOMB = (30000, 30000)


def _frames(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    return [rng.integers(0, 255, (H, W), dtype=np.uint8) for _ in range(n)]


def _jpeg(frame: np.ndarray, size: tuple[int, int] | None = None) -> bytes:
    """A real JPEG from OpenCV; ``size``: its SOF0 height and width patched to it."""
    ok, buf = cv2.imencode(".jpg", frame)
    assert ok
    data = bytearray(buf.tobytes())
    if size is not None:
        sof = data.index(b"\xff\xc0")
        data[sof + 5:sof + 7] = size[0].to_bytes(2, "big")
        data[sof + 7:sof + 9] = size[1].to_bytes(2, "big")
    return bytes(data)


def _loop_file(tmp_path, bombs: set[int], n: int = 4, size=BOMB, name: str = "bomb.dcm"):
    """A JPEG baseline US loop written by the test helper, frames in ``bombs`` patched."""
    import pydicom
    from pydicom.encaps import encapsulate

    frames = _frames(n)
    path = write_dicom(tmp_path / name, frames, jpeg=True)
    ds = pydicom.dcmread(path)
    ds.PixelData = encapsulate([_jpeg(f, size if i in bombs else None)
                                for i, f in enumerate(frames)])
    ds.save_as(path)
    return path


@pytest.fixture
def decoded(monkeypatch):
    """Every decoder call recorded (OpenCV's and pydicom's); a frame that declares the bomb's
    size is never passed on, so the old code fails this test instead of allocating gigabytes."""
    import pydicom.pixels

    calls = []
    real_imdecode, real_pixel_array = cv2.imdecode, pydicom.pixels.pixel_array

    def imdecode(buf, flags):
        size = jpeg_size(bytes(buf))
        calls.append(("opencv", size))
        return None if size == BOMB else real_imdecode(buf, flags)

    def pixel_array(src, *args, **kwargs):
        calls.append(("pydicom", kwargs.get("index")))
        from pydicom.encaps import get_frame

        data = get_frame(src.PixelData, kwargs.get("index") or 0,
                         number_of_frames=int(src.get("NumberOfFrames", 1)))
        if jpeg_size(data) == BOMB:
            raise MemoryError("the bomb reached the decoder")
        return real_pixel_array(src, *args, **kwargs)

    monkeypatch.setattr(cv2, "imdecode", imdecode)
    monkeypatch.setattr(pydicom.pixels, "pixel_array", pixel_array)
    return calls


@pytest.mark.parametrize("opencv", [True, False])
def test_bomb_frames_are_refused_before_decoding_and_the_others_play(tmp_path, decoded, opencv):
    loop = DicomLoop(_loop_file(tmp_path, bombs={1, 3}))
    loop._opencv_jpeg = opencv
    for i in (1, 3):
        with pytest.raises(DicomError, match=f"frame {i} refused.*declares 30000x30000"):
            loop.frame(i)
    assert decoded == []  # never given to a decoder
    assert loop.frame(0).shape == (H, W) and loop.frame(2).shape == (H, W)
    assert decoded and all(size in ((H, W), 0) for _, size in decoded)


def test_the_source_counts_bomb_frames_invalid(tmp_path, decoded):
    path = _loop_file(tmp_path, bombs={2})
    good, invalid = [], []
    with open_source(f"dicom:{path}") as src:
        while True:
            try:
                frame = src.read(1.0)
            except InvalidFrame as exc:
                invalid.append(str(exc))
                continue
            except SourceEnded:
                break
            good.append(frame.seq)
    assert good == [0, 1, 3] and len(invalid) == 1
    assert "frame 2" in invalid[0] and "30000x30000" in invalid[0]
    assert ("opencv", BOMB) not in decoded and not any(c[0] == "pydicom" for c in decoded)


def test_a_loop_of_bombs_is_one_line_exit_2_before_any_frame(tmp_path, capsys, decoded):
    path = _loop_file(tmp_path, bombs={0, 1, 2, 3}, name="allbombs.dcm")
    code = main(["run", "--source", f"dicom:{path}", "--publish", "tcp://127.0.0.1:*",
                 "--metrics-port", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "allbombs.dcm" in err[0] and "declares 30000x30000" in err[0]
    assert decoded == []


def test_a_frame_smaller_than_rows_x_columns_is_refused_too(tmp_path, decoded):
    loop = DicomLoop(_loop_file(tmp_path, bombs={0}, size=(16, 16)))
    with pytest.raises(DicomError, match="declares 16x16, Rows x Columns say 48x64"):
        loop.frame(0)
    assert decoded == []


def test_rows_x_columns_beyond_the_pixel_cap_are_refused_at_open(tmp_path):
    import pydicom

    path = write_dicom(tmp_path / "big.dcm", _frames(1), jpeg=True)
    ds = pydicom.dcmread(path)
    ds.Rows, ds.Columns = 8000, 8000  # within the side limit, beyond MAX_PIXELS
    ds.save_as(path)
    with pytest.raises(DicomError, match=f"8000x8000 are larger than the {MAX_PIXELS} pixels"):
        DicomLoop(path)


def test_header_sizes_of_jpeg_and_jpeg_2000():
    assert jpeg_size(_jpeg(_frames(1)[0])) == (H, W)
    assert frame_size(_jpeg(_frames(1)[0], BOMB), "1.2.840.10008.1.2.4.50") == BOMB
    assert frame_size(b"anything", "1.2.840.10008.1.2.5") is None  # RLE: no header size
    siz = b"\xff\x4f\xff\x51\x00\x29\x00\x00" + b"".join(
        v.to_bytes(4, "big") for v in (30010, 20005, 10, 5))
    assert j2k_size(siz) == (20000, 30000)
    jp2 = (b"\x00\x00\x00\x0cjP  \r\n\x87\n" + b"\x00\x00\x00\x14ftypjp2 " + bytes(8)
           + (8 + len(siz)).to_bytes(4, "big") + b"jp2c" + siz)
    assert frame_size(jp2, "1.2.840.10008.1.2.4.90") == (20000, 30000)
    for bad in (b"", b"\xff\xd8\xff\xda\x00\x02", b"\xff\xd8" + b"\xff" * 9000):
        with pytest.raises(ValueError):
            jpeg_size(bad)
