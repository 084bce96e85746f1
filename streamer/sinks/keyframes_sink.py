"""Keyframes while the streamer runs: per region the best k frames of the exam, each as the fan
crop (PNG), the crop with the region's map, box and peak drawn (PNG), an entry in the exam's
index.json and a line in its keyframes.jsonl, and for a DICOM source optionally a Secondary
Capture image in the source's study (streamer/keyframes/; docs/exam-summary.md).

``publish`` does O(classes × k) arithmetic and keeps a reference: only a frame that could enter
a region's kept set (streamer.keyframes.select.worth_a_look) is handed on, through a one-result
slot where a newer result replaces one not yet taken (counted ``skipped``); never a wait. The
worker thread compares thumbnails, draws, encodes and writes.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engines.classes import is_region
from streamer.coverage import check_exam_id
from streamer.errors import UserError
from streamer.frames import FrameResult
from streamer.keyframes import dicom_sc
from streamer.keyframes.overlay import fan_crop, region_overlay
from streamer.keyframes.select import (
    DUPLICATE_CORR,
    MIN_GAP_S,
    Candidate,
    Decision,
    RegionBest,
    frame_usable,
    region_quality,
    thumbnail,
    worth_a_look,
)
from streamer.keyframes.store import (
    INDEX_VERSION,
    ExamStore,
    encode_png,
    exam_folder,
    write_png,
)
from streamer.ratelimit import RateLimitedLog
from streamer.sinks.base import Sink

log = logging.getLogger(__name__)
DEFAULT_K = 3
MAX_K = 100
WAKE_S = 0.25  # the worker looks at the closing flag at least this often


@dataclass(frozen=True)
class KeyframesOptions:
    path: str  # DIR: each exam gets its own folder under it
    k: int = DEFAULT_K  # frames kept per region
    exam: str = ""  # the exam's id, its folder's name; empty: the start time, UTC
    dicom: bool = False  # also each as a DICOM Secondary Capture in the source's study
    source: str = ""  # the run's source spec: its kind is recorded, dicom=1 reads its study
    stream: str = "main"  # the stream's name, recorded in the index
    min_gap_s: float = MIN_GAP_S  # kept frames of a region at least this far apart in time
    duplicate_corr: float = DUPLICATE_CORR  # thumbnails correlating above this are one view

    def __post_init__(self):
        if not str(self.path).strip():
            raise UserError("keyframes needs a folder: keyframes:DIR")
        if not 1 <= self.k <= MAX_K:
            raise UserError(f"keyframes k must be in 1..{MAX_K}, got {self.k}")
        if not self.min_gap_s >= 0 or not 0 < self.duplicate_corr <= 1:
            raise UserError(f"keyframes min_gap_s must be ≥ 0 and duplicate_corr in (0, 1], got "
                            f"{self.min_gap_s} and {self.duplicate_corr}")
        check_exam_id(self.exam)


def _source_kind(spec: str) -> str | None:
    if not spec:
        return None
    from streamer.sources import parse_source_spec

    return parse_source_spec(spec)[0]


def _folder_name(region: str) -> str:
    """A region's name as a folder name (a model's class names are free text)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", region).strip(".") or "region"


