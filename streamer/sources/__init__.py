"""Frame sources behind one interface, chosen by a spec string.

Spec syntax: ``SCHEME[:ITEM,ITEM,...]`` where each item is ``key=value`` except at most one bare
item, the source's target (a path, a device, an endpoint)::

    sim                                  sim:seed=3,fps=25,width=1280,height=720,realtime=0
    clip.avi                             file:clip.avi,realtime=1,loop=1
    capture:0                            capture:/dev/video2,width=1920,height=1080,fps=60,fourcc=MJPG
    zmq:tcp://127.0.0.1:5550             zmq:tcp://127.0.0.1:5550,timeout=5,topic=frames
    dicom:exam.dcm                       dicom:/exams/day1,realtime=1,loop=1

A spec with no known scheme is a video file path (use that form for paths containing commas),
or a DICOM file when it ends in .dcm.
Each entry names where its class lives, so OpenCV capture or pyzmq load only when chosen.
"""

from __future__ import annotations

import importlib
import os
import re

from engines.specs import parse_items
from streamer.errors import UserError
from streamer.sources.base import Pacer, Source

REGISTRY: dict[str, str] = {
    "sim": "streamer.sources.sim_source:SimSource",
    "file": "streamer.sources.video_file_source:VideoFileSource",
    "capture": "streamer.sources.capture_source:CaptureSource",
    "zmq": "streamer.sources.zmq_source:ZmqSource",
    "dicom": "streamer.sources.dicom_source:DicomSource",
}
TARGETS: dict[str, str] = {"file": "path", "capture": "device", "zmq": "endpoint", "dicom": "path"}
USAGE = ("sim[:key=value,...], a video file path, capture:<index|/dev/videoN>[,...], zmq:<endpoint> "
         "or dicom:<file or folder>")
_SCHEME = re.compile(r"^([a-z][a-z0-9_]*)(?::|$)")

__all__ = ["REGISTRY", "Pacer", "Source", "create_source", "open_source", "parse_source_spec",
           "source_class"]


def parse_source_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``(kind, options)`` with option values still as text."""
    if not spec or not spec.strip():
        raise UserError(f"empty source spec; use {USAGE}")
    match = _SCHEME.match(spec)
    if os.path.isfile(spec) and spec.lower().endswith((".dcm", ".dicom")):
        return "dicom", {"path": spec}
    if not match or os.path.isfile(spec):
        return "file", {"path": spec}
    kind = match.group(1)
    if kind not in REGISTRY:
        raise UserError(f"unknown source {kind!r} in {spec!r}; use {USAGE}")
    options = parse_items(spec, spec[len(kind) + 1:], TARGETS.get(kind))
    if kind in TARGETS and TARGETS[kind] not in options:
        raise UserError(f"source spec {spec!r} needs a {TARGETS[kind]}: {kind}:<{TARGETS[kind]}>")
    return kind, options


def source_class(kind: str) -> type[Source]:
    if kind not in REGISTRY:
        raise UserError(f"unknown source {kind!r}; choose one of {sorted(REGISTRY)}")
    module, cls = REGISTRY[kind].split(":")
    return getattr(importlib.import_module(module), cls)


def create_source(spec: str) -> Source:
    """A source object from a spec, validated but not yet opened."""
    kind, options = parse_source_spec(spec)
    return source_class(kind)(options)


def open_source(spec: str) -> Source:
    return create_source(spec).open()
