import dataclasses
import json
import time

import numpy as np
import pytest

from streamer.client import DetectionMessage, MapMessage, ResultSubscriber, StatusMessage
from streamer.frames import ClassResult, FrameResult, Timing
from streamer.sinks import REGISTRY, Sink, create_sink, parse_sink_spec, sink_class
from streamer.sinks.zmq_sink import ZmqSink, is_local_endpoint


def result(seq=0, stream="us0", maps=True):
    classes = (ClassResult("head", 0.9, True, (5, 6), (1, 2, 10, 12)),
               ClassResult("spine", 0.2, False, None, None))
    t = time.monotonic_ns()
    m = np.full((2, 4, 5), seq % 256, np.uint8) if maps else None
    return FrameResult(stream, seq, 1000 + seq, (48, 64), classes,
                       Timing(t, t + 1, t + 1, t + 2, t + 3, t + 4), m)


SINK_CASES = {  # kind -> options that work on this machine, and how to see what it published
    "zmq": lambda tmp_path: ({"endpoint": "tcp://127.0.0.1:*"}, None),
    "record": lambda tmp_path: ({"path": str(tmp_path / "r.jsonl"), "status": True},
                                lambda: (tmp_path / "r.jsonl").read_text().count("\n")),
    "view": lambda tmp_path: ({"port": 0}, None),
    "igtl": lambda tmp_path: ({"port": 0}, None),
    "keyframes": lambda tmp_path: ({"path": str(tmp_path / "kf"), "exam": "e"}, None),
}


@pytest.mark.parametrize("kind", sorted(REGISTRY))
def test_every_registered_sink_opens_publishes_and_closes_for_real(kind, tmp_path):
    assert kind in SINK_CASES, f"add a contract case for the {kind!r} sink"
    options, published = SINK_CASES[kind](tmp_path)
    sink = sink_class(kind)(**options)
    assert isinstance(sink, Sink) and sink.kind == kind
    assert dataclasses.is_dataclass(sink.Options) and sink.Options.__dataclass_params__.frozen
    with pytest.raises(RuntimeError, match="not open"):
        sink.publish(result())
    with sink:
        sink.publish(result(0))
        sink.publish(result(1, maps=False))
        sink.publish_status({"stream": "us0", "fps": 30.0})
        assert sink.describe()["kind"] == kind and sink.published == 2
    sink.close()  # closing twice is harmless
    with pytest.raises(RuntimeError, match="not open"):
        sink.publish(result(2))
    if published:
        assert published() == 3  # two results and the status, nothing after close


def test_sink_specs():
    assert parse_sink_spec("zmq") == ("zmq", {})
    assert parse_sink_spec("zmq:tcp://127.0.0.1:6000,maps=1") == (
        "zmq", {"endpoint": "tcp://127.0.0.1:6000", "maps": "1"})
    with pytest.raises(ValueError, match="unknown sink 'kafka'"):
        create_sink("kafka:x")
    with pytest.raises(ValueError, match="unknown option"):
        create_sink("zmq:tcp://127.0.0.1:6000,color=1")
    assert ZmqSink().options.endpoint == "tcp://127.0.0.1:5556"


@pytest.mark.parametrize("endpoint, local", [
    ("tcp://127.0.0.1:5556", True), ("tcp://localhost:1", True), ("tcp://[::1]:1", True),
    ("ipc:///tmp/x", True), ("tcp://*:5556", False), ("tcp://0.0.0.0:5556", False),
    ("tcp://10.0.0.5:5556", False), ("tcp://eth0:5556", False),
    # the prefix test passed these as loopback (#29 item 6): a source-address form whose peer is
    # elsewhere, and host names that merely begin with 127.
    ("tcp://127.0.0.1:0;192.0.2.10:5550", False), ("tcp://127.evil.example:5556", False),
    ("tcp://127.0.0.1.nip.example:5556", False), ("tcp://127.1.2.3:5556", True),
    ("tcp://[::ffff:10.0.0.1]:5556", False), ("tcp://lo:5556", True),
])
def test_loopback_detection(endpoint, local):
    assert is_local_endpoint(endpoint) is local


