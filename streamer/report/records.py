"""A run's ``--record`` file read for a report: JSON lines as streamer/sinks/recording_sink.py
writes them (``det.<stream>`` results, ``status.<stream>`` lines), checked line by line, bounded
(line, file and stream count), and kept as compact columns, one set per stream.

Unknown keys and lines of other topics are tolerated (counted); anything that is not a record is
refused in one line naming the file and the line."""

from __future__ import annotations

import json
import math
import os
import re
import stat
from array import array
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from streamer.errors import UserError

NOMINAL_NS = 33_333_333  # one frame at 30 fps: the step assumed where a record has no other
_STREAM = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class Limits:
    line_bytes: int = 1 << 20  # a result line is about 1 kB: a longer line is not a record's
    file_bytes: int = 2 << 30  # about 2 million results, 18 hours at 30 fps
    streams: int = 16
    classes: int = 64  # regions per stream
    stages: int = 32  # latency_ms keys kept per stream


@dataclass
class StreamRecord:
    """One stream's results, in record order; times in ns, continuous across restarts."""

    name: str
    classes: list[str]
    seq: np.ndarray  # int64 [N]
    t_ns: np.ndarray  # int64 [N]: source time, shifted after a restart to follow on
    run_start: np.ndarray  # bool [N]: the first result of each run in the file
    scores: np.ndarray  # float32 [N, C], NaN where a result lacked the class
    present: np.ndarray  # bool [N, C]
    familiar: np.ndarray  # int8 [N]: 1, 0, -1 unknown (a model without OOD statistics)
    frozen: np.ndarray  # bool [N]
    settled: np.ndarray  # int8 [N]: the fan's settled flag, -1 when the result has no fan
    latency: dict[str, np.ndarray]  # stage -> float64 [N] ms, NaN where missing
    frame_shape: tuple[int, int] | None = None
    mm_per_px: bool = False  # some result carried the scanner's calibration
    duplicates: int = 0  # the same result twice (skipped)
    status: dict = field(default_factory=dict)  # the stream's last status line, if recorded

    @property
    def frames(self) -> int:
        return len(self.seq)

    @property
    def restarts(self) -> int:
        return max(int(self.run_start.sum()) - 1, 0)


@dataclass
class Record:
    path: str
    streams: dict[str, StreamRecord]
    lines: int = 0
    other_topics: dict[str, int] = field(default_factory=dict)  # lines of topics not read
    cut_short: bool = False  # the last line ended without a newline and did not parse
    not_chosen: list[str] = field(default_factory=list)  # streams left out by --stream


def read_record(path: str | Path, stream: str | None = None, limits: Limits = Limits()) -> Record:
    """The record at ``path`` (only ``stream`` when given); UserError in one line otherwise."""
    path = str(path)
    _check_file(path, limits)
    reader = _Reader(path, stream, limits)
    with open(path, "rb") as f:
        number = 0
        while line := f.readline(limits.line_bytes + 1):
            number += 1
            if len(line) > limits.line_bytes:
                raise UserError(f"{path} line {number}: over {_size(limits.line_bytes)}, "
                                f"not a line of a record")
            reader.line(number, line, last=not line.endswith(b"\n"))
    return reader.finish(number)


def _check_file(path: str, limits: Limits) -> None:
    st = os.stat(path)  # FileNotFoundError: one line from the command
    if not stat.S_ISREG(st.st_mode):
        raise UserError(f"{path}: not a regular file (a record is a file of JSON lines)")
    if st.st_size == 0:
        raise UserError(f"{path}: empty, not a record (streamer run --record FILE writes one "
                        f"JSON line per result)")
    if st.st_size > limits.file_bytes:
        raise UserError(f"{path}: {_size(st.st_size)}, over the {_size(limits.file_bytes)} a "
                        f"report reads (split it, or pick a stream with --stream)")


def _size(n: int) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"


