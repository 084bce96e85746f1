"""`streamer run` configuration: frozen dataclasses, one section per stage, loaded from TOML.

Unknown sections and keys are refused with one error naming them; each section validates itself
in ``__post_init__`` so a bad value fails at start, never mid-stream. Every numeric field carries
its bounds beside it (``bounded``: finite, within them; ``Bounds`` in the field's metadata for a
reference to show). What needs the model or the source is checked once they are known:
:meth:`PostprocessConfig.check_classes`, :meth:`PreprocessConfig.check_frame`. CLI flags
override the file through :func:`override`.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path

from engines.backends import REGISTRY
from engines.model_info import PRECISIONS, REPRESENTATIONS
from streamer.config_bounds import _check_bounds, bounded
from streamer.errors import UserError
from streamer.protocol import DEFAULT_ENDPOINT

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

MAX_SIDE = 16384
"""Pixels: no frame side this project takes comes near it (DICOM: 8192; ZMQ frames: 4096)."""
MAX_STREAMS = 64
"""Streams in one process: each has three threads of its own (source, preprocess, fan search)."""


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise UserError(message)


@dataclass(frozen=True)
class SourceConfig:
    spec: str = "sim"  # where frames come from: sim[:...], a video file, capture:N, zmq:..., dicom:...
    # how long one read may wait (bounds the stop latency)
    read_timeout_s: float = bounded(0.1, 0, 1.0, open_low=True)
    # first wait before reopening a lost live source (then doubled after each failed try)
    retry_initial_s: float = bounded(0.5, 0, 3600, open_low=True)
    # the backoff's ceiling (at most an hour: a device that is back is found within an hour)
    retry_max_s: float = bounded(10.0, 0, 3600, open_low=True)
    # several streams in one process and one model, stream name = source spec, e.g.
    # { bay1 = "capture:/dev/video0", bay2 = "capture:/dev/video2" } (at most 64; empty: the
    # one stream [publish] stream reading spec); every other section applies to each stream
    streams: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        from streamer.protocol import check_stream_name

        _check(bool(self.spec.strip()), "[source] spec must not be empty")
        _check_bounds(self, "source")
        _check(self.retry_initial_s <= self.retry_max_s, "[source] retry_initial_s must be ≤ retry_max_s")
        _check(len(self.streams) <= MAX_STREAMS,
               f"[source] streams: at most {MAX_STREAMS} streams, got {len(self.streams)}")
        for name, spec in self.streams.items():
            try:
                check_stream_name(name)
            except UserError as exc:
                raise UserError(f"[source] streams: {exc}") from None
            _check(isinstance(spec, str) and bool(spec.strip()),
                   f"[source] streams: stream {name} needs a source spec, got {spec!r}")


@dataclass(frozen=True)
class InferenceConfig:
    """The [model] section: which model runs where (not the network's own config, which is
    engines.model.ModelConfig)."""

    path: str = ""  # empty: the bundled default model
    backend: str = "onnxruntime"  # onnxruntime, tensorrt, torch or remote
    device: str = "cpu"  # cpu or cuda[:N]
    precision: str = "fp32"  # the torch backend runs fp32 or (on cuda) fp16; a model file carries its own
    # 0: the runtime's default (with several streams on a CPU: 1, for each of the two inference
    # workers); at most 256, the hardware threads of a large two-socket server (beyond the
    # cores, more threads only wait)
    threads: int = bounded(0, 0, 256)
    # ONNX Runtime's worker threads spin between calls: at a live frame rate each call then starts
    # warm (benchmarks/paced_model.py), for some CPU spent spinning
    spin: bool = False
    server: str = ""  # backend "remote": the v2 inference server, grpc://HOST:PORT
    remote_model: str = ""  # the model's name on that server (empty: sonostream)
    tls_ca: str = ""  # grpcs:// server: the CA (PEM) that signed its certificate (empty: system's)
    tls_cert: str = ""  # mutual TLS: this client's certificate (PEM), with tls_key
    tls_key: str = ""  # mutual TLS: its private key (PEM)

    def __post_init__(self):
        _check_bounds(self, "model")
        _check(self.backend != "remote" or bool(self.server),
               "[model] backend 'remote' needs server = grpc://HOST:PORT (--server)")
        _check(self.backend in REGISTRY,
               f"[model] backend must be one of {', '.join(sorted(REGISTRY))}, got {self.backend!r}")
        _check(self.precision in PRECISIONS,
               f"[model] precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")


@dataclass(frozen=True)
class PreprocessConfig:
    mode: str = "auto"  # auto: find the fan; roi: the configured rectangle; full: the whole frame
    # x, y, w, h in source pixels (mode "roi"); it must lie inside the frames (checked at
    # start-up for a source that knows their size, frame by frame for the others)
    roi: tuple[int, int, int, int] | None = bounded(None, 0, MAX_SIDE)
    # a scanner profile's fixed sector with its roi (streamer fit-screen writes both): apex x, y
    # in source pixels, radii (px), beam angles (degrees from straight down, + towards +x)
    sector: tuple[float, float, float, float, float, float] | None = bounded(
        None, -4 * MAX_SIDE, 4 * MAX_SIDE)
    # frames between fan re-detections (0: detect once; at most about 9 h at 30 fps)
    redetect_every: int = bounded(150, 0, 1_000_000)
    threshold: int = bounded(8, 1, 254)  # grey levels above the screen background that count as fan
    # detection runs on the frame shrunk by this factor, then refines
    detect_scale: int = bounded(4, 1, 8)
    # what the model is fed: "sector" (the fan crop), "polar" (the sector resampled to beam
    # space: depth down, angle across), or "model": as the model was trained (its metadata)
    representation: str = "model"

    def __post_init__(self):
        if self.roi is not None:
            object.__setattr__(self, "roi", tuple(int(v) for v in self.roi))
            _check(len(self.roi) == 4 and self.roi[0] >= 0 and self.roi[1] >= 0
                   and self.roi[2] > 0 and self.roi[3] > 0,
                   "[preprocess] roi must be [x, y, w, h] with x, y ≥ 0 and w, h > 0")
        _check_bounds(self, "preprocess")
        if self.mode == "auto" and self.roi is not None:
            object.__setattr__(self, "mode", "roi")
        _check(self.mode in ("auto", "roi", "full"), "[preprocess] mode must be auto, roi or full")
        _check(self.mode != "roi" or self.roi is not None, "[preprocess] mode 'roi' needs roi")
        if self.sector is not None:
            object.__setattr__(self, "sector", tuple(float(v) for v in self.sector))
            _check(self.mode == "roi", "[preprocess] sector needs the roi it lies in (mode 'roi')")
            _check(len(self.sector) == 6, "[preprocess] sector must be [apex_x, apex_y, r_min, "
                   "r_max, angle_min_deg, angle_max_deg]")
            try:
                self.sector_geometry()
            except ValueError as exc:
                raise UserError(f"[preprocess] sector: {exc}") from None
        _check(self.representation in ("model", *REPRESENTATIONS),
               "[preprocess] representation must be model, sector or polar")


    def check_frame(self, size: tuple[int, int] | None) -> None:
        """The roi must lie inside the frames (``size``: width, height) of a source that knows
        their size before the first one; None: a source that does not (checked frame by frame)."""
        if self.roi is None or size is None:
            return
        x, y, w, h = self.roi
        _check(x + w <= size[0] and y + h <= size[1], f"[preprocess] roi {list(self.roi)} "
               f"(x, y, w, h) lies outside the source's {size[0]}x{size[1]} frames")

    def sector_geometry(self):
        """The configured sector relative to the roi (None without one)."""

        from engines.polar import SectorGeometry

        if self.sector is None:
            return None
        ax, ay, r0, r1, a0, a1 = self.sector
        return SectorGeometry((ax - self.roi[0], ay - self.roi[1]), r0, r1, math.radians(a0),
                              math.radians(a1))


@dataclass(frozen=True)
class PostprocessConfig:
    # default per-class decision threshold (the "on" threshold)
    threshold: float = bounded(0.5, 0, 1, open_low=True, open_high=True)
    # per-class overrides, each in (0, 1); a class the model lacks is refused once it is loaded
    thresholds: dict[str, float] = field(default_factory=dict)
    # EMA weight of the past (0: no smoothing; 0.7: strong)
    smoothing: float = bounded(0.0, 0, 1, open_high=True)
    # a present class turns off below threshold - hysteresis (and below threshold itself)
    hysteresis: float = bounded(0.0, 0, 1, open_high=True)
    # box = the map's component above this fraction of its peak
    box_fraction: float = bounded(0.5, 0, 1, open_low=True, open_high=True)
    maps: bool = True  # publish uint8 class maps

    def __post_init__(self):
        object.__setattr__(self, "thresholds", {str(k): float(v) for k, v in self.thresholds.items()})
        for name, t in {"threshold": self.threshold, **self.thresholds}.items():
            _check(0.0 < t < 1.0, f"[postprocess] threshold for {name} must be in (0, 1), got {t}")
        _check_bounds(self, "postprocess")
        _check(self.hysteresis < self.threshold, "[postprocess] hysteresis must be in [0, threshold)")

    def threshold_for(self, name: str) -> float:
        return self.thresholds.get(name, self.threshold)

    def check_classes(self, classes: tuple[str, ...], model: str = "the model") -> None:
        """Each per-class threshold must name a class of the model: known once it is loaded."""
        unknown = [name for name in self.thresholds if name not in classes]
        if not unknown:
            return
        close = difflib.get_close_matches(unknown[0], classes, n=1)
        raise UserError(f"[postprocess] thresholds name {', '.join(map(repr, unknown))}, not a "
                        f"class of {model} (its classes: {', '.join(classes)})"
                        + (f"; did you mean {close[0]!r}?" if close else ""))


@dataclass(frozen=True)
class PublishConfig:
    endpoint: str = DEFAULT_ENDPOINT  # empty: publish nowhere (metrics only)
    allow_remote: bool = False  # frames are patient data: bind to loopback unless told otherwise
    curve_secret: str = ""  # CurveZMQ: the publisher's secret key file (streamer keys)
    curve_clients: str = ""  # CurveZMQ: folder of the client public keys allowed to subscribe
    insecure: bool = False  # remote without CurveZMQ (plaintext patient data; logs a warning)
    stream: str = "main"  # the stream's name in topics (det.<stream>), status and metrics
    status_interval_s: float = bounded(1.0, 0.05, 60)  # seconds between status messages
    record: str = ""  # a file to append every result (JSON lines) to; empty: no recording
    preview: bool = False  # also publish a downscaled frame on img.<stream> (streamer view)
    exam: str = ""  # the exam's id (its keyframes folder's name); empty: the start time, UTC
    control: str = ""  # a loopback endpoint for control requests (streamer exam); empty: none

    def __post_init__(self):
        from streamer.protocol import check_stream_name

        check_stream_name(self.stream)  # the endpoint is checked (loopback unless allowed) on bind
        from streamer.coverage import check_exam_id

        check_exam_id(self.exam)
        _check(bool(self.curve_secret) == bool(self.curve_clients),
               "[publish] CurveZMQ needs both curve_secret and curve_clients")
        _check_bounds(self, "publish")


@dataclass(frozen=True)
class MetricsConfig:
    port: int = bounded(9108, 0, 65535)  # 0: no HTTP endpoint
    host: str = "127.0.0.1"  # another address needs --allow-remote and --insecure (plain HTTP)

    def __post_init__(self):
        _check_bounds(self, "metrics")


@dataclass(frozen=True)
class PipelineConfig:
    # Non-live sources: frames waiting for inference (live: one slot), and up to max_batch of
    # them go in as one batch. Each waiting frame holds its source image (6.2 MB at 1080p BGR)
    # and the prepared queue max(queue_size, max_batch) more: at 16, about 200 MB at 1080p.
    queue_size: int = bounded(2, 1, 16)
    max_batch: int = bounded(4, 1, 16)  # the most waiting frames one model call takes (non-live)
    # threads that call the model side by side, each handing its frames on in the order taken
    # (ONNX Runtime on a CPU only; others take one call at a time): 2 with [model] threads = 1
    # keeps two cores busy on two batches, where one call on two threads leaves both waiting on
    # the slower core; 0: 2 for several streams, else 1
    inference_workers: int = bounded(0, 0, 8)
    # preprocess in the source thread, one hop fewer; off by default: a source that works hard
    # itself (decoding, rendering) then delays it (measured: 30 fps p50 ~10 vs ~6 ms, sim source)
    preprocess_in_source: bool = False
    # the most of one core the background fan searches (find the fan, fit and confirm its
    # sector: ~5 ms each at 1080p) take, every stream together; beyond it each stream's looks
    # come less often (a layout change is still seen at once by the edge watch on every frame)
    fan_search_share: float = bounded(0.25, 0, 1, open_low=True)
    # preprocess in the inference thread, just before the model: one hand-over and one thread
    # per stream fewer; several inference workers preprocess in turn, one while another infers
    preprocess_in_inference: bool = False
    duration_s: float = bounded(0.0, 0, 366 * 86400)  # 0: until interrupted (or the source ends)
    max_frames: int = bounded(0, 0, 10**12)  # stop after this many processed frames (0: no limit)
    # how long stopping waits for the threads (each loop looks at the stop every 50 ms)
    stop_timeout_s: float = bounded(1.0, 0, 60, open_low=True)

    def __post_init__(self):
        _check_bounds(self, "pipeline")


@dataclass(frozen=True)
class Config:
    source: SourceConfig = field(default_factory=SourceConfig)
    model: InferenceConfig = field(default_factory=InferenceConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)
    publish: PublishConfig = field(default_factory=PublishConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)

    def stream_specs(self) -> dict[str, str]:
        """Stream name → source spec: ``[source] streams``, else the one stream."""
        return dict(self.source.streams) or {self.publish.stream: self.source.spec}

    def __post_init__(self):
        from streamer.security import is_local_host

        m, p = self.metrics, self.publish
        if m.port and not is_local_host(m.host):  # metrics are plaintext HTTP: no keys to give
            _check(p.allow_remote and p.insecure,
                   f"[metrics] host {m.host} is not loopback: serving metrics to the network "
                   "needs --allow-remote and, as the endpoint is plaintext HTTP, --insecure")


SECTIONS: dict[str, type] = {f.name: f.default_factory for f in dataclasses.fields(Config)}


def _coerce(where: str, value, hint):
    """TOML value → the field's type (ints for floats allowed; anything else must match)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if type(None) in args:  # Optional[X]
        inner = [a for a in args if a is not type(None)][0]
        return None if value is None else _coerce(where, value, inner)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise UserError(f"{where} must be a list, got {value!r}")
        return tuple(_coerce(where, v, args[0]) for v in value)
    if origin is dict:
        if not isinstance(value, dict):
            raise UserError(f"{where} must be a table, got {value!r}")
        return {k: _coerce(f"{where}.{k}", v, args[1]) for k, v in value.items()}
    expected = origin or hint
    if not isinstance(value, expected) or (expected is not bool and isinstance(value, bool)):
        raise UserError(f"{where} must be {expected.__name__}, got {value!r}")
    return value