class KeyframesSink(Sink):
    kind = "keyframes"
    Options = KeyframesOptions

    def __init__(self, spec_options: dict | None = None, *,
                 threshold_for: Callable[[str], float] | None = None,
                 now: Callable[[], float] = time.time, **options):
        """``threshold_for``: a class's decision threshold (the postprocess config's);
        ``now``: the wall clock that names an exam without an id."""
        super().__init__(spec_options, **options)
        self.threshold_for = threshold_for or (lambda name: 0.5)
        self._now = now
        self.handed = self.skipped = self.kept = self.replaced = self.refused = self.failed = 0
        self.write_s = 0.0  # the worker's time writing kept frames
        self.folder: Path | None = None
        self.store: ExamStore | None = None
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._busy = False  # the worker is considering a result
        self._pending: FrameResult | None = None
        self._wake, self._closing = threading.Event(), threading.Event()
        self._views: dict[str, tuple] = {}  # region → RegionBest.view(), for publish's pre-filter
        self._thresholds: dict[str, float] = {}
        self._regions: tuple[str, ...] | None = None  # the model's regions, from the first result
        self._started_ns: int | None = None
        self._exam_seen: str | None = None  # the exam the results said last (publish's side)
        self._exam_kept: str | None = None  # ... and the worker's: a change starts a new folder
        self._best: dict[str, RegionBest] = {}
        self._records: dict[tuple[str, int], dict] = {}  # (region, id of a kept Candidate) → record
        self._study: dicom_sc.Study | None = None
        self._series_uid = ""
        self._instances = 0
        self._errors = RateLimitedLog(logger=log)
        self._thread: threading.Thread | None = None

    # -- opening -----------------------------------------------------------------------------
    def _open(self) -> None:
        o = self.options
        root = Path(o.path)
        if root.exists() and not root.is_dir():
            raise UserError(f"keyframes folder {root} is a file, not a folder")
        kind = _source_kind(o.source)
        if o.dicom and kind != "dicom":
            raise UserError(f"keyframes dicom=1 (--keyframes-dicom) needs a dicom: source (its "
                            f"study), not {o.source or 'none'!r}")
        if kind == "dicom":
            from streamer.sources import parse_source_spec

            self._study = dicom_sc.read_study(parse_source_spec(o.source)[1]["path"], copy=o.dicom)
            self._series_uid = dicom_sc.new_uid() if o.dicom else ""
        self.folder = exam_folder(root, o.exam, self._now)
        header = {"v": INDEX_VERSION, "exam": self.folder.name, "stream": o.stream, "k": o.k,
                  "started_t_source_ns": None,
                  "source": {"kind": kind, "study_uid": self._study.uid if self._study else None}}
        self.store = ExamStore(self.folder, header)
        self.store.write_index()
        self._thread = threading.Thread(target=self._work, name="keyframes", daemon=True)
        self._thread.start()
        log.info("keyframes in %s (best %d per region%s)", self.folder, o.k,
                 ", DICOM Secondary Capture" if o.dicom else "")

    # -- the pipeline's side: arithmetic and a reference, never a wait -------------------------
    def _publish(self, result: FrameResult) -> None:
        new_exam = result.exam is not None and result.exam != self._exam_seen
        if new_exam:  # the next exam's first frames are worth a look whatever the last one kept
            self._exam_seen, self._views = result.exam, {}
        if self._regions is None:  # the first result starts the index, whatever it shows
            self._started_ns = _t_ns(result)
            self._regions = tuple(c.name for c in result.classes if is_region(c.name))
        elif not new_exam and not self._worth_a_look(result):
            return
        with self._lock:
            if self._pending is not None:
                self.skipped += 1
            self._pending = result
        self.handed += 1
        self._wake.set()

    def _threshold(self, name: str) -> float:
        t = self._thresholds.get(name)
        if t is None:
            t = self._thresholds[name] = float(self.threshold_for(name) or 0.5)
        return t

    def _worth_a_look(self, result: FrameResult) -> bool:
        if not frame_usable(result):
            return False
        t, o = _t_ns(result), self.options
        gap = int(o.min_gap_s * 1e9)
        for c in result.classes:
            q = region_quality(c, result.crop, self._threshold(c.name))
            if q is not None and worth_a_look(self._views.get(c.name, ()), o.k, t, q, gap):
                return True
        return False

    # -- the worker ----------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            self._wake.wait(WAKE_S)
            self._wake.clear()
            if self._regions is not None and self.store.header["started_t_source_ns"] is None:
                self._start_index()
            with self._lock:
                item, self._pending = self._pending, None
                self._busy = item is not None
            if item is not None:
                try:
                    self._consider(item)
                except Exception as exc:  # a frame it cannot draw must not stop the keyframes
                    self.failed += 1
                    self._errors(logging.ERROR, "keyframes could not keep frame %s (%d failures "
                                 "so far): %s", item.seq, self.failed, exc, exc_info=True)
                finally:
                    with self._idle:
                        self._busy = False
                        self._idle.notify_all()
            elif self._closing.is_set():
                return

    def wait_idle(self, timeout: float) -> bool:
        """Until the worker has dealt with every result handed to it (False: not within timeout)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending is None and not self._busy, timeout)

    def _start_index(self) -> None:
        self.store.header["started_t_source_ns"] = self._started_ns
        for region in self._regions:
            self.store.regions.setdefault(region, [])
        self._write(self.store.write_index)

    def _consider(self, result: FrameResult) -> None:
        if result.exam is not None and result.exam != self._exam_kept:
            if self._exam_kept is not None:  # the first exam is the one the folder was opened for
                self._write(self._new_exam, result.exam, _t_ns(result))
            self._exam_kept = result.exam
        if not frame_usable(result) or self._regions is None:
            return
        t, thumb, o = _t_ns(result), None, self.options
        shared: dict = {}  # the crop and its PNG, made once for every region that keeps it
        for i, c in enumerate(result.classes):
            q = region_quality(c, result.crop, self._threshold(c.name))
            if q is None or c.name not in self._regions:
                continue
            if thumb is None:
                thumb = thumbnail(result.image, result.crop)
            best = self._best.setdefault(c.name, RegionBest(o.k, o.min_gap_s, o.duplicate_corr))
            decision = best.decide(Candidate(c.name, result.seq, t, q, thumb))
            if decision is None:
                self.refused += 1
                continue
            started = time.perf_counter()
            self._write(self._keep, result, i, best, decision, shared)
            self.write_s += time.perf_counter() - started

    def _new_exam(self, exam: str, t_ns: int) -> None:
        """A new exam (told, or the probe back after a while without a fan): its own folder, its
        own best frames; the last exam's folder stays as it was."""
        try:
            self.folder = exam_folder(Path(self.options.path), exam, self._now)
        except UserError as exc:  # an id used before: a start-time folder rather than none
            log.warning("keyframes: %s; using a start-time folder", exc)
            self.folder = exam_folder(Path(self.options.path), "", self._now)
        header = {**self.store.header, "exam": self.folder.name, "started_t_source_ns": t_ns}
        self.store = ExamStore(self.folder, header)
        self._best, self._records, self._started_ns = {}, {}, t_ns
        self._series_uid = dicom_sc.new_uid() if self.options.dicom else ""
        for region in self._regions or ():
            self.store.regions.setdefault(region, [])
        self.store.write_index()
        log.info("keyframes: exam %s in %s", exam, self.folder)

    def _write(self, step, *args) -> None:
        """A step that writes; a failure (a full disk, a folder gone) is counted and logged."""
        try:
            step(*args)
        except OSError as exc:
            self.failed += 1
            self._errors(logging.WARNING, "keyframes could not write in %s (%d so far): %s",
                         self.folder, self.failed, exc)

    def _keep(self, result: FrameResult, index: int, best: RegionBest, d: Decision,
              shared: dict) -> None:
        """Files first, then the index, then the replaced files go, then the event lines."""
        region, store = d.keep.region, self.store
        record = self._record(result, index, region)
        new_files = store.files_of(record)
        before = store.regions.get(region, [])
        try:
            folder = store.region_folder(_folder_name(region))
            if not shared:
                shared["crop"] = crop = fan_crop(result)
                shared["png"] = encode_png(crop)
            crop = shared["crop"]
            write_png(new_files[0], shared["png"])
            write_png(new_files[1], region_overlay(result, index))
            if record["dicom"]:
                self._instances += 1
                c = result.classes[index]
                dicom_sc.write_secondary_capture(
                    folder / Path(record["dicom"]).name, crop, self._study, self._series_uid,
                    self._instances, f"sonostream keyframe: {region}, score {c.score:.2f}, "
                                     f"frame {result.seq}")
            kept = best.after(d)
            self._records[(region, id(d.keep))] = record
            store.regions[region] = [self._records[(region, id(x))] for x in kept]
            store.write_index()
        except BaseException:
            store.regions[region] = before
            self._records.pop((region, id(d.keep)), None)
            for path in new_files:
                path.unlink(missing_ok=True)
            raise
        best.commit(d)
        self._views[region] = best.view()
        dropped = [self._records.pop((region, id(x))) for x in d.drop]
        for r in dropped:  # before the log line: a full disk must not leave more than k
            store.remove_files(r)
        self.kept += 1
        self.replaced += len(dropped)
        store.log(*({"event": "replaced", "region": region, **r, "by": result.seq} for r in dropped),
                  {"event": "kept", "region": region, **record})

    def _record(self, result: FrameResult, index: int, region: str) -> dict:
        c, folder = result.classes[index], _folder_name(region)
        used = {r["crop"] for r in self.store.regions.get(region, [])}
        stem, n = str(result.seq), 1
        while f"{folder}/{stem}.png" in used:  # a seq seen before (a sender that restarted)
            n += 1
            stem = f"{result.seq}-{n}"
        return {"seq": int(result.seq), "t_s": round((_t_ns(result) - self._started_ns) / 1e9, 3),
                "t_source_ns": result.t_source_ns, "score": round(float(c.score), 4),
                "scores": {x.name: round(float(x.score), 4) for x in result.classes},
                "ood": None if result.ood is None else round(float(result.ood), 4),
                "peak": [int(v) for v in c.peak],
                "box": None if c.box is None else [int(round(v)) for v in c.box],
                "mm_per_px": None if result.mm_per_px is None else [float(v) for v in result.mm_per_px],
                "crop": f"{folder}/{stem}.png", "overlay": f"{folder}/{stem}_overlay.png",
                "dicom": f"{folder}/{stem}.dcm" if self.options.dicom else None}

    # -- closing ------------------------------------------------------------------------------
    def _close(self) -> None:
        self._closing.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10.0)
            if self._thread.is_alive():
                log.warning("keyframes: the writer did not finish within 10 s; %s may lack the "
                            "last kept frame", self.folder)

    def describe(self) -> dict:
        return {**super().describe(), "folder": str(self.folder) if self.folder else None,
                "handed": self.handed, "skipped": self.skipped, "kept": self.kept,
                "replaced": self.replaced, "refused": self.refused, "failed": self.failed,
                "write_ms_mean": round(1e3 * self.write_s / self.kept, 2) if self.kept else None}


