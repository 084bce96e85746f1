"""A model on an Open Inference Protocol (KServe v2) server (Triton, KServe, MLServer) over gRPC.

The target is ``grpc://HOST:PORT/MODEL``. The model's description comes from the server (the
model's ``sonostream.*`` parameters: in Triton's model config, or in the metadata that
``streamer serve`` publishes), so no model file is needed here. Frames travel as UINT8 (the model
input before its /255 scaling) on one reused gRPC channel.

A server that cannot be reached (refused, gone, too slow) is handled like a lost source: the call
raises :class:`BackendUnavailable` at once, the frame is dropped and counted, and the next real
attempt waits for an exponential backoff; ``describe()["link"]`` reports it all.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import numpy as np

from engines.backends.base import Backend, BackendError, BackendUnavailable
from engines.model_info import ModelInfo
from engines.serving.contract import DEFAULT_MODEL_NAME, OUTPUTS, info_from_parameters

log = logging.getLogger(__name__)
DEFAULT_PORT = 8001
# gRPC codes that mean "the server is not there (now)", not "the request is wrong"
LINK_CODES = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED", "ABORTED", "RESOURCE_EXHAUSTED")


def parse_target(target: str) -> tuple[str, str]:
    """``grpc://host[:port][/model]`` → ("host:port", model)."""
    parts = urlsplit(target)
    if parts.scheme != "grpc" or not parts.hostname:
        raise BackendError(f"remote server must be grpc://HOST:PORT[/MODEL], got {target!r}")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise BackendError(f"remote server {target!r} has a bad port") from None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{port}", parts.path.strip("/") or DEFAULT_MODEL_NAME


INSTALL_HINT = "pip install 'sonostream[remote]' (in a checkout: pip install -e '.[remote]')"


def require_client() -> None:
    """The gRPC client (the ``remote`` extra) is importable, or one BackendError saying which
    extra to install: a bare ``No module named 'tritonclient'`` does not say what to do."""
    try:
        import tritonclient.grpc  # noqa: F401
    except ImportError as exc:
        missing = getattr(exc, "name", None) or str(exc)
        raise BackendError(f"--backend remote needs the 'remote' extra (tritonclient[grpc]; "
                           f"no module {missing} here): {INSTALL_HINT}") from None


def remote_target(server: str, model: str = "") -> str:
    """The backend's target from a ``--server`` URL and an optional model name."""
    url, default = parse_target(server)
    return f"grpc://{url}/{model or default}"


@dataclass
class Link:
    """The connection's state, as a lost source's: up | down, retries and the next attempt."""

    state: str = "connecting"
    retries: int = 0
    retry_in_s: float = 0.0
    next_try: float = 0.0
    failures: int = 0  # calls that failed on the link (each one a dropped frame)
    skipped: int = 0  # calls refused during a backoff without touching the network
    error: str = ""


