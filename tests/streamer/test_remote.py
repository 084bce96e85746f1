"""Real server, real protocol: `streamer serve` (MLServer) in a child process on loopback ports,
streamers talking v2 gRPC to it with the remote backend. mlserver is never imported here: it and
tritonclient register the same protobuf symbols."""

import importlib.util
import json
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

pytest.importorskip("tritonclient.grpc")
if importlib.util.find_spec("mlserver") is None:
    pytest.skip("mlserver is not installed (pip install 'sonostream[serve]')", allow_module_level=True)

from engines.backends import BackendError, create_backend  # noqa: E402
from engines.backends.base import BackendUnavailable  # noqa: E402
from engines.backends.remote_backend import RemoteBackend  # noqa: E402
from engines.backends.remote_target import parse_target, remote_target  # noqa: E402
from engines.defaults import default_onnx  # noqa: E402
from streamer.cli import main  # noqa: E402
from streamer.config import Config, InferenceConfig, PublishConfig  # noqa: E402
from streamer.metrics import PipelineMetrics  # noqa: E402
from streamer.pipeline import build_pipeline  # noqa: E402
from streamer.serve_process import ServeProcess, free_ports  # noqa: E402
from streamer.sources import create_source  # noqa: E402
from tests.streamer.conftest import FakeSink  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with ServeProcess("--max-batch", "8", "--max-queue-delay-ms", "5", "--threads", "1",
                      log=log) as s:
        yield s


def _run_args(server, stream: str, record, frames: int = 15) -> list[str]:
    return ["run", "--backend", "remote", "--server", server.url, "--source", "sim:fps=30",
            "--max-frames", str(frames), "--publish", "", "--metrics-port", "0",
            "--stream", stream, "--record", str(record)]