def _t_ns(result: FrameResult) -> int:
    """The frame's time on the source's clock (the capture stamp for a source without one)."""
    return result.t_source_ns if result.t_source_ns is not None else result.timing.capture


# -- how streamer run asks for it ---------------------------------------------------------------
def run_context(config) -> dict:
    """What the sink learns from the run's config: the source (its kind; its study for dicom=1),
    the stream's name and the decision thresholds."""
    return {"source": config.source.spec, "stream": config.publish.stream,
            "threshold_for": config.postprocess.threshold_for}


def keyframes_request(args, config) -> tuple[str, dict] | None:
    """The sink ``streamer run --keyframes DIR [--keyframes-k N] [--keyframes-dicom] [--exam ID]``
    asks for, as (kind, options) for run's open_sinks; None without --keyframes."""
    folder = getattr(args, "keyframes", None)
    if folder is None:
        return None
    options = {"path": folder, "dicom": bool(getattr(args, "keyframes_dicom", False)),
               "exam": getattr(args, "exam", None) or ""}
    if getattr(args, "keyframes_k", None) is not None:
        options["k"] = args.keyframes_k
    return "keyframes", {**run_context(config), **options}


def spec_request(spec: str, config) -> tuple[str, dict]:
    """The same from a sink spec, ``keyframes:DIR[,k=3,exam=ID,dicom=1]``."""
    from streamer.sinks import parse_sink_spec

    kind, options = parse_sink_spec(spec)
    if kind != "keyframes":
        raise UserError(f"not a keyframes sink spec: {spec!r}")
    return kind, {**run_context(config), **options}
