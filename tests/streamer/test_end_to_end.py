
"""Real runs over loopback sockets: simulated scanner → ZMQ source → pipeline → ZmqSink → SUB."""

import json
import threading
import time

import pytest
import zmq

from engines.backends import create_backend
from streamer.cli import main
from streamer.config import Config, PublishConfig, SourceConfig
from streamer.metrics import PipelineMetrics
from streamer.pipeline import build_pipeline
from streamer.protocol import (
    DetectionMessage,
    MapMessage,
    StatusMessage,
    decode_message,
    encode_frame,
)
from streamer.sinks.zmq_sink import ZmqSink, bind_publisher
from streamer.sources import create_source
from tests.streamer.conftest import make_screen


def publish_frames(sock, stop: threading.Event, fps: float = 30.0, limit: int = 200):
    screen, _ = make_screen()
    for seq in range(limit):
        if stop.wait(1 / fps):
            return
        sock.send_multipart(encode_frame(screen, seq, time.monotonic_ns()), copy=False)


def collect(sub, seconds: float) -> list:
    out, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        if sub.poll(50):
            out.append(decode_message(sub.recv_multipart()))
    return out


def test_scanner_to_subscriber_over_loopback(random_onnx):
    ctx = zmq.Context.instance()
    scanner = bind_publisher("tcp://127.0.0.1:*")
    frames_at = scanner.getsockopt_string(zmq.LAST_ENDPOINT)
    sink = ZmqSink(endpoint="tcp://127.0.0.1:*", maps=True).open()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(sink.endpoint)
    backend = create_backend("onnxruntime", random_onnx).open()
    cfg = Config(source=SourceConfig(spec=f"zmq:{frames_at}"),
                 publish=PublishConfig(stream="e2e", status_interval_s=0.2))
    pipeline = build_pipeline(cfg, create_source(cfg.source.spec), backend, [sink], PipelineMetrics("e2e"))
    stop = threading.Event()
    feeder = threading.Thread(target=publish_frames, args=(scanner, stop), daemon=True)
    try:
        pipeline.start()
        time.sleep(0.3)  # slow joiner: let both SUB sockets connect
        feeder.start()
        messages = collect(sub, 2.0)
    finally:
        stop.set()
        feeder.join(2)
        counts = pipeline.close()
        scanner.close(linger=0)
        sub.close(linger=0)
    dets = [m for m in messages if isinstance(m, DetectionMessage)]
    maps = [m for m in messages if isinstance(m, MapMessage)]
    statuses = [m for m in messages if isinstance(m, StatusMessage)]
    assert len(dets) >= 10 and maps and statuses
    assert counts["captured"] == counts["processed"] + counts["dropped"] + counts["invalid"]
    d = dets[-1]
    assert d.stream == "e2e" and d.frame_shape == (1080, 1920) and len(d.classes) == 6
    assert d.latency_ms["capture_to_publish"] > 0
    for c in d.classes.values():  # peaks lie in the fan's rectangle on the screen
        assert 455 - 5 <= c.peak[0] <= 455 + 1011 + 5 and 168 - 5 <= c.peak[1] <= 168 + 773 + 5
    # the feeder sends one screen over and over: a frozen image, and a fan never seen moving
    assert d.raw["frozen"] is True and d.raw["doppler"] is False
    fan = d.raw["fan"]
    assert fan["mode"] == "sector" and fan["settled"] is False
    x, y, w, h = fan["rect"]
    assert abs(x - 455) <= 5 and abs(y - 168) <= 5 and abs(w - 1011) <= 5 and abs(h - 773) <= 5
    assert statuses[-1].status["frozen"] is True and statuses[-1].status["fan"]["mode"] == "sector"


def test_cli_run_in_process(random_onnx, capsys, tmp_path):
    record = tmp_path / "results.jsonl"
    code = main(["run", "--model", str(random_onnx), "--source", "sim:realtime=0",
                 "--publish", "tcp://127.0.0.1:*", "--metrics-port", "0", "--max-frames", "20",
                 "--record", str(record)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "captured 20, processed 20, dropped 0, invalid 0" in out
    assert "capture_to_publish" in out and "inference" in out
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    assert [r["seq"] for r in lines] == sorted(r["seq"] for r in lines) and len(lines) == 20
    assert set(lines[0]["classes"]) == {"head", "spine", "thorax", "abdomen", "limbs", "placenta"}
    # a live sweep: the fan found where the screen moves (settled from the second look), never frozen
    assert not any(r["frozen"] or r["doppler"] for r in lines)
    assert lines[0]["fan"]["settled"] is False and lines[-1]["fan"]["settled"] is True


@pytest.mark.parametrize("argv, message", [
    (["--model", "/nonexistent/m.onnx"], "model file not found"),
    (["--source", "bogus:thing"], "unknown source"),
])
def test_cli_bad_input_is_one_line_and_exit_2(random_onnx, capsys, argv, message):
    base = ["run", "--model", str(random_onnx), "--metrics-port", "0", "--publish", "tcp://127.0.0.1:*"]
    assert main(base + argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_cli_busy_metrics_port(random_onnx, capsys):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        code = main(["run", "--model", str(random_onnx), "--metrics-port", str(port),
                     "--publish", "tcp://127.0.0.1:*", "--max-frames", "1"])
    assert code == 2 and str(port) in capsys.readouterr().err


def test_cli_stops_within_a_second_of_sigint(random_onnx, capsys):
    import os
    import signal

    sent = {}

    def interrupt():
        time.sleep(1.5)
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:  # run's handler is in
            sent["t"] = time.monotonic()
            os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    code = main(["run", "--model", str(random_onnx), "--source", "sim:fps=30",
                 "--publish", "tcp://127.0.0.1:*", "--metrics-port", "0", "--duration", "10"])
    assert code == 0 and "t" in sent
    assert time.monotonic() - sent["t"] < 1.0
    out = capsys.readouterr().out
    assert "frames: captured" in out


def test_cli_run_polar_mode_reports_source_pixel_boxes(random_onnx, capsys, tmp_path):
    record = tmp_path / "polar.jsonl"
    code = main(["run", "--model", str(random_onnx), "--source", "sim:realtime=0,seed=2",
                 "--publish", "tcp://127.0.0.1:*", "--metrics-port", "0", "--max-frames", "5",
                 "--representation", "polar", "--record", str(record)])
    assert code == 0, capsys.readouterr().err
    for line in record.read_text().splitlines():
        for c in json.loads(line)["classes"].values():
            x, y = c["peak"]
            assert 0 <= x < 1920 and 0 <= y < 1080  # mapped back from polar to the screen


def test_runtime_path_needs_no_torch():
    """streamer run on ONNX Runtime with the bundled model, torch made unimportable."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['torch'] = None\n"
            "from streamer.cli import main\n"
            "sys.exit(main(['run', '--source', 'sim:realtime=0', '--max-frames', '5',\n"
            "               '--publish', 'tcp://127.0.0.1:*', '--metrics-port', '0']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "processed 5" in done.stdout
