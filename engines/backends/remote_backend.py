"""A model on an Open Inference Protocol (KServe v2) server (Triton, KServe, MLServer) over gRPC.

The target is ``grpc://HOST:PORT/MODEL`` (plaintext: loopback, or ``--insecure``) or
``grpcs://HOST:PORT/MODEL`` (TLS, optionally mutual: engines.backends.remote_tls). The model's
description comes from the server (the model's ``sonostream.*`` parameters: in Triton's model
config, or in the metadata that ``streamer serve`` publishes), so no model file is needed here.
Frames travel as UINT8 (the model input before its /255 scaling) on one reused gRPC channel.

A server that cannot be reached (refused, gone, too slow) is handled like a lost source: the call
raises :class:`BackendUnavailable` at once, the frame is dropped and counted, and the next real
attempt waits for an exponential backoff; ``describe()["link"]`` reports it all.

After every reconnect (a failed call, the channel leaving READY, or an answer stamped with another
contract by `streamer serve`) the model is described again before another answer is used. If its
contract (engines.serving.contract: classes in order, activation, input) differs from the one the
stream was built with, inference stops: every call raises :class:`ModelChanged` (frames dropped,
never labelled with the old names), ``describe()["contract"]`` says what changed, and the server
is checked again every ``retry_max_s`` until it serves a model with the same contract.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

import numpy as np

from engines.backends.base import Backend, BackendError, BackendUnavailable
from engines.backends.remote_target import metadata_parameters, parse_target, require_client
from engines.backends.remote_tls import LinkSecurity
from engines.model_info import ModelInfo
from engines.serving.contract import (
    CONTRACT_PARAMETER,
    OUTPUTS,
    contract_changes,
    info_from_parameters,
)

log = logging.getLogger(__name__)
# gRPC codes that mean "the server is not there (now)", not "the request is wrong"
LINK_CODES = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED", "ABORTED", "RESOURCE_EXHAUSTED")


class ModelChanged(BackendUnavailable):
    """The server now serves a model whose contract differs from the one the stream runs with."""


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


@dataclass
class Contract:
    """The model check: same | recheck (a reconnect was seen; describe before the next answer
    counts) | changed (inference stopped until the server's model matches again)."""

    state: str = "same"
    checks: int = 0  # descriptions read after the first one
    error: str = ""
    next_check: float = 0.0


@dataclass(frozen=True)
class Description:
    """What the server says about the model: its contract and how to send it frames."""

    info: ModelInfo
    input_name: str
    input_type: str
    fixed_batch: int | None
    stamp: str = ""  # what `streamer serve` stamps its answers with (Triton: none)


class RemoteBackend(Backend):
    name = "remote"
    timeout_s = 1.0  # one inference round trip; past it the call fails and the link backs off
    connect_wait_s = 10.0  # how long open() keeps trying a server that is not up yet
    retry_initial_s = 0.25
    retry_max_s = 5.0

    def __init__(self, model_path, options=None, *, tls_ca: str = "", tls_cert: str = "",
                 tls_key: str = "", insecure: bool = False):
        super().__init__(model_path, options)
        self.target = str(model_path)
        self.url, self.model_name = parse_target(self.target)
        self.scheme = urlsplit(self.target).scheme
        self.security = LinkSecurity(self.scheme == "grpcs", tls_ca, tls_cert, tls_key, insecure)
        self.security.check_server(self.server, urlsplit(self.target).hostname)
        self.link, self.contract = Link(), Contract()
        self._lock, self._check_lock = threading.Lock(), threading.Lock()
        self._client = None
        self.input_name, self.input_type, self.stamp = "", "", ""

    @property
    def server(self) -> str:
        return f"{self.scheme}://{self.url}"

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

        self._client = grpcclient.InferenceServerClient(
            self.url, creds=self.security.credentials() if self.security.tls else None,
            channel_args=[("grpc.min_reconnect_backoff_ms", 100),
                          ("grpc.initial_reconnect_backoff_ms", 100),
                          ("grpc.max_reconnect_backoff_ms", int(self.retry_max_s * 1000))])
        try:
            desc = self._wait_for_model()
        except BaseException:
            self._client.close()
            raise
        self._adopt(desc)
        self.link = Link(state="up")
        channel = getattr(self._client, "_channel", None)  # tritonclient keeps it there
        if channel is not None:  # from here on, a channel that leaves READY lost its server
            channel.subscribe(self._on_channel, try_to_connect=False)
        return desc.info

    def _wait_for_model(self) -> Description:
        deadline = time.monotonic() + self.connect_wait_s
        delay = self.retry_initial_s
        while True:
            try:
                return self._describe_model()
            except BackendError as exc:
                never = self.security.failure(self.server, str(exc))
                if never:
                    raise BackendError(never) from None
                if not isinstance(exc, BackendUnavailable):
                    raise
                if time.monotonic() + delay > deadline:
                    why = (self.security.hint(str(exc))
                           or "is `streamer serve` or Triton running there?")
                    raise BackendError(f"cannot reach the inference server at {self.server} "
                                       f"({exc}); {why}") from None
                log.warning("inference server %s not reachable (%s); retrying in %.2f s",
                            self.server, exc, delay)
                time.sleep(delay)
                delay = min(2 * delay, self.retry_max_s)

    def _describe_model(self, timeout: float = 2.0) -> Description:
        """Triton: the model config's parameters; MLServer/`streamer serve`: the metadata's."""
        meta = self._call(lambda: self._client.get_model_metadata(self.model_name,
                                                                  client_timeout=timeout))
        params = metadata_parameters(meta)
        if not params:
            params = self._config_parameters(timeout)
        source = f"model {self.model_name!r} on {self.server}"
        info = info_from_parameters(params, source)
        if len(meta.inputs) != 1 or meta.inputs[0].datatype not in ("UINT8", "FP32"):
            raise BackendError(f"{source} should take one UINT8 or FP32 input, has "
                               f"{[(t.name, t.datatype) for t in meta.inputs]}")
        inp = meta.inputs[0]
        return Description(info, inp.name, inp.datatype, 1 if list(inp.shape[:1]) == [1] else None,
                           params.get(CONTRACT_PARAMETER, ""))

    def _adopt(self, desc: Description) -> None:
        """Send frames as the server now takes them (name, type, batch: not the contract)."""
        self.input_name, self.input_type = desc.input_name, desc.input_type
        self.fixed_batch = desc.fixed_batch
        self.stamp = desc.stamp

    def _config_parameters(self, timeout: float) -> dict[str, str]:
        try:
            config = self._call(lambda: self._client.get_model_config(self.model_name,
                                                                      client_timeout=timeout))
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
                raise BackendError(f"the inference server at {self.server} has no model "
                                   f"{self.model_name!r}; name it with --remote-model") from None
            raise BackendError(f"inference server {self.server}: {code} {message}") from None

    # -- the model check after a reconnect ------------------------------------------------
    def _on_channel(self, state) -> None:
        """gRPC's connectivity callback (its own thread): not READY means the next answer may
        come from another server process, so the model is described again first."""
        import grpc

        if state != grpc.ChannelConnectivity.READY:
            self._need_recheck()

    def _need_recheck(self) -> None:
        with self._lock:
            if self.contract.state == "same":
                self.contract = replace(self.contract, state="recheck")

    def _recheck(self) -> None:
        """Describe the model again and compare its contract with the stream's; raises
        BackendUnavailable (link) or ModelChanged, or returns with the contract the same."""
        with self._check_lock:
            if self.contract.state == "same":
                return  # another thread checked it meanwhile
            try:
                desc = self._describe_model(self.timeout_s)
            except BackendUnavailable as exc:
                self._link_failed(exc)
                raise
            except (BackendError, ValueError) as exc:  # no model, or not ours any more
                self._model_changed(str(exc))
            self._link_up()
            changes = contract_changes(self.info, desc.info)
            if changes:
                self._model_changed(f"model {self.model_name!r} on {self.server} changed: "
                                    + "; ".join(changes))
            self._contract_same(desc)

    def _model_changed(self, reason: str):
        c = self.contract
        message = (f"{reason}; inference stopped (frames dropped, never published under this "
                   "stream's class names) until the server serves the model this stream started "
                   "with; restart the streamer to take the new one")
        if c.state != "changed":
            log.error("%s", message)
        with self._lock:
            self.contract = Contract("changed", c.checks + 1, message,
                                     time.monotonic() + self.retry_max_s)
        raise ModelChanged(message)

    def _contract_same(self, desc: Description) -> None:
        c = self.contract
        if c.state == "changed":
            log.warning("model %r on %s has the stream's contract again; inference resumes",
                        self.model_name, self.server)
        if desc.info != self.info:
            log.info("model %r on %s was replaced by another build with the same contract "
                     "(classes, activation, input); results continue", self.model_name, self.server)
        self._adopt(desc)
        with self._lock:
            self.contract = Contract("same", c.checks + 1)

    # -- running -------------------------------------------------------------------------
    def _run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self._gate()
        if self.contract.state != "same":
            self._recheck()
        try:
            result = self._call(lambda: self._client.infer(
                self.model_name, [self._input(batch)], outputs=self._outputs,
                client_timeout=self.timeout_s))
        except BackendUnavailable as exc:
            self._link_failed(exc)
            raise
        stamp = result.get_response().parameters.get(CONTRACT_PARAMETER)
        if stamp is not None and self.stamp and stamp.string_param != self.stamp:
            self._need_recheck()  # an answer from another model: never used
            self._recheck()
            raise BackendUnavailable(f"an answer from {self.server} came from a model with "
                                     "another contract; discarded")
        self._link_up()
        return result.as_numpy(OUTPUTS[0]), result.as_numpy(OUTPUTS[1])

    def _gate(self) -> None:
        """Refuse at once, without touching the network, inside a backoff or between checks of
        a changed model."""
        with self._lock:
            now = time.monotonic()
            if self.link.state == "down" and now < self.link.next_try:
                self.link.skipped += 1
                raise BackendUnavailable(f"inference server {self.server} is down "
                                         f"({self.link.error}); next try in "
                                         f"{self.link.next_try - now:.2f} s")
            if self.contract.state == "changed" and now < self.contract.next_check:
                raise ModelChanged(self.contract.error)

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
        self._need_recheck()  # whatever answers next may be another server process
        with self._lock:
            s = self.link
            delay = self.retry_initial_s if s.state != "down" else min(2 * s.retry_in_s,
                                                                       self.retry_max_s)
            if s.state != "down":
                log.warning("inference server %s lost (%s); retrying with backoff",
                            self.server, exc)
            self.link = Link("down", s.retries + (s.state == "down"), delay,
                             time.monotonic() + delay, s.failures + 1, s.skipped, str(exc))

    def _link_up(self) -> None:
        if self.link.state == "up":
            return
        with self._lock:
            s = self.link
            if s.state == "down":
                log.info("inference server %s is back after %d retries", self.server, s.retries)
            self.link = Link("up", s.retries, 0.0, 0.0, s.failures, s.skipped)

    # -- reporting -----------------------------------------------------------------------
    def _details(self) -> dict:
        s, c = self.link, self.contract
        return {"model": self.target, "server": self.server, "remote_model": self.model_name,
                "tls": self.security.tls, "mutual_tls": bool(self.security.cert),
                "link": {"state": s.state, "retries": s.retries, "retry_in_s": round(s.retry_in_s, 3),
                         "failures": s.failures, "skipped": s.skipped, "error": s.error},
                "contract": {"state": c.state, "checks": c.checks, "error": c.error}}

    @property
    def up(self) -> bool:
        return self.link.state == "up" and self.contract.state != "changed"

    @property
    def model_changed(self) -> bool:
        return self.contract.state == "changed"

    def _close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
