"""TLS on the remote link: grpcs:// with a CA and a client certificate (mutual TLS), against an
in-process gRPC server with TLS and, end to end, against Debian's nginx terminating TLS in front
of the real `streamer serve` (grpc_pass); the wrong CA and a missing client certificate are one
clear line; plaintext to a non-loopback server needs --insecure. Certificates are made at test
time with the openssl CLI."""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil
import socket
import subprocess
import sys
import time
from concurrent import futures

import numpy as np
import pytest

grpc = pytest.importorskip("grpc")
pytest.importorskip("tritonclient.grpc")
from tritonclient.grpc import service_pb2_grpc as pbg  # noqa: E402

from engines.backends import BackendError, create_backend  # noqa: E402
from engines.backends.remote_backend import ModelChanged, RemoteBackend  # noqa: E402
from engines.defaults import default_onnx  # noqa: E402
from engines.serving.triton_repo import write_triton_repo  # noqa: E402
from streamer.cli import main  # noqa: E402
from streamer.serve_process import ServeProcess, free_ports  # noqa: E402
from tests.engines.test_remote_triton import TritonLike  # noqa: E402
from tests.streamer.remote_certs import make_certs  # noqa: E402
from tests.streamer.remote_models import reordered_model  # noqa: E402

X = np.zeros((1, 1, 224, 224), np.float32)
RUN = ["run", "--backend", "remote", "--max-frames", "1", "--publish", "", "--metrics-port", "0"]


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("certs"))


def _mtls(certs, ca=None) -> dict:
    return dict(tls_ca=str(ca or certs.ca), tls_cert=str(certs.client_cert),
                tls_key=str(certs.client_key))


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


# -- flags and the plaintext rule (no server) ------------------------------------------------
def test_plaintext_to_a_remote_server_needs_insecure(capsys, monkeypatch, caplog):
    server = "grpc://192.0.2.1:8001"  # TEST-NET-1: not loopback, never routed
    assert main([*RUN, "--server", server]) == 2
    err = _one_line_error(capsys)
    assert f"refusing plaintext gRPC to {server}" in err and "--insecure" in err
    assert "grpcs://" in err
    # with --insecure it is attempted (and warned about); here nobody answers
    monkeypatch.setattr(RemoteBackend, "connect_wait_s", 0.1)
    with caplog.at_level(logging.WARNING):
        assert main([*RUN, "--server", server, "--insecure"]) == 2
    assert "cannot reach the inference server at grpc://192.0.2.1:8001" in _one_line_error(capsys)
    assert any("INSECURE" in r.getMessage() for r in caplog.records)


def test_tls_flags_are_checked_in_one_line(certs, capsys, tmp_path):
    tls = ["--server", "grpcs://127.0.0.1:1"]
    not_pem = tmp_path / "ca.txt"
    not_pem.write_text("not a certificate")
    cases = [
        (["--server", "grpc://127.0.0.1:1", "--tls-ca", str(certs.ca)], "need a grpcs:// server"),
        ([*tls, "--tls-cert", str(certs.client_cert)], "needs both --tls-cert"),
        ([*tls, "--tls-ca", str(tmp_path / "missing.pem")], f"--tls-ca {tmp_path / 'missing.pem'}"),
        ([*tls, "--tls-ca", str(not_pem)], "is not a PEM file"),
    ]
    for flags, expected in cases:
        assert main([*RUN, *flags]) == 2, flags
        assert expected in _one_line_error(capsys)


# -- an in-process gRPC server with TLS that requires a client certificate -------------------
@pytest.fixture(scope="module")
def tls_server(certs, tmp_path_factory):
    repo = write_triton_repo(default_onnx(), tmp_path_factory.mktemp("repo"))
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    pbg.add_GRPCInferenceServiceServicer_to_server(
        TritonLike(repo, repo.parent / "1" / "model.onnx"), server)
    creds = grpc.ssl_server_credentials(
        [(certs.server_key.read_bytes(), certs.server_cert.read_bytes())],
        root_certificates=certs.ca.read_bytes(), require_client_auth=True)
    port = server.add_secure_port("127.0.0.1:0", creds)
    server.start()
    yield f"grpcs://127.0.0.1:{port}/sonostream"
    server.stop(0)


def test_mutual_tls_gives_the_same_scores_as_the_local_model(certs, tls_server):
    local = create_backend("onnxruntime", default_onnx()).open()
    x = np.random.default_rng(4).integers(0, 256, (1, 1, 224, 224)).astype(np.float32) / 255
    with create_backend("remote", tls_server, **_mtls(certs)) as remote:
        got = remote.infer(x)
        assert remote.describe()["tls"] and remote.describe()["mutual_tls"]
    np.testing.assert_allclose(got.scores, local.infer(x).scores, atol=1e-4)


