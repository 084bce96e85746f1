"""The recording never holds up the pipeline and never loses a result silently: a destination
that is full (ENOSPC), gone (EPIPE) or stalled (a FIFO nobody reads) costs counted results, not
live ones."""

import errno
import json
import os
import threading
import time

import pytest

import streamer.sinks.recording_sink as recording
from streamer.metrics import PipelineMetrics
from streamer.pipeline import build_pipeline
from streamer.sinks import create_sink
from tests.streamer.conftest import FakeBackend, FakeSink, FakeSource
from tests.streamer.test_pipeline import config
from tests.streamer.test_sinks import result


def test_a_full_disk_counts_every_result_it_could_not_write():
    """/dev/full fails every write with ENOSPC, as a disk that filled up."""
    sink = create_sink("record:/dev/full,status=1").open()
    for seq in range(20):
        sink.publish(result(seq))  # returns: never raises into the pipeline
    sink.publish_status({"fps": 1.0})
    sink.close()
    assert sink.published == 20 and sink.recorded == 0
    assert sink.lost == {"behind": 0, "error": 20} and sink.status_lost == 1
    assert sink.first_loss == "result seq 0 (No space left on device)"


def test_writing_resumes_when_space_returns_and_the_gap_is_counted(tmp_path, monkeypatch):
    """Results 5..9 meet a full disk (the first of them half-written, as a disk that fills mid-line);
    then space returns. The file holds whole lines only, and every missing seq is counted."""
    path = tmp_path / "rec.jsonl"
    real_write = os.write
    writes = {"n": 0}

    def disk(fd, data):
        if os.readlink(f"/proc/self/fd/{fd}") != str(path):  # another file: untouched
            return real_write(fd, data)
        writes["n"] += 1
        if writes["n"] == 6:  # result 5: part of the line fits, then the disk is full
            return real_write(fd, bytes(data[:10]))
        if 7 <= writes["n"] <= 11:  # the rest of result 5, then results 6..9
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(recording.os, "write", disk)
    with create_sink(f"record:{path}") as sink:
        for seq in range(15):
            sink.publish(result(seq))
    lines = [json.loads(line) for line in path.read_text().splitlines()]  # every line whole
    assert [line["seq"] for line in lines] == [0, 1, 2, 3, 4, 10, 11, 12, 13, 14]
    assert sink.lost == {"behind": 0, "error": 5} and sink.recorded == 10
    assert sink.recorded + sum(sink.lost.values()) == sink.published == 15


def test_a_reader_that_went_away_is_counted_not_raised(tmp_path):
    fifo = tmp_path / "results.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    sink = create_sink(f"record:{fifo}").open()
    sink.publish(result(0))
    deadline = time.monotonic() + 10
    while sink.recorded < 1 and time.monotonic() < deadline:  # the writer thread wrote it
        time.sleep(0.01)
    os.close(reader)  # the reader exits: EPIPE from now on
    for seq in range(1, 6):
        sink.publish(result(seq))
    sink.close()
    assert sink.recorded == 1 and sink.lost == {"behind": 0, "error": 5}
    assert "Broken pipe" in sink.first_loss


def test_a_fifo_nobody_reads_is_one_line_at_open(tmp_path):
    fifo = tmp_path / "results.fifo"
    os.mkfifo(fifo)
    outcome = {}

    def open_it():
        try:
            create_sink(f"record:{fifo}").open().close()
        except ValueError as exc:
            outcome["error"] = str(exc)

    opener = threading.Thread(target=open_it, daemon=True)
    opener.start()
    opener.join(10)
    if opener.is_alive():  # blocked until a reader comes: be that reader, so the test ends
        os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        opener.join(10)
    assert outcome.get("error") == f"nothing reads the FIFO {fifo}: start its reader first"


def test_a_stalled_record_keeps_live_results_flowing(tmp_path):
    """A FIFO whose reader stopped reading: every frame is still processed and published to the
    other sinks; the record takes what fits (the pipe, then its queue) and counts the rest."""
    fifo = tmp_path / "results.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # open, never read
    live = FakeSink()
    record = create_sink(f"record:{fifo},queue=8,close_timeout=0.2").open()
    metrics = PipelineMetrics("t")
    record.on_lost = metrics.count_record_lost
    frames = 400  # about 900 bytes a line: several times what a 64 KiB pipe and the queue hold
    p = build_pipeline(config(), FakeSource(live=False, count=frames), FakeBackend(), [live, record],
                       metrics)
    p.start()
    stalled = not p.wait(30)
    if stalled:  # a write blocked on the full pipe: close the reader so that it fails and ends
        os.close(reader)
    counts = p.close()
    assert not stalled, f"the pipeline stalled on the record: {counts}"
    in_pipe = b""
    while chunk := os.read(reader, 1 << 16):
        in_pipe += chunk
    os.close(reader)
    assert counts["processed"] == frames and len(live.results) == frames
    assert record.recorded == in_pipe.count(b"\n") > 0
    assert record.lost["behind"] > 0 and record.recorded + record.lost["behind"] == frames
    lost_metric = metrics.registry.get_sample_value("streamer_record_lost_total",
                                                    {"stream": "t", "reason": "behind"})
    assert lost_metric == record.lost["behind"]


@pytest.mark.parametrize("spec, message", [("queue=0", "queue must be ≥ 1"),
                                           ("close_timeout=-1", "close_timeout ≥ 0")])
def test_record_options_are_checked(tmp_path, spec, message):
    with pytest.raises(ValueError, match=message):
        create_sink(f"record:{tmp_path}/r.jsonl,{spec}")
