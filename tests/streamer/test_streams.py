"""Several streams through one pipeline and one model: each stream's results under its own name,
its own counts, status and metrics; frames of different streams batched together with the same
results as alone; a stream whose source is lost or whose frame is bad never holds up another."""

from __future__ import annotations

import dataclasses
import threading
import time

import numpy as np
import pytest

from streamer.config import Config, PipelineConfig, PreprocessConfig, PublishConfig, SourceConfig
from streamer.metrics import PipelineMetrics
from streamer.pipeline import build_pipeline
from streamer.pipeline.slots import FrameSlot
from tests.streamer.conftest import FakeBackend, FakeSink, FakeSource


def config(**pipeline) -> Config:
    return Config(preprocess=PreprocessConfig(mode="full"),
                  source=SourceConfig(read_timeout_s=0.05, retry_initial_s=0.05, retry_max_s=0.2),
                  publish=PublishConfig(stream="a", status_interval_s=0.05),
                  pipeline=PipelineConfig(**pipeline))


def balanced(c: dict) -> bool:
    return c["captured"] == c["processed"] + c["dropped"] + c["invalid"]


def run(sources: dict, backend=None, timeout: float = 10.0, cfg: Config | None = None, **pipeline):
    sink = FakeSink()
    p = build_pipeline(cfg or config(**pipeline), sources, backend or FakeBackend(), [sink],
                       PipelineMetrics("a"))
    p.start()
    assert p.wait(timeout), "pipeline did not finish"
    p.close()
    return p, sink


def by_stream(sink: FakeSink) -> dict[str, list]:
    out: dict[str, list] = {}
    for r in sink.results:
        out.setdefault(r.stream, []).append(r)
    return out


def test_each_stream_publishes_under_its_own_name_with_its_own_counts_status_and_metrics():
    p, sink = run({"a": FakeSource(live=False, count=12), "b": FakeSource(live=False, count=20)})
    results = by_stream(sink)
    assert [r.seq for r in results["a"]] == list(range(1, 13))  # in order within each stream
    assert [r.seq for r in results["b"]] == list(range(1, 21))
    counts = {name: lane.accounting.snapshot() for name, lane in p.streams.items()}
    assert counts == {"a": {"captured": 12, "processed": 12, "dropped": 0, "invalid": 0},
                      "b": {"captured": 20, "processed": 20, "dropped": 0, "invalid": 0}}
    assert p.counts()["processed"] == 32
    final = {s["stream"]: s for s in sink.statuses if s["state"] == "stopped"}
    assert final["a"]["processed"] == 12 and final["b"]["processed"] == 20
    registry = p.metrics.registry  # one registry, one series per stream
    for name, n in (("a", 12), ("b", 20)):
        assert registry.get_sample_value("streamer_frames_total",
                                         {"stream": name, "outcome": "processed"}) == n
        assert registry.get_sample_value("streamer_latency_seconds_count",
                                         {"stream": name, "stage": "capture_to_publish"}) == n


def test_frames_of_several_non_live_streams_go_in_as_one_batch_fairly():
    backend = FakeBackend(delay=0.01)
    p, sink = run({"a": FakeSource(live=False, count=24), "b": FakeSource(live=False, count=24)},
                  backend, queue_size=4, max_batch=4)
    assert max(backend.batches) > 1 and max(backend.batches) <= 4 and sum(backend.batches) == 48
    batches: dict[int, list[str]] = {}
    for r in sink.results:  # frames of one batch share their inference_start stamp
        batches.setdefault(r.timing.inference_start, []).append(r.stream)
    mixed = [streams for streams in batches.values() if set(streams) == {"a", "b"}]
    assert mixed, batches  # frames of both streams in one model call
    for streams in mixed:  # taken in turn (a, b, a, b...) until one has no more waiting
        repeat = next((i for i in range(1, len(streams)) if streams[i] == streams[i - 1]),
                      len(streams))
        assert len(set(streams[repeat - 1:])) == 1, streams


def test_a_busy_slot_never_starves_a_quiet_one():
    from streamer.pipeline.slots import SlotGroup

    cond = threading.Condition()
    slots = [FrameSlot(16, lossless=True, cond=cond) for _ in range(3)]
    group = SlotGroup(slots, cond)
    for i in range(10):
        slots[0].put(("busy", i), 0)
    slots[2].put(("quiet", 0), 0)
    first = group.get_many(2, 0.01)
    assert first == [(0, ("busy", 0)), (2, ("quiet", 0))]
    slots[2].put(("quiet", 1), 0)
    second = group.get_many(2, 0.01)  # starts after the slot the last batch ended on
    assert second == [(0, ("busy", 1)), (2, ("quiet", 1))]
    assert group.get_many(3, 0.01) == [(0, ("busy", 2)), (0, ("busy", 3)), (0, ("busy", 4))]
    assert group.get_many(3, 0.01) == [(0, ("busy", 5)), (0, ("busy", 6)), (0, ("busy", 7))]


