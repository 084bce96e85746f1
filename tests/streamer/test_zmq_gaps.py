"""Frames lost inside ZeroMQ (a PUB or SUB queue at its high-water mark drops silently) are holes
in the sender's seq: the zmq source counts them, so a sender's frames all show in the counters."""

import threading
import time

import numpy as np
import pytest
import zmq

from streamer.metrics import PipelineMetrics
from streamer.pipeline import build_pipeline
from streamer.protocol import encode_frame
from streamer.sources import create_source, open_source
from tests.streamer.conftest import FakeBackend, FakeSink
from tests.streamer.test_pipeline import balanced, config
from tests.streamer.test_sources import connected, frame_parts, publisher  # noqa: F401 - fixture


def test_holes_in_seq_are_counted_and_restarts_are_not():
    from streamer.sources.zmq_source import SeqGaps

    gaps = SeqGaps(max_gap=1000)
    seqs = [5, 6, 9, 9, 10, 13,  # 7, 8 and 11, 12 lost; a repeated 9 loses nothing
            0, 1,  # back to 0: the sender restarted
            2**32 - 2, 2**32 - 1, 0, 2,  # a jump of more than max_gap (a new sender), a wrap, 1 lost
            1003, 3000]  # 1000 lost: at the bound; 1996 ahead: beyond it, a new sender
    assert [gaps.observe(s) for s in seqs] == [0, 0, 2, 0, 0, 2, 0, 0, 0, 0, 0, 1, 1000, 0]
    assert gaps.restart == (1003, 3000)


def send(sock, seqs):
    for seq in seqs:
        sock.send_multipart(frame_parts(seq, value=seq % 256))


def read_until(src, last_seq, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = src.read(0.1)
        if frame is not None and frame.seq == last_seq:
            return
    raise AssertionError(f"seq {last_seq} never arrived")


def test_zmq_source_counts_missing_seqs_as_dropped_gaps(publisher):  # noqa: F811
    sock, endpoint = publisher
    with open_source(f"zmq:{endpoint},hwm=64") as src:
        connected(sock, src)  # probes with seq -1
        before = src.describe()
        send(sock, [0, 1, 2, 5, 6, 10])  # 3, 4 and 7, 8, 9 never sent: lost on the way
        read_until(src, 10)
        send(sock, [3, 4, 5000, 5002])  # a restart, then a new sender's numbering (1 lost there)
        read_until(src, 5002)
        after = src.describe()
    received = after["received"] - before["received"]
    assert received == 10
    # every message but the ones decoded (at least the two waited for) was drained as stale, and
    # the 6 holes come on top: nothing a sender numbered is missing from dropped + frames read
    read = after["frames_read"] - before["frames_read"]
    assert after["dropped"] - before["dropped"] == (received - read) + 6
    assert after["gaps"] == 6


def test_simulate_to_run_every_frame_sent_is_captured():
    """The sender's frames with holes in seq (as ZeroMQ loses them at 300 fps) through the whole
    pipeline: captured == frames the sender numbered, the holes dropped, the books balanced."""
    sock = zmq.Context.instance().socket(zmq.XPUB)  # tells us when the subscription arrived
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind("tcp://127.0.0.1:*")
    source = create_source(f"zmq:{sock.getsockopt_string(zmq.LAST_ENDPOINT)},timeout=30")
    sink = FakeSink()
    p = build_pipeline(config(), source, FakeBackend(), [sink], PipelineMetrics("t"))
    holes = {3, 17, 18, 19, 40, 41, 77}
    seqs = [s for s in range(100) if s not in holes]  # seq 0..99: 100 frames, 7 never arrive
    try:
        p.start()
        assert sock.poll(10_000, zmq.POLLIN), "the source never subscribed"
        sock.recv()  # from here no frame is lost to ZeroMQ's slow joiner
        for seq in seqs:
            sock.send_multipart(encode_frame(np.full((120, 160), seq, np.uint8), seq, seq, "gray"))
        done = threading.Event()
        deadline = time.monotonic() + 20
        while not done.is_set() and time.monotonic() < deadline:  # the last frame is never evicted
            done.wait(0.05)
            if any(r.seq == 99 for r in sink.results):
                done.set()
        assert done.is_set(), "the last frame never came through"
    finally:
        counts = p.close()
        sock.close(linger=0)
    assert counts["captured"] == 100, counts
    assert counts["dropped"] >= len(holes) and balanced(counts)
    assert source.describe()["gaps"] == len(holes)


def test_max_gap_is_a_source_option_and_checked():
    assert create_source("zmq:tcp://127.0.0.1:5550,max_gap=5").options.max_gap == 5
    with pytest.raises(ValueError, match="max_gap ≥ 0"):
        create_source("zmq:tcp://127.0.0.1:5550,max_gap=-1")
