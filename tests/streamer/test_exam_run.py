"""The exam through a real run: every result says its exam, status says what it has seen, the
metric counts the same seconds, and a control request starts a new exam mid-run."""

from __future__ import annotations

import json

from engines.backends import BackendOptions, create_backend
from engines.defaults import default_onnx
from streamer.cli import main
from streamer.config import Config, PublishConfig
from streamer.control import answer
from streamer.pipeline import build_pipeline
from streamer.sources import create_source
from tests.streamer.conftest import FakeSink


def test_results_status_and_metric_agree_on_the_exam():
    sink = FakeSink()
    config = Config(publish=PublishConfig(endpoint="", exam="scan1", status_interval_s=0.05))
    with create_backend("onnxruntime", default_onnx(), BackendOptions()) as backend:
        pipeline = build_pipeline(config, create_source("sim:realtime=0,frames=90"), backend, [sink])
        coverage = pipeline.streams["main"].stages.publish.coverage
        pipeline.start()
        pipeline.wait(120)
        pipeline.close()
    assert {r.exam for r in sink.results} == {"scan1"} and len(sink.results) == 90
    final = sink.statuses[-1]["exam"]
    assert final["id"] == "scan1" and set(final["regions"]) == set(coverage.classes)
    seen = {name: s.seconds for name, s in coverage.seen.items()}
    assert any(v > 0 for v in seen.values())  # a sweep shows something in 3 s
    registry = pipeline.metrics.registry
    for name, seconds in seen.items():
        counted = registry.get_sample_value("streamer_region_seen_seconds_total",
                                            {"stream": "main", "region": name}) or 0.0
        assert abs(counted - seconds) < 1e-9, name


def test_a_control_request_starts_a_new_exam_mid_run():
    sink = FakeSink()
    config = Config(publish=PublishConfig(endpoint="", exam="first"))
    with create_backend("onnxruntime", default_onnx(), BackendOptions()) as backend:
        pipeline = build_pipeline(config, create_source("sim:realtime=0,frames=60"), backend, [sink])
        coverages = {n: lane.stages.publish.coverage for n, lane in pipeline.streams.items()}
        publish = pipeline.streams["main"].stages.publish
        real = publish.process

        def told_at_30(result):
            if result.seq == 30:  # as streamer exam would, between two results
                assert answer(b'{"v": 1, "cmd": "new_exam", "exam": "second"}', coverages)["ok"]
            real(result)

        publish.process = told_at_30
        pipeline.start()
        pipeline.wait(120)
        pipeline.close()
    exams = [r.exam for r in sorted(sink.results, key=lambda r: r.seq)]
    assert exams == ["first"] * 30 + ["second"] * 30


def test_the_record_says_each_result_s_exam(tmp_path, capsys):
    record = tmp_path / "r.jsonl"
    assert main(["run", "--source", "sim:realtime=0,frames=5", "--publish", "", "--metrics-port",
                 "0", "--record", str(record), "--exam", "bay3-0915"]) == 0
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    assert [r["exam"] for r in lines] == ["bay3-0915"] * 5
    assert main(["run", "--source", "sim:realtime=0,frames=5", "--publish", "", "--metrics-port",
                 "0", "--exam", "../x"]) == 2
    assert "exam id" in capsys.readouterr().err
