"""streamer serve: host the model on an Open Inference Protocol (KServe v2) server."""

from __future__ import annotations

from pathlib import Path

from streamer.cli import CommandError

HELP = "host the model on a v2 inference server (MLServer) that batches many streamers' frames"


def add_arguments(p) -> None:
    p.add_argument("--model", help="model file (default: the bundled model)")
    p.add_argument("--name", default=None, help="model name clients ask for (default: sonostream)")
    p.add_argument("--backend", help="backend that runs it (default: by the file's suffix)")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default: cpu)")
    p.add_argument("--threads", type=int, default=0, help="inference threads (0: the runtime's)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default loopback; frames are patient data: expose "
                        "it only on a network you trust, e.g. 0.0.0.0 inside a cluster)")
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
    from engines.defaults import default_onnx
    from engines.serving.contract import DEFAULT_MODEL_NAME
    from engines.serving.mlserver_server import ServeOptions

    path = Path(args.model) if args.model else default_onnx()
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


def run(args) -> int:
    import importlib.util

    opts = _options(args)  # bad flags and files first: one line, before any server library loads
    if importlib.util.find_spec("mlserver") is None:
        raise CommandError("serve needs MLServer: pip install 'sonostream[serve]'")
    _check_model(opts)
    from engines.serving.mlserver_server import serve

    print(f"serving {opts.model.name} as {opts.name!r}: grpc {opts.host}:{opts.grpc_port}, "
          f"http {opts.host}:{opts.http_port} (GET /v2/health/ready), metrics "
          f"{opts.host}:{opts.metrics_port}/metrics", flush=True)
    serve(opts)
    return 0
