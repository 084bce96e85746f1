"""The best frames on the report come from a keyframes folder (DIR/<exam>/index.json): images
embedded as data: URIs, downscaled; a path leading outside the exam folder refused in one line;
a missing or undecodable image said on the page; the exam chosen by stream or --exam."""

from __future__ import annotations

import base64
import json
import re
import struct
import zlib

import cv2
import numpy as np

from streamer.cli import main
from streamer.report.keyframes import WIDTH
from tests.streamer.report_fixtures import det, entry, index, png, write_lines


def record(tmp_path, stream="main"):
    return write_lines(tmp_path / f"{stream}.jsonl",
                       [det(i, stream=stream, present=("head",)) for i in range(30)])


def run(capsys, *args) -> tuple[int, list[str]]:
    code = main(["report", *map(str, args)])
    return code, capsys.readouterr().err.strip().splitlines()


def images(page: str) -> list[np.ndarray]:
    found = re.findall(r'<img src="data:image/jpeg;base64,([A-Za-z0-9+/=]+)"', page)
    return [cv2.imdecode(np.frombuffer(base64.b64decode(b), np.uint8), cv2.IMREAD_COLOR)
            for b in found]


def test_best_frames_are_embedded_and_large_ones_downscaled(tmp_path, capsys):
    kf = tmp_path / "kf"
    d = kf / "exam1"
    png(d / "head" / "12.png", 1600, 900)
    png(d / "head" / "12_overlay.png", 1600, 900)
    png(d / "spine" / "3.png", 64, 48)
    index(kf, "exam1", regions={"head": [entry(12, "head/12.png", "head/12_overlay.png")],
                                "spine": [entry(3, "spine/3.png", None, score=0.8)]})
    out = tmp_path / "r.html"
    code, err = run(capsys, record(tmp_path), "--keyframes", kf, "--out", out)
    assert code == 0, err
    page = out.read_text()
    head, spine = images(page)
    assert head.shape == (270, WIDTH, 3)  # 1600x900 -> 480 wide, the aspect kept
    assert spine.shape == (48, 64, 3)  # never upscaled
    assert 'alt="head overlay"' in page and 'alt="spine crop"' in page  # the crop without overlay
    assert "score 0.97 · at 0:00.4 · seq 12 · ood 0.21" in page
    assert re.search(r"https?://", page) is None  # nothing from outside the page


def test_a_path_outside_the_exam_folder_is_refused(tmp_path, capsys):
    kf = tmp_path / "kf"
    png(tmp_path / "secret.png")
    for i, bad in enumerate(("../../secret.png", str(tmp_path / "secret.png"), "head/../../x.png")):
        exam = f"e{i}"
        index(kf, exam, regions={"head": [entry(1, "head/1.png", bad)]})
        code, err = run(capsys, record(tmp_path), "--keyframes", kf, "--exam", exam, "--out",
                        tmp_path / f"{exam}.html")
        assert code == 2 and err == [
            f"streamer report: error: {kf / exam / 'index.json'}: regions.head[0].overlay {bad!r} "
            f"leads outside the exam folder {(kf / exam).resolve()}"], err
        assert not (tmp_path / f"{exam}.html").exists()


def huge_png_header(width: int, height: int) -> bytes:
    """A few bytes that declare a huge PNG (a decompression bomb is refused from its header)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk
            + struct.pack(">I", zlib.crc32(chunk)) + b"\0" * 64)


def test_missing_or_bad_images_are_said_on_the_page(tmp_path, capsys):
    kf = tmp_path / "kf"
    d = kf / "exam1"
    (d / "head").mkdir(parents=True)
    (d / "head" / "2.png").write_bytes(b"not an image at all")
    (d / "head" / "3.png").write_bytes(huge_png_header(30000, 30000))
    index(kf, "exam1", regions={"head": [entry(1, None, "head/1.png"), entry(2, None, "head/2.png"),
                                         entry(3, None, "head/3.png")]})
    out = tmp_path / "r.html"
    code, err = run(capsys, record(tmp_path), "--keyframes", kf, "--out", out)
    assert code == 0, err
    page = out.read_text()
    assert "<img" not in page
    assert '<p class="note">head/1.png: missing</p>' in page
    assert '<p class="note">head/2.png: not a PNG or JPEG image</p>' in page
    assert '<p class="note">head/3.png: 30000x30000, over 8847360 pixels</p>' in page


def test_no_keyframes_is_one_line_on_the_page(tmp_path, capsys):
    out = tmp_path / "r.html"
    assert run(capsys, record(tmp_path), "--out", out)[0] == 0
    assert "No best frames: no keyframes folder given (--keyframes DIR)." in out.read_text()
    kf = tmp_path / "kf"
    index(kf, "other", stream="us1")
    assert run(capsys, record(tmp_path), "--keyframes", kf, "--out", out, "--force")[0] == 0
    assert f"No best frames: keyframes: no exam of stream main in {kf}." in out.read_text()


def test_the_exam_is_chosen_by_stream_time_or_exam(tmp_path, capsys):
    kf = tmp_path / "kf"
    png(kf / "a" / "head" / "1.png")
    index(kf, "a", regions={"head": [entry(1, "head/1.png", None)]}, started=0)
    index(kf, "b", regions={}, started=10**15)  # the same stream, long after this record
    out = tmp_path / "r.html"
    assert run(capsys, record(tmp_path), "--keyframes", kf, "--out", out)[0] == 0
    assert "Exam a:" in out.read_text() and len(images(out.read_text())) == 1
    index(kf, "c", regions={}, started=0)  # two exams during the record: which one is asked
    code, err = run(capsys, record(tmp_path), "--keyframes", kf, "--out", out, "--force")
    assert code == 2 and err == [f"streamer report: error: {kf} has 3 exams of stream main "
                                 "(a, b, c): name one with --exam"]
    assert run(capsys, record(tmp_path), "--keyframes", kf, "--exam", "c", "--out", out,
               "--force")[0] == 0
    assert "Exam c:" in out.read_text()
    code, err = run(capsys, record(tmp_path), "--keyframes", kf, "--exam", "../kf", "--out", out,
                    "--force")
    assert code == 2 and err == [f"streamer report: error: --exam '../kf': the name of a folder in {kf}"]


def test_an_index_that_is_not_one_is_refused(tmp_path, capsys):
    kf = tmp_path / "kf"
    (kf / "x").mkdir(parents=True)
    for text, said in (("{", "not JSON, not a keyframes index"),
                       (json.dumps({"v": 2}), "not a version 1 keyframes index (v: 1)")):
        (kf / "x" / "index.json").write_text(text)
        code, err = run(capsys, record(tmp_path), "--keyframes", kf, "--exam", "x", "--out",
                        tmp_path / "r.html")
        assert code == 2 and err == [f"streamer report: error: {kf / 'x' / 'index.json'}: {said}"]
