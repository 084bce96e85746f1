"""Result sinks behind one interface, chosen by a spec string (``SCHEME:TARGET[,key=value...]``)::

    zmq                                   (PUB on tcp://127.0.0.1:5556)
    zmq:tcp://127.0.0.1:6000,maps=1
    record:results.jsonl,status=1
    view:8090                             (live viewer page on http://127.0.0.1:8090/)
    igtl:18944                            (OpenIGTLink server for 3D Slicer / PLUS)
    keyframes:exams,k=3,dicom=0           (the best k frames per region, under exams/<exam>/)

Each entry names where its class lives; adding a sink is one new file plus one line here.
"""

from __future__ import annotations

import importlib

from engines.specs import parse_items
from streamer.sinks.base import Sink

REGISTRY: dict[str, str] = {
    "zmq": "streamer.sinks.zmq_sink:ZmqSink",
    "record": "streamer.sinks.recording_sink:RecordingSink",
    "view": "streamer.sinks.viewer_sink:ViewerSink",
    "igtl": "streamer.sinks.igtl_sink:IgtlSink",
    "keyframes": "streamer.sinks.keyframes_sink:KeyframesSink",
}
TARGETS: dict[str, str] = {"zmq": "endpoint", "record": "path", "view": "port", "igtl": "port",
                           "keyframes": "path"}

__all__ = ["REGISTRY", "Sink", "create_sink", "parse_sink_spec", "sink_class"]


def parse_sink_spec(spec: str) -> tuple[str, dict[str, str]]:
    kind, _, rest = spec.partition(":")
    if kind not in REGISTRY:
        raise ValueError(f"unknown sink {kind!r} in {spec!r}; choose one of {sorted(REGISTRY)}")
    return kind, parse_items(spec, rest, TARGETS.get(kind))


def sink_class(kind: str) -> type[Sink]:
    if kind not in REGISTRY:
        raise ValueError(f"unknown sink {kind!r}; choose one of {sorted(REGISTRY)}")
    module, cls = REGISTRY[kind].split(":")
    return getattr(importlib.import_module(module), cls)


def create_sink(spec: str, **options) -> Sink:
    """A sink from a spec (keywords override spec options), not yet opened."""
    kind, parsed = parse_sink_spec(spec)
    return sink_class(kind)({**parsed, **options})