class GoneAfterFirstFrames(FakeSource):
    """Gives a few frames, is lost, and never opens again (a capture card that died)."""

    def open(self):
        if self.open_times:
            self.fail_opens = 1
        return super().open()


def test_a_lost_stream_never_holds_up_another():
    dead = GoneAfterFirstFrames(live=True, script=["frame", "frame", "lost"])
    alive = FakeSource(live=True, forever=True, period=0.002)
    p = build_pipeline(config(), {"dead": dead, "alive": alive}, FakeBackend(), [sink := FakeSink()],
                       PipelineMetrics("dead"))
    p.start()
    deadline = time.monotonic() + 10
    while (p.streams["alive"].accounting.snapshot()["processed"] < 100
           or len(dead.open_times) < 3):  # the dead one retried (with backoff) meanwhile
        assert time.monotonic() < deadline, p.statuses()
        time.sleep(0.02)
    statuses = p.statuses()
    p.stop()
    assert p.wait(5)
    counts = {name: lane.accounting.snapshot() for name, lane in p.streams.items()}
    p.close()
    assert statuses["dead"]["source"]["state"] == "lost" and statuses["alive"]["source"]["state"] == "up"
    assert counts["dead"]["processed"] <= 2 and counts["alive"]["processed"] >= 100
    assert all(balanced(c) for c in counts.values())
    up = p.metrics.registry.get_sample_value
    assert up("streamer_source_up", {"stream": "dead"}) == 0
    assert up("streamer_source_up", {"stream": "alive"}) == 1
    assert {r.stream for r in sink.results} >= {"alive"}


def test_a_bad_frame_is_counted_in_its_own_stream_only():
    class Picky(FakeBackend):
        """Refuses any batch holding stream b's frame 5 (pixel value 5 + 100)."""

        def infer(self, batch):
            if np.any(np.abs(batch[:, 0, 0, 0] * 255 - 105) < 1e-3):
                raise ValueError("cannot take it")
            return super().infer(batch)

    class Offset(FakeSource):
        def read(self, timeout):
            frame = super().read(timeout)
            frame.image[:] = frame.seq + 100
            return frame

    script = ["frame", "invalid", "frame", "frame"]  # the source itself gives a bad frame too
    p, sink = run({"a": FakeSource(live=False, count=16),
                   "b": Offset(live=False, script=script, count=8)},
                  Picky(delay=0.005), queue_size=4, max_batch=4)
    counts = {name: lane.accounting.snapshot() for name, lane in p.streams.items()}
    assert counts["a"] == {"captured": 16, "processed": 16, "dropped": 0, "invalid": 0}
    assert counts["b"] == {"captured": 12, "processed": 10, "dropped": 0, "invalid": 2}
    assert len(by_stream(sink)["a"]) == 16


def test_two_streams_batched_together_give_each_the_results_it_gets_alone(random_onnx):
    """The real model on two simulated scanners: scores per frame as in single-stream runs."""
    from engines.backends import BackendOptions, create_backend
    from streamer.sources import create_source

    specs = {"a": "sim:seed=1,realtime=0,frames=10,width=320,height=240",
             "b": "sim:seed=2,realtime=0,frames=10,width=320,height=240"}
    cfg = dataclasses.replace(config(queue_size=4, max_batch=4))

    class Slow:  # the real backend, slowed so that frames wait and batch up
        def __init__(self, backend):
            self.backend, self.info, self.batches = backend, backend.info, []

        def infer(self, batch):
            self.batches.append(batch.shape[0])
            time.sleep(0.02)
            return self.backend.infer(batch)

        def describe(self):
            return self.backend.describe()

        def close(self):
            self.backend.close()

    def scores(names):
        backend = Slow(create_backend("onnxruntime", random_onnx, BackendOptions(threads=1)).open())
        _, sink = run({n: create_source(specs[n]) for n in names}, backend, cfg=cfg)
        return backend.batches, {(r.stream, r.seq): np.array([c.score for c in r.classes])
                                 for r in sink.results}

    batches, together = scores(["a", "b"])
    alone = {**scores(["a"])[1], **scores(["b"])[1]}
    assert max(batches) > 1 and len(together) == len(alone) == 20
    for key, value in alone.items():
        np.testing.assert_allclose(together[key], value, atol=1e-5, err_msg=str(key))