def test_a_wrong_ca_is_refused_at_once_in_one_line(certs, tls_server, caplog):
    backend = create_backend("remote", tls_server, **_mtls(certs, ca=certs.other_ca))
    with caplog.at_level(logging.WARNING), pytest.raises(BackendError) as err:
        backend.open()
    assert str(err.value) == (f"TLS to {tls_server.rsplit('/', 1)[0]} refused: its certificate "
                              f"is not signed by the CA in --tls-ca {certs.other_ca}")
    assert not [r for r in caplog.records if "retrying" in r.getMessage()]  # no waiting on it


# -- end to end: nginx terminates TLS in front of `streamer serve` ---------------------------
NGINX_CONF = """daemon off;
master_process off;
worker_processes 1;
error_log {dir}/error.log warn;
pid {dir}/nginx.pid;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  server {{
    listen 127.0.0.1:{port} ssl http2;
    ssl_certificate {certs.server_cert};
    ssl_certificate_key {certs.server_key};
    ssl_client_certificate {certs.ca};
    ssl_verify_client on;
    location / {{ grpc_pass grpc://127.0.0.1:{grpc_port}; }}
  }}
}}
"""


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def behind_nginx(certs, tmp_path_factory):
    """(`streamer serve`, its grpcs:// address through nginx)."""
    nginx_bin = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if nginx_bin is None:
        pytest.skip("needs Debian's nginx-light (nginx with grpc_pass; .ci/run installs it)")
    if importlib.util.find_spec("mlserver") is None:
        pytest.skip("mlserver is not installed (pip install 'sonostream[serve]')")
    work = tmp_path_factory.mktemp("nginx")
    (port,) = free_ports(1)
    with ServeProcess("--threads", "1", log=work / "serve.log") as srv:
        conf = work / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=work, port=port, certs=certs, grpc_port=srv.grpc_port))
        nginx = subprocess.Popen([nginx_bin, "-p", str(work), "-c", str(conf), "-e",
                                  str(work / "error.log")], stderr=subprocess.STDOUT,
                                 stdout=open(work / "nginx.out", "wb"))
        try:
            deadline = time.monotonic() + 30
            while not _listening(port):
                assert nginx.poll() is None, (work / "nginx.out").read_text()
                assert time.monotonic() < deadline, "nginx did not listen"
                time.sleep(0.05)
            yield srv, f"grpcs://localhost:{port}"
        finally:
            nginx.terminate()
            nginx.wait(10)


def test_streamer_run_through_nginx_with_mutual_tls(certs, behind_nginx, tmp_path):
    srv, server = behind_nginx
    before = srv.batch_sizes().get("sum", 0)
    record = tmp_path / "r.jsonl"
    tls = ["--tls-ca", str(certs.ca), "--tls-cert", str(certs.client_cert),
           "--tls-key", str(certs.client_key)]
    out = subprocess.run([sys.executable, "-m", "streamer", "run", "--backend", "remote",
                          "--server", server, *tls, "--source", "sim:fps=30", "--max-frames", "10",
                          "--publish", "", "--metrics-port", "0", "--record", str(record)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    results = [json.loads(line) for line in record.read_text().splitlines()]
    assert len(results) >= 10
    assert set(results[-1]["classes"]) == {"head", "spine", "thorax", "abdomen", "limbs", "placenta"}
    assert srv.batch_sizes()["sum"] - before >= 10  # the frames reached the server through nginx


def test_nginx_refuses_a_wrong_ca_and_a_missing_client_certificate(certs, behind_nginx, capsys):
    _, server = behind_nginx
    assert main([*RUN, "--server", server, "--tls-ca", str(certs.other_ca)]) == 2
    assert f"TLS to {server} refused: its certificate is not signed by the CA" in \
        _one_line_error(capsys)
    assert main([*RUN, "--server", server, "--tls-ca", str(certs.ca)]) == 2
    assert "the server requires a client certificate (mutual TLS: --tls-cert and --tls-key)" in \
        _one_line_error(capsys)


def test_a_restart_behind_nginx_is_caught_by_the_answer_stamp(certs, behind_nginx, tmp_path):
    """nginx keeps the streamer's connection while `streamer serve` restarts behind it with the
    classes in another order: the channel sees nothing, the first answer's stamp does."""
    srv, server = behind_nginx
    args = list(srv.args)
    backend = create_backend("remote", f"{server}/sonostream", **_mtls(certs)).open()
    try:
        assert backend.infer(X).scores.shape == (1, 6)
        srv.kill()
        srv.args += ["--model", str(reordered_model(tmp_path / "reordered.onnx"))]
        srv.start()
        with pytest.raises(ModelChanged, match=r"classes \['head', 'spine'"):
            backend.infer(X)
        assert backend.describe()["link"]["failures"] == 0  # the link never looked down
    finally:
        backend.close()
        srv.kill()
        srv.args = args
        srv.start()
