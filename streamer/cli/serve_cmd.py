"""streamer serve: host the model on an Open Inference Protocol (KServe v2) server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from pathlib import Path

from streamer.cli import CommandError, inputs

HELP = "host the model on a v2 inference server (MLServer) that batches many streamers' frames"


def add_arguments(p) -> None:
    p.add_argument("--model", help="model file, or a folder streamer adapt wrote (default: the bundled model)")
    p.add_argument("--name", default=None, help="model name clients ask for (default: sonostream)")
    p.add_argument("--backend", help="backend that runs it (default: by the file's suffix)")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default: cpu)")
    p.add_argument("--threads", type=int, default=0, help="inference threads (0: the runtime's)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default loopback: put a TLS terminator in front, "
                        "docs/deploy.md; others need --allow-remote and --insecure)")
    p.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --host")
    p.add_argument("--insecure", action="store_true",
                   help="with --allow-remote: serve frames (patient data) in plaintext to the network")
    p.add_argument("--grpc-port", type=int, default=8001, metavar="N")
    p.add_argument("--http-port", type=int, default=8000, metavar="N",
                   help="REST API, including GET /v2/health/ready")
    p.add_argument("--metrics-port", type=int, default=8002, metavar="N",
                   help="the server's Prometheus metrics at /metrics")
    p.add_argument("--max-batch", type=int, default=16, metavar="N",
                   help="largest batch adaptive batching forms across clients (1: no batching)")
    p.add_argument("--max-queue-delay-ms", type=float, default=1.0, metavar="MS",
                   help="longest a request waits for others to join its batch")


def _options(args):
    from engines.serving.contract import DEFAULT_MODEL_NAME
    from engines.serving.mlserver_server import ServeOptions

    _check_host(args)
    path = inputs.model_file(args.model)
    if not path.is_file():
        raise CommandError(f"model file not found: {path}")
    ports = (args.grpc_port, args.http_port, args.metrics_port)
    if any(not 0 < p < 65536 for p in ports) or len(set(ports)) != 3:
        raise CommandError(f"--grpc-port, --http-port and --metrics-port must be three different "
                           f"ports in 1..65535, got {ports}")
    if args.max_batch < 1 or args.max_queue_delay_ms < 0 or args.threads < 0:
        raise CommandError("--max-batch must be ≥ 1, --max-queue-delay-ms and --threads ≥ 0")
    return ServeOptions(model=path.resolve(), name=args.name or DEFAULT_MODEL_NAME, host=args.host,
                        grpc_port=args.grpc_port, http_port=args.http_port,
                        metrics_port=args.metrics_port, max_batch=args.max_batch,
                        max_queue_delay_ms=args.max_queue_delay_ms, backend=args.backend or "",
                        device=args.device, threads=args.threads)


def _check_host(args) -> None:
    """MLServer speaks plaintext only: off loopback, frames cross the network unencrypted."""
    from streamer.security import is_local_host

    if is_local_host(args.host):
        return
    if not (args.allow_remote and args.insecure):
        raise CommandError(f"refusing --host {args.host}: not loopback, and the server speaks "
                           "plaintext (frames are patient data); keep it on loopback behind a TLS "
                           "terminator (docs/deploy.md), or give --allow-remote --insecure")
    print(f"INSECURE: serving plaintext gRPC and HTTP on {args.host}; anyone on the network can "
          "read the frames", file=sys.stderr, flush=True)


def _check_ports(opts) -> None:
    for flag, port in (("--grpc-port", opts.grpc_port), ("--http-port", opts.http_port),
                       ("--metrics-port", opts.metrics_port)):
        _check_free(opts.host, port, flag)


def _check_free(host: str, port: int, flag: str) -> None:
    """A port already taken is one line here, not a server that half starts and dies."""
    import socket

    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                          flags=socket.AI_PASSIVE)[0]
    except OSError as exc:
        raise CommandError(f"--host {host}: {exc}") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind
        try:
            probe.bind(addr)
        except OSError as exc:
            raise CommandError(f"{flag} {port}: cannot listen on {host}:{port} ({exc.strerror}); "
                               "is another server running there?") from None


def _check_model(opts) -> None:
    """Open the model once here, so a bad file is one clear line rather than a server log."""
    from engines.backends import BackendOptions, backend_for, create_backend

    try:
        backend = create_backend(opts.backend or backend_for(opts.model), opts.model,
                                 BackendOptions(device=opts.device, warmup=1))
        with backend:
            fixed = backend.fixed_batch
    except ValueError as exc:  # not a sonostream model, an unknown backend or device
        raise CommandError(f"cannot serve {opts.model}: {exc}") from None
    if fixed == 1 and opts.max_batch > 1:
        print(f"note: {opts.model.name} takes batches of 1, so batched frames run one by one; "
              "export it with --batch dynamic to share one model call", flush=True)


def _no_signal_capture(self):
    return contextlib.nullcontext()


def _settle_batch(self, batched, predict_task) -> None:
    """``AdaptiveBatcher._predict_callback`` that answers only the requests still waiting.

    MLServer 1.7.1's own callback indexes every request of the batch; a request whose client gave
    up while it was queued or predicted (a deadline, a disconnect, a stopping server) has already
    been cancelled and dropped from ``_async_responses``, so it raised ``KeyError`` (or
    ``InvalidStateError``) inside the event loop's callback: a traceback, and the other requests
    of that batch left unanswered until their own deadlines."""
    error, responses = None, {}
    try:
        responses = batched.split_response(predict_task.result())
    except asyncio.CancelledError:  # the server is stopping
        error = asyncio.CancelledError()
    except Exception as exc:  # the model failed: every request of the batch gets the error
        error = exc
    for internal_id in batched.inference_requests:
        waiter = self._async_responses.get(internal_id)
        if waiter is None or waiter.done():
            continue  # its client is gone: nobody waits for this answer
        if isinstance(error, asyncio.CancelledError):
            waiter.cancel()
        elif error is not None:
            waiter.set_exception(error)
        else:
            waiter.set_result(responses[internal_id])


def _clear_queue(self, err: BaseException) -> None:
    """``AdaptiveBatcher._clear_queue`` without failing on requests already cancelled."""
    for waiter in self._async_responses.values():
        if not waiter.done():
            waiter.set_exception(err)
    for _ in range(self._requests.qsize()):
        self._requests.get_nowait()


def _fix_mlserver() -> None:
    """Two defects of MLServer 1.7.1 with the uvicorn it installs beside, fixed where they arise.

    - Signals: its REST and metrics servers are uvicorn servers that should leave signals to
      MLServer (``_NoSignalServer`` overrides ``install_signal_handlers``), but uvicorn ≥ 0.29
      captures them in ``capture_signals`` instead. So each Ctrl-C reached both uvicorn servers
      and the event loop's handler, shutdown ran several times over, a server asked to exit
      twice took it as a forced exit and skipped its lifespan shutdown, and the lifespan task
      left pending was cancelled at the end: a ``CancelledError`` traceback. Here uvicorn
      captures none, and :func:`_serve` stops the server once.
    - Batching: see :func:`_settle_batch`.
    """
    import uvicorn
    from mlserver.batching.adaptive import AdaptiveBatcher
    from mlserver.metrics import server as metrics_server
    from mlserver.rest import server as rest_server

    if hasattr(uvicorn.Server, "capture_signals"):
        for module in (rest_server, metrics_server):
            module._NoSignalServer.capture_signals = _no_signal_capture
    AdaptiveBatcher._predict_callback = _settle_batch
    AdaptiveBatcher._clear_queue = _clear_queue


async def _serve(opts) -> str:
    """Serve until SIGINT or SIGTERM, then stop once, quietly; the signal's name.

    A second signal while stopping exits at once (status 130)."""
    import signal
    import tempfile

    from mlserver import MLServer

    from engines.serving.mlserver_server import _settings

    loop = asyncio.get_running_loop()
    received: list[signal.Signals] = []
    stop = asyncio.Event()

    def on_signal(sig: signal.Signals) -> None:
        if received:
            print(f"streamer serve: {sig.name} again, exiting now", file=sys.stderr, flush=True)
            os._exit(130)
        received.append(sig)
        for name in ("mlserver", "uvicorn", "uvicorn.error"):  # no log line per stopped part
            logging.getLogger(name).setLevel(logging.WARNING)
        print(f"streamer serve: {sig.name} received, stopping", file=sys.stderr, flush=True)
        stop.set()

    with tempfile.TemporaryDirectory(prefix="sonostream-serve-") as workdir:
        settings, model = _settings(opts, Path(workdir))
        server = MLServer(settings)  # installs its own handlers on the loop: ours replace them
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):
            loop.add_signal_handler(sig, on_signal, sig)
        logging.getLogger("mlserver").propagate = False  # it has its own handler: one line each
        running = asyncio.ensure_future(server.start(models_settings=[model]))
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if received:
            await server.stop(received[0])
        stopping.cancel()
        await running
    if not received:
        raise RuntimeError("the inference server stopped by itself (its log is above)")
    return received[0].name


def run(args) -> int:
    import importlib.util

    opts = _options(args)  # bad flags and files first: one line, before any server library loads
    if importlib.util.find_spec("mlserver") is None:
        raise CommandError("serve needs MLServer: pip install 'sonostream[serve]' "
                           "(in a checkout: pip install -e '.[serve]')")
    _check_model(opts)
    _check_ports(opts)
    _fix_mlserver()
    print(f"serving {opts.model.name} as {opts.name!r}: grpc {opts.host}:{opts.grpc_port}, "
          f"http {opts.host}:{opts.http_port} (GET /v2/health/ready), metrics "
          f"{opts.host}:{opts.metrics_port}/metrics", flush=True)
    asyncio.run(_serve(opts))
    return 0  # a requested stop (SIGINT, SIGTERM)
