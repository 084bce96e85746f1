"""`streamer serve` and `--backend remote` as a user meets them: a missing extra is one line
naming it, a port in use is one line, and Ctrl-C stops the server with one line, exit 0 and no
traceback, also after a client gave up on a request in the batcher. The servers run in child
processes on free loopback ports (mlserver is never imported here: it and tritonclient register
the same protobuf symbols)."""

from __future__ import annotations

import builtins
import importlib.util
import socket
import sys
import threading

import numpy as np
import pytest

from streamer.cli import main
from streamer.serve_process import ServeProcess, free_ports

needs_mlserver = pytest.mark.skipif(importlib.util.find_spec("mlserver") is None,
                                    reason="mlserver is not installed (pip install -e '.[serve]')")


def _without(monkeypatch, package: str) -> None:
    """Imports of ``package`` fail as they do where it is not installed."""
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == package or name.startswith(package + "."):
            raise ModuleNotFoundError(f"No module named {package!r}", name=package)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)


def test_remote_backend_without_its_extra_says_which_to_install(monkeypatch, capsys):
    _without(monkeypatch, "tritonclient")
    rc = main(["run", "--backend", "remote", "--server", "grpc://127.0.0.1:1", "--max-frames", "1",
               "--publish", "", "--metrics-port", "0"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1, err
    assert "pip install 'sonostream[remote]'" in err and "pip install -e '.[remote]'" in err
    assert "tritonclient" in err and "Traceback" not in err


def test_remote_backend_opened_without_its_extra_raises_the_hint(monkeypatch):
    from engines.backends import BackendError, create_backend

    _without(monkeypatch, "tritonclient")
    backend = create_backend("remote", "grpc://127.0.0.1:1/sonostream")
    with pytest.raises(BackendError, match=r"sonostream\[remote\]"):
        backend.open()


def test_serve_without_mlserver_says_which_extra_to_install(monkeypatch, capsys):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "mlserver" else real_find_spec(name, *a))
    assert main(["serve"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "pip install 'sonostream[serve]'" in err and "pip install -e '.[serve]'" in err


@needs_mlserver
def test_serve_on_a_port_in_use_is_one_line(capsys):
    grpc_port, metrics_port = free_ports(2)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        http_port = taken.getsockname()[1]
        rc = main(["serve", "--grpc-port", str(grpc_port), "--http-port", str(http_port),
                   "--metrics-port", str(metrics_port)])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and f"--http-port {http_port}" in err, err
    assert "mlserver" not in sys.modules  # refused before any server library loads


def _after(log: str, mark: int) -> list[str]:
    return [line for line in log[mark:].splitlines() if line.strip()]


@needs_mlserver
def test_ctrl_c_stops_serve_with_one_line_and_exit_0(tmp_path):
    srv = ServeProcess("--threads", "1", log=tmp_path / "serve.log")
    try:
        srv.start(timeout=90)  # polls the model's readiness, bounded
        mark = len(srv.log())
        rc = srv.interrupt(timeout=30)
    finally:
        srv.kill()
    log = srv.log()
    assert rc == 0, log
    assert "Traceback" not in log, log
    assert _after(log, mark) == ["streamer serve: SIGINT received, stopping"], log


@needs_mlserver
def test_a_client_giving_up_in_the_batcher_leaves_no_traceback(tmp_path):
    """A request cancelled by its client (deadline) while it waits in the batcher: the other
    request of that batch still gets its answer, and nothing is printed as a traceback (MLServer's
    own batcher raised KeyError in an event-loop callback and left the batch unanswered)."""
    pytest.importorskip("tritonclient.grpc")
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    # a batch waits 2 s for more requests: the impatient one gives up while it is queued
    srv = ServeProcess("--threads", "1", "--max-batch", "16", "--max-queue-delay-ms", "2000",
                       log=tmp_path / "serve.log")
    outcome: dict[str, object] = {}

    def call(key: str, timeout: float) -> None:
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{srv.grpc_port}")
        frames = grpcclient.InferInput("frames", [1, 1, 224, 224], "UINT8")
        frames.set_data_from_numpy(np.zeros((1, 1, 224, 224), np.uint8))
        try:
            result = client.infer("sonostream", [frames], client_timeout=timeout)
            outcome[key] = result.as_numpy("scores").shape
        except InferenceServerException as exc:
            outcome[key] = str(exc.status())
        finally:
            client.close()

    try:
        srv.start(timeout=90)
        callers = [threading.Thread(target=call, args=("impatient", 0.3)),
                   threading.Thread(target=call, args=("patient", 20.0))]
        for t in callers:
            t.start()
        for t in callers:
            t.join(30)
        assert not any(t.is_alive() for t in callers)
        assert "DEADLINE_EXCEEDED" in str(outcome["impatient"])
        assert outcome["patient"] == (1, 6), outcome  # answered: its batch was not abandoned
        rc = srv.interrupt(timeout=30)
    finally:
        srv.kill()
    log = srv.log()
    assert rc == 0, log
    assert "Traceback" not in log and "KeyError" not in log, log


def test_serve_off_loopback_needs_allow_remote_and_insecure(capsys, tmp_path):
    """MLServer has no TLS: a non-loopback --host is plaintext patient data on the network, so it
    is refused in one line (before the model or a server library is touched) unless asked for."""
    for flags in ([], ["--allow-remote"], ["--insecure"]):
        rc = main(["serve", "--host", "0.0.0.0", *flags, "--model", str(tmp_path / "m.onnx")])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and len(err.splitlines()) == 1, err
        assert "refusing --host 0.0.0.0" in err and "TLS terminator" in err, err
        assert "--allow-remote --insecure" in err
    rc = main(["serve", "--host", "0.0.0.0", "--allow-remote", "--insecure",
               "--model", str(tmp_path / "m.onnx")])
    err = capsys.readouterr().err
    assert rc == 2 and "model file not found" in err and "INSECURE" in err
    assert "mlserver" not in sys.modules
