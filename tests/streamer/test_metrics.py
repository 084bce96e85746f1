import socket
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streamer.frames import STAGES, Timing
from streamer.metrics import LATENCY_BUCKETS, LatencyRecord, MetricsServer, PipelineMetrics


def scrape(port: int) -> dict:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_names_and_labels_as_design_says():
    m = PipelineMetrics("us0")
    m.count("captured", 3)
    m.count("processed", 2)
    m.count("dropped")
    m.observe(Timing(capture=0, preprocess_end=1_000_000, inference_start=1_000_000,
                     inference_end=6_000_000, postprocess_end=7_000_000, publish=7_500_000))
    m.set_fps(29.5)
    m.set_queue_depth("input", 1)
    m.set_source_up(True)
    m.set_model("m.onnx", "onnxruntime", "fp32")
    server = MetricsServer(m.registry, 0).start()
    try:
        families = scrape(server.port)
    finally:
        server.stop()
    frames = {s.labels["outcome"]: s.value for s in families["streamer_frames"].samples
              if s.name == "streamer_frames_total"}
    assert frames == {"captured": 3, "processed": 2, "dropped": 1, "invalid": 0}
    lat = families["streamer_latency_seconds"]
    assert lat.type == "histogram"
    stages = {s.labels["stage"] for s in lat.samples if s.name.endswith("_count")}
    assert stages == set(STAGES)
    infer = [s for s in lat.samples if s.name.endswith("_sum") and s.labels["stage"] == "inference"]
    assert infer[0].value == pytest.approx(0.005) and infer[0].labels["stream"] == "us0"
    assert families["streamer_fps"].samples[0].value == 29.5
    assert families["streamer_queue_depth"].samples[0].labels == {"stream": "us0", "queue": "input"}
    assert families["streamer_source_up"].samples[0].value == 1
    info = families["streamer_model_info"].samples[0].labels
    assert info == {"model": "m.onnx", "backend": "onnxruntime", "precision": "fp32"}
    assert LATENCY_BUCKETS[0] <= 0.00025 and LATENCY_BUCKETS[-1] >= 1.0


def test_registries_are_separate():
    a, b = PipelineMetrics("a"), PipelineMetrics("a")
    a.count("captured")
    assert b.registry.get_sample_value("streamer_frames_total",
                                       {"stream": "a", "outcome": "captured"}) == 0


def test_busy_port_names_the_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(ValueError, match=str(port)):
            MetricsServer(PipelineMetrics("x").registry, port).start()


def test_latency_record_percentiles():
    rec = LatencyRecord()
    for ms in range(1, 101):
        rec.add(Timing(capture=0, publish=ms * 1_000_000, postprocess_end=0))
    row = rec.summary_ms()["capture_to_publish"]
    assert row["p50"] == pytest.approx(50.5) and row["max"] == pytest.approx(100) and row["count"] == 100
    assert rec.recent_ms(99) == pytest.approx(99.01)