class RemoteBackend(Backend):
    name = "remote"
    timeout_s = 1.0  # one inference round trip; past it the call fails and the link backs off
    connect_wait_s = 10.0  # how long open() keeps trying a server that is not up yet
    retry_initial_s = 0.25
    retry_max_s = 5.0

    def __init__(self, model_path, options=None):
        super().__init__(model_path, options)
        self.target = str(model_path)
        self.url, self.model_name = parse_target(self.target)
        self.link = Link()
        self._lock = threading.Lock()
        self._client = None
        self.input_name, self.input_type = "", ""

    # -- opening: the model's description from the server ---------------------------------
    def open(self) -> RemoteBackend:
        """Connect and read the model's description (no local file: the base's check is skipped)."""
        if self._open:
            return self
        self.info = self._load()
        self._open = True
        size = self.info.input_size
        for _ in range(max(1, self.options.warmup)):
            self.infer(np.zeros((1, 1, size, size), np.float32))
        return self

    def _load(self) -> ModelInfo:
        require_client()
        import tritonclient.grpc as grpcclient

        self._client = grpcclient.InferenceServerClient(self.url, channel_args=[
            ("grpc.min_reconnect_backoff_ms", 100), ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", int(self.retry_max_s * 1000)),
        ])
        try:
            info = self._wait_for_model()
        except BaseException:
            self._client.close()
            raise
        self.link = Link(state="up")
        return info

    def _wait_for_model(self) -> ModelInfo:
        deadline = time.monotonic() + self.connect_wait_s
        delay = self.retry_initial_s
        while True:
            try:
                return self._describe_model()
            except BackendUnavailable as exc:
                if time.monotonic() + delay > deadline:
                    raise BackendError(f"cannot reach the inference server at grpc://{self.url} "
                                       f"({exc}); is `streamer serve` or Triton running there?"
                                       ) from None
                log.warning("inference server grpc://%s not reachable (%s); retrying in %.2f s",
                            self.url, exc, delay)
                time.sleep(delay)
                delay = min(2 * delay, self.retry_max_s)

    def _describe_model(self) -> ModelInfo:
        """Triton: the model config's parameters; MLServer/`streamer serve`: the metadata's."""
        meta = self._call(lambda: self._client.get_model_metadata(self.model_name, client_timeout=2))
        params = _metadata_parameters(meta)
        if not params:
            params = self._config_parameters()
        source = f"model {self.model_name!r} on grpc://{self.url}"
        info = info_from_parameters(params, source)
        if len(meta.inputs) != 1 or meta.inputs[0].datatype not in ("UINT8", "FP32"):
            raise BackendError(f"{source} should take one UINT8 or FP32 input, has "
                               f"{[(t.name, t.datatype) for t in meta.inputs]}")
        self.input_name, self.input_type = meta.inputs[0].name, meta.inputs[0].datatype
        self.fixed_batch = 1 if list(meta.inputs[0].shape[:1]) == [1] else None
        return info

    def _config_parameters(self) -> dict[str, str]:
        try:
            config = self._call(lambda: self._client.get_model_config(self.model_name,
                                                                      client_timeout=2))
        except BackendError:  # UNIMPLEMENTED: a server without Triton's config extension
            return {}
        return {k: v.string_value for k, v in config.config.parameters.items()}

    def _call(self, request):
        from tritonclient.utils import InferenceServerException

        try:
            return request()
        except InferenceServerException as exc:
            code = str(exc.status() or "").removeprefix("StatusCode.")
            message = exc.message() or str(exc)
            if code in LINK_CODES:
                raise BackendUnavailable(f"{code}: {message}") from None
            if code == "NOT_FOUND":
                raise BackendError(f"the inference server at grpc://{self.url} has no model "
                                   f"{self.model_name!r}; name it with --remote-model") from None
            raise BackendError(f"inference server grpc://{self.url}: {code} {message}") from None

    # -- running -------------------------------------------------------------------------
    def _run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            now = time.monotonic()
            if self.link.state == "down" and now < self.link.next_try:
                self.link.skipped += 1
                raise BackendUnavailable(f"inference server grpc://{self.url} is down "
                                         f"({self.link.error}); next try in "
                                         f"{self.link.next_try - now:.2f} s")
        try:
            result = self._call(lambda: self._client.infer(
                self.model_name, [self._input(batch)], outputs=self._outputs,
                client_timeout=self.timeout_s))
        except BackendUnavailable as exc:
            self._link_failed(exc)
            raise
        self._link_up()
        return result.as_numpy(OUTPUTS[0]), result.as_numpy(OUTPUTS[1])

    def _input(self, batch: np.ndarray):
        """UINT8: the float32 [0, 1] batch back to the frame it was scaled from (exact: k/255)."""
        import tritonclient.grpc as grpcclient

        if self.input_type == "UINT8":
            batch = np.rint(batch * np.float32(255)).astype(np.uint8)
        inp = grpcclient.InferInput(self.input_name, list(batch.shape), self.input_type)
        inp.set_data_from_numpy(batch)
        return inp

    @property
    def _outputs(self):
        import tritonclient.grpc as grpcclient

        return [grpcclient.InferRequestedOutput(name) for name in OUTPUTS]

    def _link_failed(self, exc: Exception) -> None:
        with self._lock:
            s = self.link
            delay = self.retry_initial_s if s.state != "down" else min(2 * s.retry_in_s,
                                                                       self.retry_max_s)
            if s.state != "down":
                log.warning("inference server grpc://%s lost (%s); retrying with backoff",
                            self.url, exc)
            self.link = Link("down", s.retries + (s.state == "down"), delay,
                             time.monotonic() + delay, s.failures + 1, s.skipped, str(exc))

    def _link_up(self) -> None:
        if self.link.state == "up":
            return
        with self._lock:
            s = self.link
            if s.state == "down":
                log.info("inference server grpc://%s is back after %d retries", self.url, s.retries)
            self.link = Link("up", s.retries, 0.0, 0.0, s.failures, s.skipped)

    # -- reporting -----------------------------------------------------------------------
    def _details(self) -> dict:
        s = self.link
        return {"model": self.target, "server": f"grpc://{self.url}", "remote_model": self.model_name,
                "link": {"state": s.state, "retries": s.retries, "retry_in_s": round(s.retry_in_s, 3),
                         "failures": s.failures, "skipped": s.skipped, "error": s.error}}

    @property
    def up(self) -> bool:
        return self.link.state == "up"

    def _close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _metadata_parameters(meta) -> dict[str, str]:
    """The ``parameters`` map of a v2 ModelMetadataResponse (field 6, as MLServer sends it).

    tritonclient's protos predate that field, so it arrives as an unknown field: each entry is a
    map entry {1: key, 2: InferParameter}, the wire form of ModelInferRequest.ParametersEntry.
    """
    from google.protobuf import unknown_fields
    from tritonclient.grpc import service_pb2

    if "parameters" in meta.DESCRIPTOR.fields_by_name:  # a client whose protos know the field
        return {k: str(getattr(v, v.WhichOneof("parameter_choice") or "string_param"))
                for k, v in meta.parameters.items()}
    entry_type = service_pb2.ModelInferRequest.ParametersEntry
    out = {}
    for field in unknown_fields.UnknownFieldSet(meta):
        if field.field_number == 6 and isinstance(field.data, bytes):
            entry = entry_type.FromString(field.data)
            value = entry.value
            kind = value.WhichOneof("parameter_choice")
            out[entry.key] = str(getattr(value, kind)) if kind else ""
    return out