def test_non_loopback_bind_is_refused_before_any_socket():
    with pytest.raises(ValueError, match=r"refusing to bind tcp://\*:5556: not a loopback"):
        ZmqSink(endpoint="tcp://*:5556").open()


def test_busy_port_is_a_clear_error():
    with ZmqSink(endpoint="tcp://127.0.0.1:*") as first:
        with pytest.raises(ValueError, match=f"address in use: {first.endpoint}"):
            ZmqSink(endpoint=first.endpoint).open()


def wait_connected(sink, sub):
    """Publish status probes until the subscriber sees one (ZMQ's slow joiner); bounded."""
    for _ in range(100):
        sink.publish_status({"probe": True})
        if sub.recv(0.02) is not None:
            while sub.recv(0.02) is not None:
                pass
            return
    raise AssertionError("subscriber never connected")


def test_results_maps_and_status_reach_a_subscriber():
    with ZmqSink(endpoint="tcp://127.0.0.1:*", maps=True) as sink, \
         ResultSubscriber(sink.endpoint, topics=("det", "map", "status")) as sub:
        wait_connected(sink, sub)
        sink.publish(result(7))
        sink.publish_status({"stream": "us0", "fps": 30.0})
        det, maps, status = (sub.recv(1.0) for _ in range(3))
    assert isinstance(det, DetectionMessage) and det.seq == 7 and det.present == ["head"]
    assert det.classes["head"].peak == (5, 6) and det.t_source_ns == 1007
    assert isinstance(maps, MapMessage) and maps.maps.shape == (2, 4, 5) and maps.maps[0, 0, 0] == 7
    assert isinstance(status, StatusMessage) and status.status["fps"] == 30.0
    assert sink.describe()["published"] == 1


def test_maps_only_when_enabled_and_present_and_stream_filter_is_exact():
    with ZmqSink(endpoint="tcp://127.0.0.1:*") as sink, \
         ResultSubscriber(sink.endpoint, stream="us1", topics=("det", "map", "status")) as sub:
        for _ in range(100):
            sink.publish_status({"stream": "us1"})
            if sub.recv(0.02) is not None:
                break
        sink.publish(result(1, stream="us10"))  # prefix of the subscription, another stream
        sink.publish(result(2, stream="us1"))  # maps present but not enabled
        sink.publish(result(3, stream="us1", maps=False))
        got = list(sub.messages(idle_timeout=0.3))
    assert [(type(m).__name__, m.seq) for m in got if not isinstance(m, StatusMessage)] == [
        ("DetectionMessage", 2), ("DetectionMessage", 3)]


def test_publish_never_blocks_without_subscribers():
    with ZmqSink(endpoint="tcp://127.0.0.1:*", maps=True, hwm=1) as sink:
        start = time.monotonic()
        for seq in range(200):
            sink.publish(result(seq))
        assert time.monotonic() - start < 1.0


def test_recording_sink_appends_json_lines(tmp_path):
    path = tmp_path / "rec.jsonl"
    with create_sink(f"record:{path},status=1") as sink:
        sink.publish(result(1))
        sink.publish_status({"fps": 12.5})
        sink.publish(result(2))
    with create_sink(f"record:{path}") as sink:  # appends; status not recorded here
        sink.publish_status({"fps": 1.0})
        sink.publish(result(3))
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["topic"] for line in lines] == ["det.us0", "status.us0", "det.us0", "det.us0"]
    assert [line.get("seq") for line in lines] == [1, None, 2, 3]
    assert lines[0]["classes"]["head"]["box"] == [1, 2, 10, 12] and lines[1]["fps"] == 12.5
    with pytest.raises(ValueError, match="recording directory does not exist"):
        create_sink(f"record:{tmp_path}/no/such/rec.jsonl")
