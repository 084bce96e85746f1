"""Start MLServer in this process with our runtime: v2 gRPC + REST, adaptive batching, the
server's Prometheus metrics. Imported only by ``streamer serve``.

MLServer runs models in worker processes by default; those die with current uvloop releases ("no
current event loop"), and a worker per model would copy the model anyway, so the model runs in
the server's own process (``parallel_workers=0``): ONNX Runtime and TensorRT release the GIL and
use their own threads.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServeOptions:
    model: Path
    name: str
    host: str = "127.0.0.1"
    grpc_port: int = 8001
    http_port: int = 8000
    metrics_port: int = 8002
    max_batch: int = 16
    max_queue_delay_ms: float = 1.0
    backend: str = ""  # empty: by the model file's suffix
    device: str = "cpu"
    threads: int = 0


def _settings(opts: ServeOptions, workdir: Path):
    from mlserver.settings import ModelParameters, ModelSettings, Settings

    from engines.serving.mlserver_runtime import SonostreamRuntime

    settings = Settings(
        host=opts.host, grpc_port=opts.grpc_port, http_port=opts.http_port,
        metrics_port=opts.metrics_port, parallel_workers=0, load_models_at_startup=False,
        model_repository_root=str(workdir), metrics_dir=str(workdir), debug=False,
    )
    model = ModelSettings(
        name=opts.name, implementation=SonostreamRuntime,
        max_batch_size=opts.max_batch, max_batch_time=opts.max_queue_delay_ms / 1000,
        parameters=ModelParameters(uri=str(opts.model), extra={
            "backend": opts.backend, "device": opts.device, "threads": opts.threads}),
    )
    return settings, model


async def _serve(opts: ServeOptions) -> None:
    from mlserver import MLServer

    with tempfile.TemporaryDirectory(prefix="sonostream-serve-") as workdir:
        settings, model = _settings(opts, Path(workdir))
        server = MLServer(settings)
        logging.getLogger("mlserver").propagate = False  # it has its own handler: one line each
        await server.start(models_settings=[model])


def serve(opts: ServeOptions) -> None:
    """Serve until SIGINT/SIGTERM (MLServer installs its own handlers on the event loop)."""
    asyncio.run(_serve(opts))