def test_two_streamers_share_one_server(server, tmp_path):
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{server.http_port}/v2/health/ready") as r:
        assert r.status == 200
    records = {s: tmp_path / f"{s}.jsonl" for s in ("left", "right")}
    before = server.batch_sizes()
    procs = [subprocess.Popen([sys.executable, "-m", "streamer", *_run_args(server, s, r)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for s, r in records.items()]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    for p, out in zip(procs, outs, strict=True):
        assert p.returncode == 0, out
    for stream, path in records.items():
        results = [json.loads(line) for line in path.read_text().splitlines()]
        assert len(results) >= 15
        assert {r["stream"] for r in results} == {stream}
        classes = results[-1]["classes"]
        assert set(classes) == {"head", "spine", "thorax", "abdomen", "limbs", "placenta"}
        assert all(0.0 <= c["score"] <= 1.0 for c in classes.values())
    after = server.batch_sizes()
    frames = after["sum"] - before.get("sum", 0)
    assert frames >= 30  # every frame of both streamers went through the server's model
    assert 0 < after["count"] - before.get("count", 0) <= frames  # in batches of one or more


def test_remote_scores_match_in_process_and_concurrent_clients_are_batched(server):
    local = create_backend("onnxruntime", default_onnx()).open()
    frames = np.random.default_rng(0).integers(0, 256, (4, 1, 1, 224, 224)).astype(np.float32) / 255
    clients = [create_backend("remote", f"{server.url}/sonostream").open() for _ in range(4)]
    before = server.batch_sizes()
    errors, calls = [], 20

    def hammer(client, x):
        try:
            for _ in range(calls):
                out = client.infer(x)
            expected = local.infer(x)
            np.testing.assert_allclose(out.scores, expected.scores, atol=1e-4)
            np.testing.assert_allclose(out.maps, expected.maps, atol=1e-4)
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(c, f)) for c, f in zip(clients, frames, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for c in clients:
        c.close()
    assert not errors, errors
    after = server.batch_sizes()
    assert after["sum"] - before["sum"] == 4 * calls  # frames, whatever the batches
    batches = after["count"] - before["count"]
    singles = after["le=1.0"] - before["le=1.0"]
    assert batches < 4 * calls and singles < batches  # some calls carried several clients' frames


def test_wrong_model_name_is_one_line_and_exit_2(server, capsys, tmp_path):
    rc = main([*_run_args(server, "x", tmp_path / "x.jsonl"), "--remote-model", "nope"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and "no model 'nope'" in err and server.url in err


def test_a_server_that_stops_answering_times_out_and_backs_off(server):
    """SIGSTOP: the server holds the connection but never answers; each call ends at the timeout
    (never a hang), the link goes down, calls in the backoff fail at once, SIGCONT recovers."""
    import signal

    backend = create_backend("remote", f"{server.url}/sonostream").open()
    backend.timeout_s, backend.retry_initial_s = 0.5, 0.3
    x = np.zeros((1, 1, 224, 224), np.float32)
    server.proc.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(BackendUnavailable, match="DEADLINE_EXCEEDED"):
            backend.infer(x)
        assert time.monotonic() - started < 2.0
        assert not backend.up and backend.describe()["link"]["failures"] == 1
        with pytest.raises(BackendUnavailable, match="next try in"):
            backend.infer(x)  # inside the backoff: refused without touching the network
        link = backend.describe()["link"]
        assert link["skipped"] == 1 and link["failures"] == 1  # no second call went out
    finally:
        server.proc.send_signal(signal.SIGCONT)
    time.sleep(0.35)
    deadline = time.monotonic() + 10
    while True:
        try:
            backend.infer(x)
            break
        except BackendUnavailable:
            assert time.monotonic() < deadline, "no recovery after SIGCONT"
            time.sleep(0.1)
    assert backend.up and backend.describe()["link"]["skipped"] >= 1
    backend.close()


def test_serve_refuses_bad_input_in_one_line(capsys, tmp_path):
    assert main(["serve", "--model", str(tmp_path / "missing.onnx")]) == 2
    assert main(["serve", "--grpc-port", "9000", "--http-port", "9000"]) == 2
    import onnx

    model = onnx.load(str(default_onnx()))
    del model.metadata_props[:]
    onnx.save(model, str(tmp_path / "plain.onnx"))
    assert main(["serve", "--model", str(tmp_path / "plain.onnx")]) == 2
    assert main(["run", "--backend", "remote", "--server", "http://gpu:8000"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and "model file not found" in err[0] and "different" in err[1]
    assert "not a sonostream model" in err[2] and "grpc://HOST:PORT" in err[3]
    assert "mlserver" not in sys.modules  # validation loads no server library


def test_server_not_there_at_start_is_a_clear_error_quickly():
    (port,) = free_ports(1)
    backend = RemoteBackend(f"grpc://127.0.0.1:{port}/sonostream")
    backend.connect_wait_s = 0.5
    started = time.monotonic()
    with pytest.raises(BackendError, match="cannot reach the inference server"):
        backend.open()
    assert time.monotonic() - started < 5


def test_server_killed_mid_run_is_reported_and_recovered(tmp_path):
    """Kill -9 the server under a live stream: frames are dropped and counted, status and metrics
    say the backend is down, retries back off, and results resume when the server returns."""
    with ServeProcess("--threads", "1", log=tmp_path / "serve.log") as srv:
        backend = create_backend("remote", f"{srv.url}/sonostream").open()
        backend.retry_initial_s, backend.retry_max_s = 0.1, 0.5
        cfg = Config(publish=PublishConfig(stream="k", status_interval_s=0.1),
                     model=InferenceConfig(backend="remote", server=srv.url))
        sink, metrics = FakeSink(), PipelineMetrics("k")
        pipeline = build_pipeline(cfg, create_source("sim:fps=30"), backend, [sink], metrics)

        def wait_for(condition, seconds, what):
            deadline = time.monotonic() + seconds
            while not condition():
                assert time.monotonic() < deadline, f"timed out waiting for {what}"
                time.sleep(0.05)

        def backend_up():
            return metrics.registry.get_sample_value("streamer_backend_up", {"stream": "k"})

        try:
            pipeline.start()
            wait_for(lambda: len(sink.results) >= 5, 20, "first results")
            srv.kill()
            wait_for(lambda: backend_up() == 0.0, 10, "streamer_backend_up 0")
            down = pipeline.status()
            assert down["backend"]["link"]["state"] == "down"
            assert "UNAVAILABLE" in down["backend"]["link"]["error"]
            wait_for(lambda: pipeline.status()["dropped"] > down["dropped"] + 3, 10, "drops")
            assert any(s["backend"]["link"]["state"] == "down" for s in sink.statuses)
            seen = len(sink.results)
            srv.start()
            wait_for(lambda: len(sink.results) > seen + 5, 30, "results after the restart")
            wait_for(lambda: backend_up() == 1.0, 5, "streamer_backend_up 1")
            link = pipeline.status()["backend"]["link"]
            assert link["state"] == "up" and link["retries"] >= 1 and link["failures"] >= 1
        finally:
            counts = pipeline.close()
    assert counts["captured"] == counts["processed"] + counts["dropped"] + counts["invalid"]
    assert counts["invalid"] == 0  # an unreachable server drops frames; it does not blame them


def test_run_without_remote_imports_no_serving_library(tmp_path):
    code = ("import sys; from streamer.cli import main; "
            "rc = main(['run', '--max-frames', '3', '--publish', '', '--metrics-port', '0']); "
            "print(rc, sorted(m for m in ('tritonclient', 'mlserver', 'grpc') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "0 []", out.stdout + out.stderr


def test_targets_and_config():
    assert parse_target("grpc://gpu-1:9001/fetal") == ("gpu-1:9001", "fetal")
    assert parse_target("grpc://10.0.0.5") == ("10.0.0.5:8001", "sonostream")
    assert remote_target("grpc://h:1", "m") == "grpc://h:1/m"
    assert parse_target("grpcs://gpu-1/fetal") == ("gpu-1:443", "fetal")  # TLS: 443 by default
    assert remote_target("grpcs://h:1", "m") == "grpcs://h:1/m"
    for bad in ("http://h:8000", "h:8001", "grpc://h:notaport"):
        with pytest.raises(BackendError, match="grpc://HOST:PORT|bad port"):
            parse_target(bad)
    with pytest.raises(ValueError, match="needs server"):
        InferenceConfig(backend="remote")