def section_values(name: str, values: dict, cls: type) -> dict:
    """A TOML table's values for the dataclass ``cls``, coerced; unknown keys refused."""
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    for key in values:
        if key not in hints:
            raise UserError(f"unknown key {key!r} in section [{name}]; known: {', '.join(known)}")
    return {k: _coerce(f"[{name}] {k}", v, hints[k]) for k, v in values.items()}


def section_from_dict(name: str, values: dict):
    cls = SECTIONS[name]
    return cls(**section_values(name, values, cls))


def config_from_dict(data: dict) -> Config:
    for name, values in data.items():
        if name not in SECTIONS:
            raise UserError(f"unknown section [{name}]; known: {', '.join(SECTIONS)}")
        if not isinstance(values, dict):
            raise UserError(f"[{name}] must be a table of keys, got {values!r}")
    return Config(**{name: section_from_dict(name, values) for name, values in data.items()})


def read_toml(path: str | Path) -> dict:
    """A TOML file's tables; anything that keeps it from parsing is one line naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
                        f"{exc.start}); TOML files are UTF-8") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path} is not valid TOML: {exc}") from None
    except RecursionError:
        raise UserError(f"{path} is not valid TOML: arrays or tables nested too deeply") from None


def load_config(path: str | Path) -> Config:
    data = read_toml(path)
    try:
        return config_from_dict(data)
    except ValueError as exc:
        raise UserError(f"{path}: {exc}") from None


def override(config: Config, **sections: dict) -> Config:
    """``config`` with the given non-None values replaced, e.g. ``override(c, model={"path": p})``."""
    changes = {}
    for name, values in sections.items():
        values = {k: v for k, v in values.items() if v is not None}
        if values:
            current = dataclasses.asdict(getattr(config, name))
            changes[name] = section_from_dict(name, {**current, **values})
    return dataclasses.replace(config, **changes)
