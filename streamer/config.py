"""`streamer run` configuration: frozen dataclasses, one section per stage, loaded from TOML.

Unknown sections and keys are refused with one error naming them; each section validates itself
in ``__post_init__`` so a bad value fails at start, never mid-stream. CLI flags override the file
through :func:`override`.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path

from engines.backends import REGISTRY
from engines.model_info import PRECISIONS, REPRESENTATIONS
from streamer.errors import UserError
from streamer.protocol import DEFAULT_ENDPOINT

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise UserError(message)


@dataclass(frozen=True)
class SourceConfig:
    spec: str = "sim"
    read_timeout_s: float = 0.1  # how long one read may wait (bounds the stop latency)
    retry_initial_s: float = 0.5  # first wait before reopening a lost live source
    retry_max_s: float = 10.0  # the exponential backoff's ceiling

    def __post_init__(self):
        _check(bool(self.spec.strip()), "[source] spec must not be empty")
        _check(0 < self.read_timeout_s <= 1.0, "[source] read_timeout_s must be in (0, 1]")
        _check(0 < self.retry_initial_s <= self.retry_max_s,
               "[source] retry_initial_s must be > 0 and ≤ retry_max_s")


@dataclass(frozen=True)
class InferenceConfig:
    """The [model] section: which model runs where (not the network's own config, which is
    engines.model.ModelConfig)."""

    path: str = ""  # empty: the bundled default model
    backend: str = "onnxruntime"
    device: str = "cpu"
    precision: str = "fp32"
    threads: int = 0  # 0: the runtime's default
    # ONNX Runtime's worker threads spin between calls: at a live frame rate each call then starts
    # warm (benchmarks/paced_model.py), for some CPU spent spinning
    spin: bool = False
    server: str = ""  # backend "remote": the v2 inference server, grpc://HOST:PORT
    remote_model: str = ""  # the model's name on that server (empty: sonostream)

    def __post_init__(self):
        _check(self.threads >= 0, "[model] threads must be ≥ 0")
        _check(self.backend != "remote" or bool(self.server),
               "[model] backend 'remote' needs server = grpc://HOST:PORT (--server)")
        _check(self.backend in REGISTRY,
               f"[model] backend must be one of {', '.join(sorted(REGISTRY))}, got {self.backend!r}")
        _check(self.precision in PRECISIONS,
               f"[model] precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")


@dataclass(frozen=True)
class PreprocessConfig:
    mode: str = "auto"  # auto: find the fan; roi: the configured rectangle; full: the whole frame
    roi: tuple[int, int, int, int] | None = None  # x, y, w, h in source pixels (mode "roi")
    # a scanner profile's fixed sector with its roi (streamer fit-screen writes both): apex x, y
    # in source pixels, radii (px), beam angles (degrees from straight down, + towards +x)
    sector: tuple[float, float, float, float, float, float] | None = None
    redetect_every: int = 150  # frames between fan re-detections (0: detect once)
    threshold: int = 8  # grey levels above the screen background that count as fan
    detect_scale: int = 4  # detection runs on the frame shrunk by this factor, then refines
    # what the model is fed: "sector" (the fan crop), "polar" (the sector resampled to beam
    # space: depth down, angle across), or "model": as the model was trained (its metadata)
    representation: str = "model"

    def __post_init__(self):
        if self.roi is not None:
            object.__setattr__(self, "roi", tuple(int(v) for v in self.roi))
            _check(len(self.roi) == 4 and self.roi[0] >= 0 and self.roi[1] >= 0
                   and self.roi[2] > 0 and self.roi[3] > 0,
                   "[preprocess] roi must be [x, y, w, h] with x, y ≥ 0 and w, h > 0")
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
        _check(self.redetect_every >= 0, "[preprocess] redetect_every must be ≥ 0")
        _check(0 < self.threshold < 255, "[preprocess] threshold must be in 1..254")
        _check(1 <= self.detect_scale <= 8, "[preprocess] detect_scale must be in 1..8")
        _check(self.representation in ("model", *REPRESENTATIONS),
               "[preprocess] representation must be model, sector or polar")


    def sector_geometry(self):
        """The configured sector relative to the roi (None without one)."""
        import math

        from engines.polar import SectorGeometry

        if self.sector is None:
            return None
        ax, ay, r0, r1, a0, a1 = self.sector
        return SectorGeometry((ax - self.roi[0], ay - self.roi[1]), r0, r1, math.radians(a0),
                              math.radians(a1))


@dataclass(frozen=True)
class PostprocessConfig:
    threshold: float = 0.5  # default per-class decision threshold (the "on" threshold)
    thresholds: dict[str, float] = field(default_factory=dict)  # per-class overrides
    smoothing: float = 0.0  # EMA weight of the past (0: no smoothing; 0.7: strong)
    hysteresis: float = 0.0  # a present class turns off below threshold - hysteresis
    box_fraction: float = 0.5  # box = the map's component above this fraction of its peak
    maps: bool = True  # publish uint8 class maps

    def __post_init__(self):
        object.__setattr__(self, "thresholds", {str(k): float(v) for k, v in self.thresholds.items()})
        for name, t in {"threshold": self.threshold, **self.thresholds}.items():
            _check(0.0 < t < 1.0, f"[postprocess] threshold for {name} must be in (0, 1), got {t}")
        _check(0.0 <= self.smoothing < 1.0, "[postprocess] smoothing must be in [0, 1)")
        _check(0.0 <= self.hysteresis < self.threshold, "[postprocess] hysteresis must be in [0, threshold)")
        _check(0.0 < self.box_fraction < 1.0, "[postprocess] box_fraction must be in (0, 1)")

    def threshold_for(self, name: str) -> float:
        return self.thresholds.get(name, self.threshold)


@dataclass(frozen=True)
class PublishConfig:
    endpoint: str = DEFAULT_ENDPOINT  # empty: publish nowhere (metrics only)
    allow_remote: bool = False  # frames are patient data: bind to loopback unless told otherwise
    curve_secret: str = ""  # CurveZMQ: the publisher's secret key file (streamer keys)
    curve_clients: str = ""  # CurveZMQ: folder of the client public keys allowed to subscribe
    insecure: bool = False  # remote without CurveZMQ (plaintext patient data; logs a warning)
    stream: str = "main"
    status_interval_s: float = 1.0
    record: str = ""  # a file to append every result (JSON lines) to; empty: no recording
    preview: bool = False  # also publish a downscaled frame on img.<stream> (streamer view)

    def __post_init__(self):
        from streamer.protocol import check_stream_name

        check_stream_name(self.stream)  # the endpoint is checked (loopback unless allowed) on bind
        _check(bool(self.curve_secret) == bool(self.curve_clients),
               "[publish] CurveZMQ needs both curve_secret and curve_clients")
        _check(0.05 <= self.status_interval_s <= 60, "[publish] status_interval_s must be in [0.05, 60]")


@dataclass(frozen=True)
class MetricsConfig:
    port: int = 9108  # 0: no HTTP endpoint
    host: str = "127.0.0.1"

    def __post_init__(self):
        _check(0 <= self.port <= 65535, f"[metrics] port must be in 0..65535, got {self.port}")


@dataclass(frozen=True)
class PipelineConfig:
    queue_size: int = 2  # non-live sources: frames waiting for inference (live: one slot)
    publish_queue_size: int = 8  # unused since publishing runs in the inference thread
    max_batch: int = 4  # non-live sources: frames waiting for inference go in as one batch, up to this
    # preprocess in the source thread, one hop fewer; off by default: a source that works hard
    # itself (decoding, rendering) then delays it (measured: 30 fps p50 ~10 vs ~6 ms, sim source)
    preprocess_in_source: bool = False
    duration_s: float = 0.0  # 0: until interrupted (or the source ends)
    max_frames: int = 0  # stop after this many processed frames (0: no limit)
    stop_timeout_s: float = 1.0

    def __post_init__(self):
        _check(self.queue_size >= 1 and self.publish_queue_size >= 1, "[pipeline] queue sizes must be ≥ 1")
        _check(self.duration_s >= 0 and self.max_frames >= 0,
               "[pipeline] duration_s and max_frames must be ≥ 0")
        _check(self.stop_timeout_s > 0, "[pipeline] stop_timeout_s must be > 0")
        _check(self.max_batch >= 1, "[pipeline] max_batch must be ≥ 1")


@dataclass(frozen=True)
class Config:
    source: SourceConfig = field(default_factory=SourceConfig)
    model: InferenceConfig = field(default_factory=InferenceConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)
    publish: PublishConfig = field(default_factory=PublishConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)

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
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path} is not valid TOML: {exc}") from None


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
