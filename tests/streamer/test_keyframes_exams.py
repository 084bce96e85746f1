"""A new exam while the streamer runs (told, or the probe back after a while without a fan) gets
its own keyframes folder: the last exam's best frames stay where they were, the new one starts
empty, and its first frames are kept even though the last exam's were better."""

from __future__ import annotations

import json

from tests.streamer.test_keyframes_sink import publish, result, sink_for  # noqa: F401 (fixture)


def test_a_new_exam_gets_its_own_folder_and_its_own_best_frames(sink_for):  # noqa: F811
    sink = sink_for(k=2)
    first = sink.folder
    publish(sink, result(0, 0.0, head=0.99, exam="e1"), result(1, 5.0, head=0.98, exam="e1"))
    publish(sink, result(2, 10.0, head=0.6, exam="e2"))  # worse than both kept, but a new exam
    second = sink.folder
    assert second != first and second.name == "e2"
    old = json.loads((first / "index.json").read_text())
    new = json.loads((second / "index.json").read_text())
    assert [r["seq"] for r in old["regions"]["head"]] == [0, 1]  # left as it was
    assert [r["seq"] for r in new["regions"]["head"]] == [2] and new["exam"] == "e2"
    assert new["started_t_source_ns"] == 10 * 10**9
    publish(sink, result(3, 15.0, head=0.7, exam="e2"))
    new = json.loads((second / "index.json").read_text())
    assert [r["seq"] for r in new["regions"]["head"]] == [3, 2]  # ranked within this exam only