class Overlapping(FakeBackend):
    """Its first two calls meet at a barrier: they only return if they run side by side."""

    def __post_init__(self):
        super().__post_init__()
        self.barrier = threading.Barrier(2, timeout=5)
        self.lock, self.active, self.most = threading.Lock(), 0, 0

    def infer(self, batch):
        with self.lock:
            self.active += 1
            self.most = max(self.most, self.active)
            first = self.calls < 2
            self.calls += 1
        if first:
            self.barrier.wait()
        else:
            time.sleep(0.002 * (self.calls % 3))  # later calls finish out of the order they began
        out = super().infer(batch)
        with self.lock:
            self.active -= 1
        return out


@pytest.mark.parametrize("in_worker", [False, True])
def test_two_inference_workers_overlap_model_calls_and_keep_every_stream_in_order(in_worker):
    backend = Overlapping()
    backend.concurrent = True  # takes calls side by side, as ONNX Runtime on a CPU does
    seen = []
    p = build_pipeline(config(inference_workers=2, queue_size=4, max_batch=2,
                              preprocess_in_inference=in_worker),
                       {"a": FakeSource(live=False, count=30), "b": FakeSource(live=False, count=30)},
                       backend, [sink := FakeSink()], PipelineMetrics("a"))
    for name, lane in p.streams.items():  # the postprocessor (smoothing) sees its frames in order
        real = lane.stages.postprocess.process
        lane.stages.postprocess.process = (
            lambda s, m, c, real=real, name=name: (seen.append(name), real(s, m, c))[1])
    threads = set()
    for lane in p.lanes:
        real_pre = lane.stages.preprocess.process
        lane.stages.preprocess.process = (lambda f, real_pre=real_pre: (
            threads.add(threading.current_thread().name), real_pre(f))[1])
    p.start()
    assert p.wait(10)
    assert p.close() == {"captured": 60, "processed": 60, "dropped": 0, "invalid": 0}
    assert backend.most == 2 and p.inference.workers == 2
    results = by_stream(sink)
    assert [r.seq for r in results["a"]] == [r.seq for r in results["b"]] == list(range(1, 31))
    assert len(seen) == 60
    expected = {"streamer-inference-0", "streamer-inference-1"} if in_worker else {
        "streamer-preprocess.a", "streamer-preprocess.b"}
    assert threads <= expected and threads & expected


def test_a_backend_that_takes_one_call_at_a_time_gets_one_worker():
    p = build_pipeline(config(inference_workers=3), {"a": FakeSource(live=False, count=2),
                                                     "b": FakeSource(live=False, count=2)},
                       FakeBackend(), [FakeSink()], PipelineMetrics("a"))
    assert p.inference.workers == 1
    p.close()


def test_one_fan_search_thread_serves_every_stream_within_its_share_of_a_core():
    """A search that costs 5 ms of CPU is followed by a 15 ms rest at a quarter of a core."""
    from streamer.pipeline.fan_search import FanSearches

    clock = [0.0]
    rests = []

    class Searches(FanSearches):
        def rest(self, seconds):
            rests.append(round(seconds, 6))

    class Pre:
        def __init__(self):
            self.request_search, self.searched = None, 0

        def search(self, image, detect, fit):
            clock[0] += 0.005
            self.searched += 1

    stop = threading.Event()
    searches = Searches(stop, share=0.25, cpu_clock=lambda: clock[0])
    pres = [Pre(), Pre()]
    handles = [searches.add(pre, name) for pre, name in zip(pres, "ab", strict=True)]
    for _ in range(3):  # stream a asks three times before the thread runs: merged into one
        handles[0].request(np.zeros(1), False, True)
    searches.start()
    pres[1].request_search(np.zeros(1), True, False)  # the preprocessors now send theirs here
    deadline = time.monotonic() + 10
    while len(rests) < 2:
        assert time.monotonic() < deadline, rests
        time.sleep(0.01)
    stop.set()
    searches.join(10)
    assert rests == [0.015, 0.015] and [pre.searched for pre in pres] == [1, 1]
    assert searches.busy_s == pytest.approx(0.010)


def test_a_fast_feed_gets_no_more_searches_than_one_every_30th_of_a_second():
    from streamer.pipeline.fan_search import MIN_SEARCH_GAP_S

    cfg = dataclasses.replace(config(max_batch=4, queue_size=4),
                              preprocess=PreprocessConfig(mode="auto", redetect_every=1))
    p = build_pipeline(cfg, {"a": FakeSource(live=False, count=300, shape=(240, 320))}, FakeBackend(),
                       [FakeSink()], PipelineMetrics("a"))
    started = time.monotonic()
    p.start()
    assert p.wait(20)
    elapsed = time.monotonic() - started
    p.close()
    assert 1 <= p.lane.fan_search.searches <= elapsed / MIN_SEARCH_GAP_S + 1
