"""A remote server restarted (or reloaded) with another model under the same name: the remote
backend describes the model again after every reconnect and, when its contract (classes in
order, activation, input) differs from the stream's, stops inference (frames dropped and counted,
never published under the old class names), says so in status and metrics, and resumes when the
server serves the stream's model again. Servers: in-process Triton-like gRPC servers (restarted on
one port, or reloaded in place) and, for the whole pipeline, the real `streamer serve`."""

from __future__ import annotations

import importlib.util
import time
from concurrent import futures

import numpy as np
import pytest

grpc = pytest.importorskip("grpc")
pytest.importorskip("tritonclient.grpc")
from tritonclient.grpc import service_pb2_grpc as pbg  # noqa: E402

from engines.backends import create_backend  # noqa: E402
from engines.backends.base import BackendUnavailable  # noqa: E402
from engines.backends.remote_backend import ModelChanged  # noqa: E402
from engines.defaults import default_onnx  # noqa: E402
from engines.serving.contract import CONTRACT_PARAMETER, contract_digest  # noqa: E402
from engines.serving.triton_repo import write_triton_repo  # noqa: E402
from streamer.serve_process import free_ports  # noqa: E402
from tests.engines.test_remote_triton import TritonLike  # noqa: E402
from tests.streamer.remote_models import reordered_model, seven_class_model  # noqa: E402

X = np.zeros((1, 1, 224, 224), np.float32)
ORDER = "['head', 'spine', 'thorax', 'abdomen', 'limbs', 'placenta'] → ['spine', 'head'"


class Stamping(TritonLike):
    """As `streamer serve` answers: the contract's digest in the model's parameters and on
    every answer; ``load`` swaps the model in place (a reload, or a restart behind a proxy:
    the client's channel never notices)."""

    def __init__(self, config_path, onnx_path):
        self.load(config_path, onnx_path)

    def load(self, config_path, onnx_path) -> None:
        from engines.model_info import ModelInfo

        super().__init__(config_path, onnx_path)
        self.digest = contract_digest(ModelInfo.from_onnx(onnx_path))
        self.config.parameters[CONTRACT_PARAMETER].string_value = self.digest

    def ModelInfer(self, request, context):
        response = super().ModelInfer(request, context)
        response.parameters[CONTRACT_PARAMETER].string_param = self.digest
        return response


class Server:
    """An in-process server on one loopback port, stopped and started again there."""

    def __init__(self):
        (self.port,) = free_ports(1)
        self.url = f"grpc://127.0.0.1:{self.port}/sonostream"
        self._server, self.servicer = None, None

    def start(self, repo, servicer=TritonLike) -> Server:
        self.servicer = servicer(repo, repo.parent / "1" / "model.onnx")
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        pbg.add_GRPCInferenceServiceServicer_to_server(self.servicer, self._server)
        self._server.add_insecure_port(f"127.0.0.1:{self.port}")
        self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(0).wait(10)
            self._server = None


@pytest.fixture(scope="module")
def repos(tmp_path_factory):
    """Triton repositories: the bundled model, it with two classes swapped, with a 7th class,
    and the bundled model rebuilt (same contract, another precision)."""
    tmp = tmp_path_factory.mktemp("repos")
    out = {"same": write_triton_repo(default_onnx(), tmp / "same"),
           "reordered": write_triton_repo(reordered_model(tmp / "r.onnx"), tmp / "reordered"),
           "seven": write_triton_repo(seven_class_model(tmp / "s.onnx"), tmp / "seven")}
    rebuilt = write_triton_repo(default_onnx(), tmp / "rebuilt")
    rebuilt.write_text(rebuilt.read_text().replace('string_value: "fp32"', 'string_value: "fp16"'))
    out["rebuilt"] = rebuilt
    return out


@pytest.fixture
def server():
    srv = Server()
    yield srv
    srv.stop()


def _open(url: str):
    backend = create_backend("remote", url)
    backend.retry_initial_s, backend.retry_max_s = 0.05, 0.2
    return backend.open()


