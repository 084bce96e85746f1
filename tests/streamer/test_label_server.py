"""streamer label's server and suggestions: every request checked (400 and one line, never a
traceback), frames served as JPEG, edits written at once and only edits (suggestions never), a
failed write said on every answer, and the model's scores equal to what `streamer run` publishes
for the same DICOM loop."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest

from streamer.cli import main

pytest.importorskip("pydicom")
pytest.importorskip("aiohttp")
FRAMES = 12
HEADER = "file,frames,head,spine,thorax,abdomen,limbs,placenta\n"


@pytest.fixture(scope="module")
def exam(tmp_path_factory):
    from engines.simulator.dicom_export import simulated_cine, write_dicom

    folder = tmp_path_factory.mktemp("exam")
    cine = simulated_cine(FRAMES, seed=5)
    write_dicom(folder / "loop.dcm", cine.frames, regions=cine.regions)
    return folder


@pytest.fixture
def served(exam, tmp_path):
    from streamer.labeling.labeler import open_labeler
    from streamer.labeling.server import LabelServer

    folder = tmp_path / "exam"
    folder.mkdir()
    (folder / "loop.dcm").symlink_to(exam / "loop.dcm")
    labeler = open_labeler(f"dicom:{folder}").start()
    try:
        with LabelServer(labeler, port=0) as server:
            yield server, labeler, folder
    finally:
        labeler.close()


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def post(url: str, body) -> tuple[int, bytes]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url + "api/edit", data=data, method="POST",
                                 headers={"Content-Type": "application/json"})
    return get(req)


@pytest.mark.parametrize("path, message", [
    ("frame.jpg?loop=1&frame=0", "no loop 1: loops are 0..0"),
    (f"frame.jpg?loop=0&frame={FRAMES}", f"loop.dcm has frames 0..{FRAMES - 1}, not {FRAMES}"),
    ("frame.jpg?loop=0&frame=-1", f"loop.dcm has frames 0..{FRAMES - 1}, not -1"),
    ("frame.jpg?loop=0&frame=1e9", "frame must be an integer, got '1e9'"),
    ("frame.jpg?loop=0", "missing ?frame="),
    ("api/labels?loop=-1", "no loop -1: loops are 0..0"),
    ("api/scores?loop=7", "no loop 7: loops are 0..0"),
])
def test_unknown_loops_and_frames_are_a_400_with_one_line(served, path, message):
    server, _, _ = served
    status, body = get(server.url + path)
    assert status == 400 and body.decode() == message + "\n"


@pytest.mark.parametrize("body, message", [
    ({"op": "toggle", "loop": 0, "frame": 0, "class": 6}, "class 6 is not one of 0..5"),
    ({"op": "toggle", "loop": 0, "frame": FRAMES, "class": 0}, f"not {FRAMES}"),
    ({"op": "toggle", "loop": 0, "frame": 1}, "toggle needs frame and class"),
    ({"op": "toggle", "loop": 0, "frame": 1, "class": True}, "class must be an integer, got true"),
    ({"op": "erase", "loop": 0}, "unknown op 'erase'; one of toggle, accept, undo, save"),
    ({"op": "undo"}, "an edit needs loop"),
    ([1, 2], "an edit is a JSON object"),
    (b"{not json", "an edit is a JSON object"),
    (b"x" * 10_000, "Maximum request body size"),
])
def test_bad_edits_are_a_400_with_one_line_and_change_nothing(served, body, message):
    server, labeler, folder = served
    status, text = post(server.url, body)
    assert status in (400, 413) and message in text.decode() and text.decode().count("\n") <= 1
    assert labeler.session.undo_depth == 0 and not (folder / "labels.csv").exists()


def test_frames_are_the_loops_own_and_edits_are_written_at_once(served, exam):
    server, labeler, folder = served
    status, jpeg = get(server.url + "frame.jpg?loop=0&frame=3")
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    from engines.dicom import DicomLoop

    want = DicomLoop(str(exam / "loop.dcm")).frame(3)
    assert status == 200 and image.shape == want.shape
    assert np.abs(image.astype(int) - want).mean() < 3  # the JPEG of frame 3
    assert labeler.suggestions.wait(60)
    assert not (folder / "labels.csv").exists()  # every frame suggested, nothing written
    status, body = post(server.url, {"op": "toggle", "loop": 0, "frame": 4, "class": 2})
    assert status == 200 and json.loads(body)["runs"] == [[4, FRAMES - 1, [0, 0, 1, 0, 0, 0]]]
    assert (folder / "labels.csv").read_text() == HEADER + f"loop.dcm,4-{FRAMES - 1},0,0,1,0,0,0\n"
    status, body = post(server.url, {"op": "undo", "loop": 0})
    assert json.loads(body)["runs"] == []
    assert (folder / "labels.csv").read_text() == HEADER  # back to no labelled frame


def test_a_write_that_fails_is_said_until_one_succeeds(served, monkeypatch):
    import streamer.labeling.session as session

    server, labeler, folder = served
    real = session.write_range_labels

    def full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(session, "write_range_labels", full)
    status, body = post(server.url, {"op": "toggle", "loop": 0, "frame": 0, "class": 0})
    answer = json.loads(body)
    assert status == 200 and answer["saved"] is False
    assert answer["save_error"] == f"cannot write {folder / 'labels.csv'}: No space left on device"
    assert answer["runs"] == [[0, FRAMES - 1, [1, 0, 0, 0, 0, 0]]]  # kept, to be written later
    monkeypatch.setattr(session, "write_range_labels", real)
    status, body = post(server.url, {"op": "save", "loop": 0})
    assert json.loads(body)["saved"] is True
    assert (folder / "labels.csv").read_text().endswith(f"loop.dcm,0-{FRAMES - 1},1,0,0,0,0,0\n")


def test_suggestions_are_the_scores_streamer_run_publishes(served, exam, tmp_path):
    _, labeler, _ = served
    record = tmp_path / "run.jsonl"
    code = main(["run", "--source", f"dicom:{exam / 'loop.dcm'}", "--publish", "tcp://127.0.0.1:*",
                 "--metrics-port", "0", "--record", str(record)])
    assert code == 0 and labeler.suggestions.wait(60)
    results = [json.loads(line) for line in record.read_text().splitlines()]
    classes = labeler.session.classes
    scores = np.array([[r["classes"][c]["score"] for c in classes] for r in results])
    present = np.array([[r["classes"][c]["present"] for c in classes] for r in results])
    assert scores.shape == (FRAMES, len(classes))
    assert np.abs(scores - labeler.suggestions.scores[0]).max() < 1e-4  # the record rounds to 1e-5
    assert (present == labeler.suggestions.present[0]).all()
    answer = labeler.scores(0, 5)
    assert answer["from"] == 5 and answer["done"] == FRAMES and len(answer["scores"]) == FRAMES - 5
