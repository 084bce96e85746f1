"""streamer label's input: DICOM and video folders opened with exact frame counts, frames served
as the loop holds them (seeks included), fetalnav shown read-only, and every bad input (labels
that do not fit, a loop that does not decode, a folder of no named kind) one line, exit 2."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from streamer.cli import main
from streamer.errors import UserError
from streamer.labeling.loops import FrameStore, VideoReader, open_data

pytest.importorskip("pydicom")
HEADER = "file,frames,head,spine,thorax,abdomen,limbs,placenta\n"


@pytest.fixture(scope="module")
def dicom_dir(tmp_path_factory):
    from engines.simulator.dicom_export import simulated_cine, write_dicom

    folder = tmp_path_factory.mktemp("dicom")
    cine = simulated_cine(10, seed=3)
    write_dicom(folder / "b10.dcm", cine.frames, regions=cine.regions)
    write_dicom(folder / "b2.dcm", cine.frames[:6], regions=cine.regions)
    return folder


def numbered_frames(n: int, size=(240, 320)) -> list[np.ndarray]:
    """Frames that tell their index apart: a grey level and the number written on them."""
    out = []
    for i in range(n):
        img = np.full((*size, 3), 20 + 9 * i, np.uint8)
        cv2.putText(img, str(i), (40, 160), cv2.FONT_HERSHEY_SIMPLEX, 4, (255, 255, 255), 6)
        out.append(img)
    return out


def write_video(path: Path, frames: list[np.ndarray], fourcc: str = "MJPG", fps: float = 25):
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    for f in frames:
        writer.write(f)
    writer.release()
    return path


def label(tmp_path, capsys, *args) -> tuple[int, str]:
    code = main(["label", *map(str, args), "--port", "0", "--duration", "0.05"])
    return code, capsys.readouterr().err


def test_a_dicom_folder_is_its_loops_in_name_order(dicom_dir):
    data = open_data(f"dicom:{dicom_dir}")
    assert [(lp.name, lp.frames) for lp in data.loops] == [("b2.dcm", 6), ("b10.dcm", 10)]
    assert data.labels_path == str(dicom_dir / "labels.csv") and not data.readonly
    one = open_data(str(dicom_dir / "b10.dcm"))  # a single file: its folder's labels.csv
    assert [lp.name for lp in one.loops] == ["b10.dcm"] and one.labels_path == data.labels_path


def test_video_loops_count_exactly_and_serve_every_frame_in_any_order(tmp_path):
    frames = numbered_frames(23)
    write_video(tmp_path / "a.avi", frames)
    write_video(tmp_path / "b.mp4", frames[:17], "mp4v")
    (tmp_path / "notes.txt").write_text("not a loop")
    data = open_data(f"video:{tmp_path}")
    assert [(lp.name, lp.frames, lp.fps) for lp in data.loops] == [("a.avi", 23, 25.0),
                                                                    ("b.mp4", 17, 25.0)]
    for info in data.loops:
        reader = VideoReader(info.paths[0])
        order = [5, 6, 0, info.frames - 1, 3, 12, 11, 1]  # seeks back and forth, and steps
        for i in order:
            level = float(np.median(reader.image(i)[:40, :40]))
            assert abs(level - (20 + 9 * i)) < 4.5, (info.name, i, level)  # frame i, not i±1
        reader.close()
    store = FrameStore(data.loops, width=160, max_bytes=3000)
    small = cv2.imdecode(np.frombuffer(store.jpeg(0, 4), np.uint8), cv2.IMREAD_COLOR)
    assert small.shape == (120, 160, 3)  # downscaled to the width, aspect kept
    for i in range(10):
        store.jpeg(1, i)
    assert store.cached_bytes <= 3000  # the cache stays within its bound
    store.close()


@pytest.mark.parametrize("text, message", [
    (HEADER.replace("placenta", "cervix") + "b2.dcm,0,1,0,0,0,0,0\n",
     "labels.csv: class 'cervix' is not one of the model's classes"),
    (HEADER + "b2.dcm,0-2,1,0,0,0,0,0\nb10.dcm,4-10,1,0,0,0,0,0\n",
     "labels.csv:3: frames 4-10 of b10.dcm run past its last frame 9"),
])
def test_labels_that_do_not_fit_are_one_line_and_exit_2(dicom_dir, tmp_path, capsys, text, message):
    folder = tmp_path / "exam"
    folder.mkdir()
    for f in dicom_dir.glob("*.dcm"):
        (folder / f.name).symlink_to(f)
    (folder / "labels.csv").write_text(text)
    code, err = label(tmp_path, capsys, f"dicom:{folder}")
    assert code == 2
    assert err.count("\n") == 1 and message in err and str(folder / "labels.csv") in err, err


def test_a_loop_that_does_not_decode_is_named_and_exit_2(dicom_dir, tmp_path, capsys):
    dcm = tmp_path / "dcm"
    dcm.mkdir()
    (dcm / "good.dcm").symlink_to(dicom_dir / "b2.dcm")
    (dcm / "broken.dcm").write_bytes(b"\0" * 300)
    code, err = label(tmp_path, capsys, f"dicom:{dcm}")
    assert code == 2 and err.count("\n") == 1 and "broken.dcm: not a DICOM file" in err, err
    video = tmp_path / "video"
    video.mkdir()
    write_video(video / "good.avi", numbered_frames(3))
    (video / "broken.mp4").write_bytes(b"\0" * 3000)
    code, err = label(tmp_path, capsys, f"video:{video}")
    assert code == 2 and err.count("\n") == 1 and "broken.mp4" in err, err
    assert not (dcm / "labels.csv").exists() and not (video / "labels.csv").exists()


def test_a_folder_of_no_named_kind_is_one_line(tmp_path, capsys):
    code, err = label(tmp_path, capsys, tmp_path)
    assert code == 2 and f"dicom:{tmp_path}, video:{tmp_path} or fetalnav:{tmp_path}" in err


def write_mha(path: Path, pixels: np.ndarray, labels: str) -> None:
    rows, cols = pixels.shape
    header = (f"{labels}\nObjectType = Image\nNDims = 2\nDimSize = {cols} {rows}\n"
              "ElementSpacing = 0.5 0.5\nElementType = MET_UCHAR\nElementDataFile = LOCAL\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header.encode() + pixels.astype(np.uint8).tobytes())


def test_fetalnav_is_shown_read_only_with_its_header_labels(tmp_path, capsys):
    from streamer.labeling.labeler import open_labeler

    img = np.full((60, 80), 100, np.uint8)
    write_mha(tmp_path / "s1" / "f0.mha", img, "Labels = Head, Spine")
    write_mha(tmp_path / "s1" / "f1.mha", img, "Label = Head")
    write_mha(tmp_path / "s2" / "f0.mha", img, "Label = Placenta")
    labeler = open_labeler(f"fetalnav:{tmp_path}")
    try:
        assert [(lp.name, lp.frames) for lp in labeler.data.loops] == [("s1", 2), ("s2", 1)]
        assert labeler.labels(0)["runs"] == [[0, 0, [1, 1, 0, 0, 0, 0]], [1, 1, [1, 0, 0, 0, 0, 0]]]
        readonly = labeler.state()["readonly"]
        assert readonly.startswith("fetalnav labels live in the MetaImage headers")
        for op in ("toggle", "accept", "undo", "save"):
            with pytest.raises(UserError, match="corrections are not written"):
                labeler.edit(op, 0, 0, 0)
        assert labeler.frames.jpeg(1, 0)[:2] == b"\xff\xd8"
    finally:
        labeler.close()
    code = main(["label", f"fetalnav:{tmp_path}", "--port", "0", "--duration", "0.05"])
    out = capsys.readouterr().out
    assert code == 0 and "note: fetalnav labels live in the MetaImage headers: shown read-only, " \
                          "corrections are not written" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s1", "s2"]  # nothing written
    write_mha(tmp_path / "s2" / "f1.mha", img, "Label = Background")  # not the model's
    code, err = label(tmp_path, capsys, f"fetalnav:{tmp_path}")
    assert code == 2 and "f1.mha: label 'Background' is not one of the model's classes" in err