def _next_outcome(backend, seconds: float = 20.0):
    """Call until the server answers or the backend refuses for a reason other than the link
    being down: the answer (old behaviour) or that exception."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return backend.infer(X)
        except ModelChanged as exc:
            return exc
        except BackendUnavailable:
            assert time.monotonic() < deadline, "the backend never got an answer"
            time.sleep(0.02)


def _wait_for(condition, what: str, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_a_restart_with_classes_in_another_order_stops_inference_until_the_model_returns(
        repos, server):
    backend = _open(server.start(repos["same"]).url)
    try:
        assert backend.infer(X).scores.shape == (1, 6)
        server.stop()
        server.start(repos["reordered"])
        outcome = _next_outcome(backend)
        assert isinstance(outcome, ModelChanged), "an answer was labelled with the old names"
        assert ORDER in str(outcome) and "inference stopped" in str(outcome)
        assert not backend.up and backend.model_changed
        contract = backend.describe()["contract"]
        assert contract["state"] == "changed" and ORDER in contract["error"]
        for _ in range(3):  # every later call too, never an answer
            with pytest.raises(ModelChanged):
                backend.infer(X)
        server.stop()
        server.start(repos["same"])  # the stream's model is back: inference resumes
        _wait_for(lambda: not isinstance(_next_outcome(backend), Exception), "results again")
        assert backend.up and backend.describe()["contract"]["state"] == "same"
    finally:
        backend.close()


def test_a_seventh_class_stops_inference_with_the_new_class_named(repos, server):
    backend = _open(server.start(repos["same"]).url)
    try:
        backend.infer(X)
        server.stop()
        server.start(repos["seven"])
        outcome = _next_outcome(backend)
        assert isinstance(outcome, ModelChanged), outcome  # not a BackendError per frame
        assert "'placenta', 'cervix']" in str(outcome)
    finally:
        backend.close()


def test_a_restart_while_no_call_was_made_is_seen_by_the_channel(repos, server):
    backend = _open(server.start(repos["same"]).url)
    try:
        backend.infer(X)
        server.stop()  # no call fails: only the channel sees its server go
        _wait_for(lambda: backend.describe()["contract"]["state"] == "recheck", "the channel")
        server.start(repos["reordered"])
        assert isinstance(_next_outcome(backend), ModelChanged)
        assert backend.describe()["link"]["failures"] == 0
    finally:
        backend.close()


def test_a_model_swapped_under_a_live_channel_is_caught_by_the_answer_stamp(repos, server):
    backend = _open(server.start(repos["same"], servicer=Stamping).url)
    try:
        assert backend.infer(X).scores.shape == (1, 6)
        reordered = repos["reordered"]
        server.servicer.load(reordered, reordered.parent / "1" / "model.onnx")
        with pytest.raises(ModelChanged, match=r"classes \['head', 'spine'"):
            backend.infer(X)  # the answer came back, stamped by another contract: discarded
        assert backend.describe()["link"]["failures"] == 0  # no reconnect was seen
    finally:
        backend.close()


def test_a_rebuilt_model_with_the_same_contract_carries_on(repos, server):
    backend = _open(server.start(repos["same"]).url)
    try:
        before = backend.infer(X).scores
        server.stop()
        server.start(repos["rebuilt"])
        after = _next_outcome(backend)
        assert not isinstance(after, Exception), after
        np.testing.assert_allclose(after.scores, before, atol=1e-5)
        contract = backend.describe()["contract"]
        assert backend.up and contract["state"] != "changed" and contract["checks"] >= 1
    finally:
        backend.close()


@pytest.mark.skipif(importlib.util.find_spec("mlserver") is None,
                    reason="mlserver is not installed (pip install 'sonostream[serve]')")
def test_streamer_serve_restarted_with_reordered_classes_under_a_live_pipeline(tmp_path):
    """The issue's case end to end: kill -9 `streamer serve`, start it on the same ports with
    the classes in another order. Not one result is published after that; the frames are
    dropped and counted; status, streamer_backend_up and streamer_backend_model_changed say so."""
    from streamer.config import Config, InferenceConfig, PublishConfig
    from streamer.metrics import PipelineMetrics
    from streamer.pipeline import build_pipeline
    from streamer.serve_process import ServeProcess
    from streamer.sources import create_source
    from tests.streamer.conftest import FakeSink

    with ServeProcess("--threads", "1", log=tmp_path / "serve.log") as srv:
        backend = create_backend("remote", f"{srv.url}/sonostream").open()
        backend.retry_initial_s, backend.retry_max_s = 0.1, 0.5
        cfg = Config(publish=PublishConfig(stream="k", status_interval_s=0.1),
                     model=InferenceConfig(backend="remote", server=srv.url))
        sink, metrics = FakeSink(), PipelineMetrics("k")
        pipeline = build_pipeline(cfg, create_source("sim:fps=30"), backend, [sink], metrics)

        def gauge(name):
            return metrics.registry.get_sample_value(name, {"stream": "k"})

        try:
            pipeline.start()
            _wait_for(lambda: len(sink.results) >= 5, "first results", 30)
            srv.kill()
            _wait_for(lambda: pipeline.status()["backend"]["link"]["state"] == "down", "down")
            seen = len(sink.results)
            srv.args += ["--model", str(reordered_model(tmp_path / "reordered.onnx"))]
            srv.start()
            _wait_for(lambda: pipeline.status()["backend"].get("contract", {}).get("state")
                      == "changed" or len(sink.results) > seen + 5, "the new server's model", 30)
            dropped = pipeline.status()["dropped"]
            _wait_for(lambda: pipeline.status()["dropped"] > dropped + 10, "frames counted", 20)
            assert len(sink.results) == seen, "results published under the old class names"
            _wait_for(lambda: gauge("streamer_backend_model_changed") == 1.0, "the gauge", 5)
            assert gauge("streamer_backend_up") == 0.0
            assert any(s["backend"]["contract"]["state"] == "changed" for s in sink.statuses)
        finally:
            counts = pipeline.close()
    assert counts["captured"] == counts["processed"] + counts["dropped"] + counts["invalid"]
    assert counts["invalid"] == 0 and counts["processed"] == seen
