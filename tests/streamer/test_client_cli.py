import json
import re
import socket
import threading
import time

import numpy as np
import pytest

from streamer.cli import main
from streamer.client import ResultSubscriber
from streamer.frames import ClassResult, Frame, FrameResult, SourceEnded, Timing
from streamer.sinks.zmq_sink import ZmqSink
from streamer.sources import open_source

SMALL = ["--width", "160", "--height", "120", "--quiet"]


def free_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def in_thread(argv):
    """Run ``streamer argv`` in a thread; returns (thread, box) with box["rc"] once done."""
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("rc", main(argv)), daemon=True)
    thread.start()
    return thread, box


def fake_result(frame, stream="us0") -> FrameResult:
    """What the pipeline would make of a frame; here without a model."""
    now = time.monotonic_ns()
    h, w = frame.image.shape[:2]
    classes = (ClassResult("head", 0.875, True, (w // 2, h // 2), (0, 0, w // 2, h // 2)),
               ClassResult("spine", 0.125, False, None, None))
    timing = Timing(frame.t_capture_ns, now, now, now, now, time.monotonic_ns())
    return FrameResult(stream, frame.seq, frame.t_source_ns, (h, w), classes, timing)


def test_simulate_to_tap_round_trip(capsys):
    """simulate → zmq source → (stand-in for the pipeline) → zmq sink → tap."""
    frames_in = free_endpoint()
    sim, sim_box = in_thread(["simulate", "--publish", frames_in, "--fps", "200",
                              "--frames", "200", *SMALL])
    with ZmqSink(endpoint="tcp://127.0.0.1:*") as sink, open_source(f"zmq:{frames_in}") as src:
        tap, tap_box = in_thread(["tap", "--connect", sink.endpoint, "--count", "3",
                                  "--timeout", "5"])
        deadline = time.monotonic() + 10
        first = None
        while tap.is_alive() and time.monotonic() < deadline:
            frame = src.read(0.1)
            if frame is not None:
                first = first or frame
                sink.publish(fake_result(frame))
        tap.join(1)
    sim.join(6)
    assert tap_box.get("rc") == 0 and sim_box.get("rc") == 0
    assert first.image.shape == (120, 160, 3) and first.t_source_ns > 0
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("us0 #")]
    assert len(lines) == 3
    assert "head 0.88" in lines[0] and "spine" not in lines[0] and " ms (inference" in lines[0]


def test_simulate_jpeg_frames_decode():
    endpoint = free_endpoint()
    sim, _ = in_thread(["simulate", "--publish", endpoint, "--fps", "100", "--frames", "60",
                        "--fmt", "jpeg", *SMALL])
    with open_source(f"zmq:{endpoint},timeout=5") as src:
        deadline = time.monotonic() + 5
        frame = None
        while frame is None and time.monotonic() < deadline:
            frame = src.read(0.1)
    sim.join(5)
    assert frame is not None and frame.image.shape == (120, 160, 3)


def test_tap_json_status_and_idle_timeout(capsys):
    with ZmqSink(endpoint="tcp://127.0.0.1:*") as sink:
        tap, box = in_thread(["tap", "--connect", sink.endpoint, "--json", "--status",
                              "--count", "1", "--timeout", "3"])
        for _ in range(200):  # until the tap has joined and printed a status
            sink.publish_status({"stream": "us0", "fps": 9.5})
            time.sleep(0.01)
            if "9.5" in capsys.readouterr().out:
                break
        else:
            raise AssertionError("tap never saw a status")
        sink.publish(fake_result(Frame(seq=3, image=np.zeros((4, 6, 3), np.uint8), t_source_ns=77)))
        tap.join(3)
    assert box.get("rc") == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    det = [d for d in out if "classes" in d][0]
    assert det["seq"] == 3 and det["t_source_ns"] == 77 and det["classes"]["head"]["present"]
    with ZmqSink(endpoint="tcp://127.0.0.1:*") as sink:
        assert main(["tap", "--connect", sink.endpoint, "--timeout", "0.2"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("streamer tap: error: no message from"), err


@pytest.mark.parametrize("argv, message", [
    (["simulate", "--publish", "tcp://0.0.0.0:5550"], "refusing to bind"),
    (["simulate", "--fps", "0"], "--fps must be > 0"),
    (["tap", "--stream", "a.b", "--timeout", "0.1"], "stream name"),
    (["tap", "--count", "-1"], "--count must be"),
])
def test_bad_cli_input_is_one_line_exit_2(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_simulate_busy_port_exit_2(capsys):
    with ZmqSink(endpoint="tcp://127.0.0.1:*") as sink:
        assert main(["simulate", "--publish", sink.endpoint, "--frames", "1", *SMALL]) == 2
    assert f"address in use: {sink.endpoint}" in capsys.readouterr().err


def test_subscriber_iterates_and_rejects_bad_topics():
    with pytest.raises(ValueError, match="topics must be among"):
        ResultSubscriber("tcp://127.0.0.1:1", topics=("frames",))
    with ZmqSink(endpoint="tcp://127.0.0.1:*") as sink, ResultSubscriber(sink.endpoint) as sub:
        assert sub.recv(0.05) is None
        assert list(sub.messages(idle_timeout=0.05)) == []


def test_sim_source_spec_with_the_real_simulator():
    with open_source("sim:width=160,height=120,realtime=0,frames=2,seed=1") as src:
        frames = [src.read(5.0), src.read(5.0)]
        with pytest.raises(SourceEnded):
            src.read(1.0)
    assert [f.seq for f in frames] == [0, 1] and frames[1].image.shape == (120, 160, 3)


def test_a_log_line_clears_the_live_status_line_first(capsys):
    """On a terminal the status line is rewritten in place with \\r; a log record first blanks
    it, so the two never run together."""
    import logging

    from streamer.cli.run_cmd import _ClearStatusLine

    record = logging.LogRecord("streamer", logging.INFO, __file__, 1, "fan found", None, None)
    assert _ClearStatusLine().filter(record) is True
    err = capsys.readouterr().err
    assert err.startswith("\r") and err.endswith("\r") and err.strip() == ""


@pytest.mark.parametrize("argv", [
    ["tap", "--connect", "127.0.0.1:5556", "--timeout", "0.1"],
    ["tap", "--connect", "127.0.0.1:5556", "--timeout", "0.1", "--insecure"],
    ["view", "--connect", "127.0.0.1:5556", "--duration", "0.1"],
    ["view", "--connect", "127.0.0.1:5556", "--duration", "0.1", "--insecure"],
    ["view", "--connect", "127.0.0.1:5556", "--duration", "0.1", "--host", "0.0.0.0"],
    ["simulate", "--publish", "127.0.0.1:5556", "--frames", "1"],
])
def test_an_endpoint_without_a_scheme_says_so(capsys, argv):
    """Not "refusing plaintext ... --insecure", nor a bare "Invalid argument" with it."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"streamer {argv[0]}: error: endpoint '127.0.0.1:5556' has no scheme: "
                   "use tcp://127.0.0.1:5556"), err


@pytest.mark.parametrize("endpoint, message", [
    ("127.0.0.1:5556", "endpoint '127.0.0.1:5556' has no scheme: use tcp://127.0.0.1:5556"),
    ("localhost:5556", "has no scheme: use tcp://localhost:5556"),
    ("scanner-pc:5556", "has no scheme: use tcp://scanner-pc:5556"),
    ("http://127.0.0.1:5556", "endpoint 'http://127.0.0.1:5556' must be tcp://, ipc:// or inproc://"),
])
def test_subscriber_names_a_missing_or_wrong_scheme_before_keys(endpoint, message):
    from streamer.errors import UserError

    for kwargs in ({}, {"insecure": True}, {"server_key": "/no/such.key"}):
        with pytest.raises(UserError, match=re.escape(message)):
            ResultSubscriber(endpoint, **kwargs)