class _Reader:
    def __init__(self, path: str, stream: str | None, limits: Limits):
        self.path, self.stream, self.limits = path, stream, limits
        self.columns: dict[str, _Columns] = {}
        self.status: dict[str, dict] = {}
        self.others: dict[str, int] = {}
        self.not_chosen: list[str] = []
        self.cut_short = False

    def line(self, number: int, raw: bytes, last: bool) -> None:
        where = f"{self.path} line {number}"
        if not raw.strip():
            return
        try:
            obj = json.loads(raw.decode("utf-8"))
        except (ValueError, RecursionError) as exc:
            if last:  # a run stopped while writing its last line: the rest still reads
                self.cut_short = True
                return
            reason = "not UTF-8" if isinstance(exc, UnicodeDecodeError) else "not JSON"
            raise UserError(f"{where}: {reason}, not a record (streamer run --record FILE "
                            f"writes one JSON object per line)") from None
        if not isinstance(obj, dict):
            raise UserError(f"{where}: a JSON {type(obj).__name__}, not a record line (an object)")
        topic = obj.get("topic")
        if isinstance(topic, str) and topic.startswith("status."):
            self._status(where, topic, obj)
        elif (isinstance(topic, str) and topic.startswith("det.")) or (
                topic is None and "seq" in obj and "classes" in obj):
            self._det(where, obj)
        elif isinstance(topic, str):
            name = topic.split(".", 1)[0][:32]
            self.others[name] = self.others.get(name, 0) + 1
        else:
            raise UserError(f"{where}: neither a result nor a status line (no topic), not a record")

    def _status(self, where: str, topic: str, obj: dict) -> None:
        name = obj.get("stream", topic.split(".", 1)[1])
        if isinstance(name, str) and _STREAM.match(name) and (self.stream in (None, name)):
            if name in self.status or len(self.status) < self.limits.streams:
                self.status[name] = obj

    def _det(self, where: str, obj: dict) -> None:
        version = obj.get("v", 1)
        if version != 1:
            raise UserError(f"{where}: protocol version {version!r}; this report reads version 1")
        name = obj.get("stream")
        if not isinstance(name, str) or not _STREAM.match(name):
            raise UserError(f"{where}: stream must be 1-64 of [A-Za-z0-9_-], got {name!r}")
        if self.stream is not None and name != self.stream:
            if name not in self.not_chosen and len(self.not_chosen) <= self.limits.streams:
                self.not_chosen.append(name)
            return
        columns = self.columns.get(name)
        if columns is None:
            if len(self.columns) >= self.limits.streams:
                raise UserError(f"{self.path}: more than {self.limits.streams} streams (a report "
                                f"reads at most {self.limits.streams}; pick one with --stream)")
            columns = self.columns[name] = _Columns(name, self.limits)
        columns.add(where, obj)

    def finish(self, lines: int) -> Record:
        if self.stream is not None and not self.columns:
            have = ", ".join(self.not_chosen) or "none"
            raise UserError(f"{self.path} has no results of stream {self.stream!r} (its streams: "
                            f"{have})")
        if not self.columns:
            raise UserError(f"{self.path}: no results (det lines) in {lines} line(s), not a record")
        streams = {name: c.finish(self.status.get(name, {})) for name, c in self.columns.items()}
        return Record(self.path, streams, lines, dict(self.others), self.cut_short, self.not_chosen)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _int(obj: dict, key: str) -> int | None:
    value = obj.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class _Columns:
    """One stream's columns, appended a result at a time (arrays, not dicts: a long record fits)."""

    def __init__(self, name: str, limits: Limits):
        self.name, self.limits = name, limits
        self.n = 0
        self.seq, self.t, self.start = array("q"), array("q"), bytearray()
        self.scores: dict[str, array] = {}
        self.present: dict[str, bytearray] = {}
        self.familiar, self.frozen, self.settled = array("b"), bytearray(), array("b")
        self.latency: dict[str, array] = {}
        self.frame_shape, self.mm_per_px, self.duplicates = None, False, 0
        self.offset, self.last_step = 0, NOMINAL_NS

    def add(self, where: str, obj: dict) -> None:
        seq, t = _int(obj, "seq"), _int(obj, "t_source_ns")
        t = _int(obj, "t_capture_ns") if t is None else t
        if seq is None or seq < 0 or t is None:
            raise UserError(f"{where}: a result needs an integer seq ≥ 0 and t_source_ns")
        classes = obj.get("classes")
        if not isinstance(classes, dict):
            raise UserError(f"{where}: classes must be an object of region -> result")
        if not self._place(seq, t):
            return
        self._classes(where, classes)
        familiar = obj.get("familiar")
        self.familiar.append(-1 if familiar is None else int(bool(familiar)))
        self.frozen.append(obj.get("frozen") is True)
        fan = obj.get("fan")
        settled = fan.get("settled") if isinstance(fan, dict) else None
        self.settled.append(-1 if not isinstance(settled, bool) else int(settled))
        self._latency(obj.get("latency_ms"))
        shape = obj.get("frame_shape")
        if isinstance(shape, list) and len(shape) >= 2 and all(_number(v) for v in shape[:2]):
            self.frame_shape = (int(shape[0]), int(shape[1]))
        self.mm_per_px = self.mm_per_px or isinstance(obj.get("mm_per_px"), list)
        self.n += 1

    def _place(self, seq: int, t: int) -> bool:
        """Append seq and time; False for a result already recorded (skipped). A seq or time that
        goes back is a new run appended to the file: its times follow on from the last."""
        if self.n:
            last_seq, last_t = self.seq[-1], self.t[-1] - self.offset
            if seq == last_seq and t == last_t:
                self.duplicates += 1
                return False
            if seq <= last_seq or t < last_t:
                self.offset = self.t[-1] + self.last_step - t
                self.start.append(1)
            else:
                step = (t - last_t) // (seq - last_seq)
                self.last_step = step if step > 0 else self.last_step
                self.start.append(0)
        else:
            self.start.append(1)
        self.seq.append(seq)
        self.t.append(t + self.offset)
        return True

    def _classes(self, where: str, classes: dict) -> None:
        for name in classes:
            if name not in self.scores:
                if not isinstance(name, str) or not 0 < len(name) <= 64:
                    raise UserError(f"{where}: a region name must be 1-64 characters, got {name!r}")
                if len(self.scores) >= self.limits.classes:
                    raise UserError(f"{where}: more than {self.limits.classes} regions in stream "
                                    f"{self.name!r}")
                self.scores[name] = array("f", [math.nan]) * self.n
                self.present[name] = bytearray(self.n)
        for name, column in self.scores.items():
            c = classes.get(name)
            if c is None:
                column.append(math.nan)
                self.present[name].append(0)
                continue
            score = c.get("score") if isinstance(c, dict) else None
            if not _number(score):
                raise UserError(f"{where}: {name}: score must be a number, got {score!r}")
            column.append(score)
            self.present[name].append(c.get("present") is True)

    def _latency(self, latency) -> None:
        if isinstance(latency, dict):
            for stage in latency:
                if (stage not in self.latency and isinstance(stage, str)
                        and len(self.latency) < self.limits.stages and len(stage) <= 64):
                    self.latency[stage] = array("d", [math.nan]) * self.n
        for stage, column in self.latency.items():
            ms = latency.get(stage) if isinstance(latency, dict) else None
            column.append(float(ms) if _number(ms) else math.nan)

    def finish(self, status: dict) -> StreamRecord:
        names = list(self.scores)
        scores = np.stack([np.frombuffer(self.scores[c], np.float32) for c in names], 1) if names \
            else np.zeros((self.n, 0), np.float32)
        present = np.stack([np.frombuffer(self.present[c], np.uint8) for c in names], 1) \
            .astype(bool) if names else np.zeros((self.n, 0), bool)
        return StreamRecord(
            self.name, names, np.frombuffer(self.seq, np.int64), np.frombuffer(self.t, np.int64),
            np.frombuffer(self.start, np.uint8).astype(bool), scores, present,
            np.frombuffer(self.familiar, np.int8), np.frombuffer(self.frozen, np.uint8).astype(bool),
            np.frombuffer(self.settled, np.int8),
            {k: np.frombuffer(v, np.float64) for k, v in self.latency.items()},
            self.frame_shape, self.mm_per_px, self.duplicates, status)
