"""An optional recording: one JSON line per result (the ``det`` message plus its topic)."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path

from streamer.frames import FrameResult
from streamer.protocol import VERSION, result_dict
from streamer.sinks.base import Sink


@dataclass(frozen=True)
class RecordingOptions:
    path: str
    status: bool = False  # also record status messages (lines with "topic": "status.<stream>")

    def __post_init__(self):
        parent = Path(self.path).parent
        if not parent.is_dir():
            raise ValueError(f"recording directory does not exist: {parent}")


class RecordingSink(Sink):
    """Appends to the file; lines are flushed as written, so a crash loses at most one."""

    kind = "record"
    Options = RecordingOptions

    def __init__(self, spec_options: dict | None = None, **options):
        super().__init__(spec_options, **options)
        self._file = None
        self._lock = threading.Lock()
        self._stream = "default"

    def _open(self) -> None:
        self._file = open(self.options.path, "a", encoding="utf-8", buffering=1)

    def _write(self, obj: dict) -> None:
        with self._lock:
            self._file.write(json.dumps(obj, separators=(",", ":")) + "\n")

    def _publish(self, result: FrameResult) -> None:
        self._stream = result.stream
        self._write({"topic": f"det.{result.stream}", **result_dict(result)})

    def _publish_status(self, status: dict) -> None:
        if self.options.status:
            stream = status.get("stream", self._stream)
            self._write({"topic": f"status.{stream}", "v": VERSION, "stream": stream, **status})

    def _close(self) -> None:
        with self._lock:
            self._file.close()
            self._file = None
