"""The naive baseline: PyTorch eager on one thread, frame by frame, everything in one loop —
simulator frame (pre-rendered, replayed) → crop the fan (the simulator's own ROI), grey, resize, scale → infer → result
JSON → ZMQ PUB on loopback. Falls back to ONNX Runtime on one thread when no checkpoint exists."""

from __future__ import annotations

import json
import time

import cv2
import numpy as np

from streamer.bench.plan import BenchPlan
from streamer.bench.stats import CpuMeter, RssMeter, rate, summarise_ms

STAGES = ("capture_to_publish", "preprocess", "inference", "postprocess", "publish")


class _Engine:
    """The model as a naive script would call it."""

    def __init__(self, plan: BenchPlan):
        from engines.input_recipe import InputRecipe
        from engines.model_info import ModelInfo

        if plan.checkpoint is not None:
            import torch

            from engines.checkpoint import load_checkpoint

            self.torch = torch
            self.model = load_checkpoint(plan.checkpoint).eval()
            self.model.set_proposal_mode("unrolled")
            self.name, self.classes = "torch eager fp32, 1 thread", self.model.cfg.classes
            self.size = self.model.cfg.input_size
            self.representation = self.model.cfg.representation
            self.recipe = InputRecipe.from_json(self.model.cfg.extra.get("recipe"))
        else:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = opts.inter_op_num_threads = 1
            self.session = ort.InferenceSession(str(plan.onnx), opts, providers=["CPUExecutionProvider"])
            self.input = self.session.get_inputs()[0].name
            info = ModelInfo.from_onnx(plan.onnx)
            self.torch, self.classes, self.size = None, info.classes, info.input_size
            self.representation, self.recipe = info.representation, info.recipe
            self.name = "onnxruntime fp32, 1 thread (no checkpoint for torch eager)"

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.torch is None:
            return tuple(self.session.run(["scores", "maps"], {self.input: x}))
        with self.torch.no_grad():
            scores, maps = self.model(self.torch.from_numpy(x))
        return scores.numpy(), maps.numpy()


def _result_json(seq: int, t_capture: int, scores: np.ndarray, maps: np.ndarray, roi, classes) -> bytes:
    x, y, w, h = roi
    probs = 1 / (1 + np.exp(-scores[0]))
    out = {}
    for i, name in enumerate(classes):
        r, c = np.unravel_index(int(np.argmax(maps[0, i])), maps.shape[2:])
        peak = [int(x + (c + 0.5) * w / maps.shape[3]), int(y + (r + 0.5) * h / maps.shape[2])]
        out[name] = {"score": float(probs[i]), "present": bool(probs[i] > 0.5), "peak": peak}
    return json.dumps({"v": 1, "seq": seq, "t_capture_ns": t_capture, "classes": out}).encode()


def to_model_input(grey: np.ndarray, engine, roi) -> np.ndarray:
    """The fan crop as the model was trained on it: resized, or resampled to polar form once the
    sector is known (fitted as the pipeline does)."""
    if engine.representation == "polar":
        if not hasattr(engine, "fitter"):
            from streamer.fan import SectorFitter

            engine.fitter = SectorFitter(engine.size, 8, recipe=engine.recipe)
        polar_map = engine.fitter(tuple(roi), grey)
        if polar_map is not None:
            return polar_map.to_polar(grey)
    return cv2.resize(grey, (engine.size, engine.size), interpolation=cv2.INTER_AREA)


def _loop(feed, engine, sock, plan: BenchPlan, tick) -> tuple[dict, list[float]]:
    stages = {s: [] for s in STAGES}
    sent_at = []
    start = time.perf_counter()
    seq = 0
    while not plan.enough(max(0, seq - plan.warmup), time.perf_counter() - start):
        screen = feed.next()
        t0 = time.monotonic_ns()
        x, y, w, h = screen.fan_roi
        grey = cv2.cvtColor(screen.image[y : y + h, x : x + w], cv2.COLOR_BGR2GRAY)
        small = to_model_input(grey, engine, screen.fan_roi)
        tensor = (small.astype(np.float32) / 255.0)[None, None]
        t1 = time.monotonic_ns()
        scores, maps = engine(tensor)
        t2 = time.monotonic_ns()
        message = _result_json(seq, t0, scores, maps, screen.fan_roi, engine.classes)
        t3 = time.monotonic_ns()
        sock.send_multipart([b"det.baseline", message])
        t4 = time.monotonic_ns()
        if seq >= plan.warmup:
            for stage, a, b in zip(STAGES, (t0, t0, t1, t2, t3), (t4, t1, t2, t3, t4), strict=True):
                stages[stage].append((b - a) / 1e9)
            sent_at.append(t4 / 1e9)
            tick()
        seq += 1
        if seq == plan.warmup:
            start = time.perf_counter()
    return stages, sent_at


def run_baseline(plan: BenchPlan, tick=lambda: None) -> dict:
    """Latency per stage and frames/s of the one-loop, one-thread baseline."""
    import zmq

    from engines.simulator import LiveFeed, ReplayFeed
    from streamer.bench.end_to_end import REPLAY_FRAMES
    from streamer.sinks.zmq_sink import bind_publisher

    rss = RssMeter()
    torch_threads = _set_torch_threads(1)
    sock = bind_publisher("tcp://127.0.0.1:*")
    try:
        engine = _Engine(plan)
        feed = ReplayFeed(LiveFeed(seed=0, fps=30.0, width=plan.width, height=plan.height),
                          REPLAY_FRAMES)
        with CpuMeter() as cpu:
            stages, sent_at = _loop(feed, engine, sock, plan, tick)
    finally:
        sock.close(linger=0)
        _set_torch_threads(torch_threads)
    return {
        "engine": engine.name, "threads": 1, "frames": len(sent_at),
        "source": f"engines.simulator {plan.width}x{plan.height}, {REPLAY_FRAMES} frames rendered "
                  "once and replayed (as the pipeline's saturation run)",
        "latency_ms": {s: summarise_ms(v) for s, v in stages.items()},
        "latency_excludes_first": plan.warmup,
        "throughput_fps": round(rate(sent_at), 2),
        "cpu": cpu.as_dict(), **rss.as_dict(), "zmq": zmq.zmq_version(),
    }


def _set_torch_threads(n: int | None) -> int | None:
    """Set torch's intra-op threads (when torch is there); the previous setting."""
    try:
        import torch
    except ImportError:
        return None
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    return before
