"""Records and keyframes folders for the report tests: synthetic ones with exact timing, and a
keyframes folder made from a real record and the simulator's own frames."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

CLASSES = ("head", "spine", "thorax", "abdomen", "limbs", "placenta")
FPS = 30


def t_ns(i: int, fps: int = FPS) -> int:
    """Frame i's source time at ``fps``: whole ns, so intervals are 33,333,333 or ..334."""
    return round(i * 1_000_000_000 / fps)


def det(seq: int, t: int | None = None, stream: str = "main", present=(), scores=None,
        familiar=True, frozen=False, settled=True, **extra) -> dict:
    """One result line as the recording sink writes it."""
    scores = scores or {}
    classes = {c: {"score": scores.get(c, 0.9 if c in present else 0.1), "present": c in present,
                   "peak": [40, 30], "box": [30, 20, 50, 40]} for c in CLASSES}
    return {"topic": f"det.{stream}", "v": 1, "stream": stream, "seq": seq,
            "t_source_ns": t_ns(seq) if t is None else t, "t_capture_ns": 0,
            "frame_shape": [120, 160], "classes": classes,
            "latency_ms": {"capture_to_publish": 20.0 + seq % 10, "inference": 8.0},
            "ood": 0.3, "familiar": familiar,
            "fan": {"mode": "sector", "fit": None, "settled": settled, "rect": [10, 10, 140, 100]},
            "frozen": frozen, "doppler": False, **extra}


def write_lines(path: Path, objs) -> Path:
    path.write_text("".join(json.dumps(o) + "\n" for o in objs))
    return path


def png(path: Path, width: int = 64, height: int = 48, value: int = 128) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.full((height, width, 3), value, np.uint8)
    cv2.circle(image, (width // 2, height // 2), min(width, height) // 3, (0, 160, 230), -1)
    cv2.imwrite(str(path), image)
    return path.name


def index(folder: Path, exam: str, stream: str = "main", regions: dict | None = None,
          started: int = 0) -> Path:
    """DIR/<exam>/index.json as the keyframes sink writes it."""
    d = folder / exam
    d.mkdir(parents=True, exist_ok=True)
    doc = {"v": 1, "exam": exam, "stream": stream, "k": 3, "started_t_source_ns": started,
           "source": {"kind": "sim", "study_uid": None}, "regions": regions or {}}
    (d / "index.json").write_text(json.dumps(doc))
    return d


def entry(seq: int, crop: str | None, overlay: str | None, score: float = 0.97) -> dict:
    return {"seq": seq, "t_s": seq / FPS, "t_source_ns": t_ns(seq), "score": score,
            "scores": {"head": score}, "ood": 0.21, "peak": [40, 30], "box": [30, 20, 50, 40],
            "mm_per_px": None, "crop": crop, "overlay": overlay, "dicom": None}


def keyframes_from_record(record: Path, folder: Path, exam: str, sim: dict, k: int = 3) -> Path:
    """A keyframes folder for a record of ``streamer run --source sim:...``: each region's k best
    present results, their frames re-rendered by the simulator, cropped to the fan, boxed."""
    from engines.simulator import LiveFeed
    from streamer.sinks.viewer_render import class_colour, colour_rgb

    lines = [json.loads(x) for x in record.read_text().splitlines()]
    lines = [x for x in lines if x.get("topic", "").startswith("det.")]
    feed, t0 = LiveFeed(**sim), lines[0]["t_source_ns"]
    regions = {}
    for i, name in enumerate(lines[0]["classes"]):
        best = sorted((x for x in lines if x["classes"][name]["present"]),
                      key=lambda x: -x["classes"][name]["score"])[:k]
        regions[name] = []
        for x in best:
            c = x["classes"][name]
            fx, fy, fw, fh = x["fan"]["rect"]
            screen = feed.frame_at(x["seq"]).image
            crop = screen[fy:fy + fh, fx:fx + fw].copy()
            overlay = crop.copy()
            b, g, r = colour_rgb(class_colour(name, i))[::-1]
            x0, y0, x1, y1 = c["box"]
            cv2.rectangle(overlay, (x0 - fx, y0 - fy), (x1 - fx, y1 - fy), (b, g, r), 2)
            cv2.circle(overlay, (c["peak"][0] - fx, c["peak"][1] - fy), 5, (b, g, r), -1)
            d = folder / exam / name
            d.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(d / f"{x['seq']}.png"), crop)
            cv2.imwrite(str(d / f"{x['seq']}_overlay.png"), overlay)
            regions[name].append({
                "seq": x["seq"], "t_s": (x["t_source_ns"] - t0) / 1e9,
                "t_source_ns": x["t_source_ns"], "score": c["score"],
                "scores": {n: v["score"] for n, v in x["classes"].items()}, "ood": x["ood"],
                "peak": c["peak"], "box": c["box"], "mm_per_px": None,
                "crop": f"{name}/{x['seq']}.png", "overlay": f"{name}/{x['seq']}_overlay.png",
                "dicom": None})
    return index(folder, exam, lines[0]["stream"], regions, started=t0)
