import dataclasses
import threading
import time

import pytest

from streamer.config import Config, PipelineConfig, PreprocessConfig, PublishConfig, SourceConfig
from streamer.frames import PARTS
from streamer.metrics import PipelineMetrics
from streamer.pipeline import FrameSlot, build_pipeline
from tests.streamer.conftest import FakeBackend, FakeSink, FakeSource


def config(**pipeline):
    return Config(preprocess=PreprocessConfig(mode="full"),
                  source=SourceConfig(read_timeout_s=0.05, retry_initial_s=0.05, retry_max_s=0.4),
                  publish=PublishConfig(stream="t", status_interval_s=0.1),
                  pipeline=PipelineConfig(**pipeline))


def run(source, backend=None, sink=None, timeout=5.0, stop_after=None, **pipeline):
    sink = sink or FakeSink()
    p = build_pipeline(config(**pipeline), source, backend or FakeBackend(), [sink],
                       PipelineMetrics("t"))
    p.start()
    if stop_after is not None:
        time.sleep(stop_after)
        p.stop()
    assert p.wait(timeout), "pipeline did not finish"
    counts = p.close()
    return p, counts, sink


def balanced(c):
    return c["captured"] == c["processed"] + c["dropped"] + c["invalid"]


def test_slot_policies():
    latest = FrameSlot(1, lossless=False)
    assert latest.put("a", 0) == (True, None)
    assert latest.put("b", 0) == (True, "a")  # the newer frame replaces the unread one
    assert latest.get(0) == "b" and latest.get(0.01) is None
    fifo = FrameSlot(2, lossless=True)
    assert fifo.put(1, 0)[0] and fifo.put(2, 0)[0]
    assert fifo.put(3, 0.01) == (False, None)  # full: the writer has to wait
    assert fifo.get(0) == 1 and fifo.put(3, 0)[0]


def test_non_live_source_is_lossless_and_every_result_published():
    p, c, sink = run(FakeSource(live=False, count=40), FakeBackend(delay=0.002))
    assert c == {"captured": 40, "processed": 40, "dropped": 0, "invalid": 0}
    assert [r.seq for r in sink.results] == list(range(1, 41))
    r = sink.results[0]
    assert r.stream == "t" and r.frame_shape == (120, 160) and len(r.classes) == 6
    for r in sink.results:  # a stamp at every hand-off, in order; the parts add up exactly
        t = r.timing
        stamps = [t.capture, t.preprocess_start, t.preprocess_end, t.inference_start,
                  t.inference_end, t.postprocess_end, t.publish]
        assert stamps == sorted(stamps) and t.inference_start < t.inference_end
        parts = t.stage_seconds()
        assert sum(parts[s] for s in PARTS) == pytest.approx(parts["capture_to_publish"], abs=1e-9)
    assert sink.statuses[-1]["state"] == "stopped" and sink.statuses[-1]["processed"] == 40


def test_live_feed_faster_than_the_model_drops_and_balances():
    source = FakeSource(live=True, count=60, period=0.002)
    p, c, sink = run(source, FakeBackend(delay=0.02))
    assert c["captured"] == 60 and c["dropped"] > 20 and balanced(c)
    assert c["processed"] == len(sink.results) and c["invalid"] == 0
    seqs = [r.seq for r in sink.results]
    assert seqs == sorted(seqs)


class DrainingSource(FakeSource):
    """Like the ZMQ source: it skips stale messages itself and counts them in ``dropped``."""

    def read(self, timeout: float):
        frame = super().read(timeout)
        self.dropped = getattr(self, "dropped", 0) + 2
        return frame


def test_frames_a_source_skipped_itself_are_counted_as_dropped():
    p, c, _ = run(DrainingSource(live=True, count=5))
    assert c["captured"] == 5 + 2 * 5 and c["dropped"] >= 2 * 5 and balanced(c)


def test_invalid_frames_are_counted_and_the_pipeline_goes_on():
    script = ["frame", "invalid", "frame", "invalid", "invalid", "frame"]
    p, c, sink = run(FakeSource(live=False, script=script))
    assert c == {"captured": 6, "processed": 3, "dropped": 0, "invalid": 3}


def test_lost_source_is_retried_with_backoff_and_reported():
    source = FakeSource(live=True, script=["frame", "lost"], forever=True, fail_opens=0)
    p = build_pipeline(config(), source, FakeBackend(), [sink := FakeSink()], PipelineMetrics("t"))
    p.start()
    time.sleep(0.02)
    source.fail_opens = 3  # the device stays away for three reopen attempts
    deadline = time.monotonic() + 3
    while p.source_state.state != "up" or len(source.open_times) < 5:
        assert time.monotonic() < deadline, p.status()
        time.sleep(0.02)
    gaps = [b - a for a, b in zip(source.open_times[1:], source.open_times[2:], strict=False)]
    assert gaps[0] >= 0.04 and gaps[-1] >= 1.6 * gaps[0]  # 0.05, 0.1, 0.2, 0.4 s
    lost = [s for s in sink.statuses if s["source"]["state"] == "lost"]
    assert lost and lost[-1]["source"]["retries"] >= 1
    assert p.metrics.source_up.labels("t")._value.get() == 1
    p.stop()
    assert balanced(p.close())


class GoneAfterOpen(FakeSource):
    """Opens once, is lost at once, and never opens again."""

    def open(self):
        if self.open_times:
            self.fail_opens = 1
        return super().open()


def test_lost_source_keeps_the_process_alive_until_stopped():
    source = GoneAfterOpen(live=True, script=["lost"])
    p, c, _ = run(source, stop_after=0.3)
    assert c["captured"] == 0 and p.source_state.state == "lost"
    assert len(source.open_times) >= 3
    assert p.metrics.source_up.labels("t")._value.get() == 0


def test_stop_within_a_second_with_every_processed_frame_published():
    sink = FakeSink(delay=0.005)  # a slowish sink keeps results queued at stop
    source = FakeSource(live=True, forever=True, period=0.001)
    p = build_pipeline(config(), source, FakeBackend(delay=0.002), [sink], PipelineMetrics("t"))
    p.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    p.stop()
    assert p.wait(1.0)
    c = p.close()
    assert time.monotonic() - t0 < 1.0
    assert c["processed"] == len(sink.results) > 10 and balanced(c)
    assert source.closed >= 1 and sink.closed


def test_max_frames_stops_a_live_source():
    p, c, sink = run(FakeSource(live=True, forever=True, period=0.001), max_frames=7)
    assert c["processed"] == 7 == len(sink.results) and balanced(c)


def test_failing_backend_counts_invalid():
    class Broken(FakeBackend):
        def infer(self, batch):
            raise RuntimeError("boom")

    p, c, sink = run(FakeSource(live=False, count=3), Broken())
    assert c == {"captured": 3, "processed": 0, "dropped": 0, "invalid": 3} and not sink.results


@pytest.mark.parametrize("live", [False, True])
def test_first_open_of_a_missing_file_or_device_is_an_error(live):
    """A capture device that never opens fails at start (exit 2), it is not retried forever."""
    source = FakeSource(live=live, fail_opens=1)
    p = build_pipeline(config(), source, FakeBackend(), [FakeSink()], PipelineMetrics("t"))
    with pytest.raises(Exception, match="not there"):
        p.start()


def test_preprocessing_overlaps_inference_of_the_previous_frame():
    """Stage intervals, not durations: some frame is preprocessed while another is in the model."""
    backend = FakeBackend(delay=0.02)
    p = build_pipeline(config(), FakeSource(live=False, count=8), backend, [FakeSink()],
                       PipelineMetrics("t"))
    spans = {"pre": [], "infer": []}

    def timed(kind, fn):
        def wrapper(*args):
            start = time.monotonic()
            out = fn(*args)
            spans[kind].append((start, time.monotonic()))
            return out
        return wrapper

    slow_pre = p.stages.preprocess.process
    p.stages.preprocess.process = timed("pre", lambda f: (time.sleep(0.02), slow_pre(f))[1])
    p.stages.infer.process = timed("infer", p.stages.infer.process)
    p.start()
    assert p.wait(10)
    assert p.close()["processed"] == 8
    overlaps = [(a, b) for a in spans["pre"] for b in spans["infer"] if a[0] < b[1] and b[0] < a[1]]
    assert overlaps


def test_preprocessing_follows_the_models_representation_unless_told_and_its_recipe():
    from engines.input_recipe import SONOSTREAM_AREA
    from engines.model_info import ModelInfo
    from streamer.preprocess import Preprocessor

    polar_model = ModelInfo(("a",), "sigmoid", 64, representation="polar", recipe=SONOSTREAM_AREA)
    pre = Preprocessor.for_model(PreprocessConfig(), polar_model)
    assert pre.config.representation == "polar" and pre.size == 64
    assert pre.recipe == SONOSTREAM_AREA  # an older model keeps the shrink it was trained with
    told = PreprocessConfig(representation="sector")
    assert Preprocessor.for_model(told, polar_model).config.representation == "sector"
    with pytest.raises(ValueError, match="representation"):
        PreprocessConfig(representation="doppler")


def test_frames_waiting_for_the_model_go_in_as_one_batch():
    backend = FakeBackend(delay=0.01)
    p, c, sink = run(FakeSource(live=False, count=40), backend, queue_size=8, max_batch=4)
    assert c["processed"] == 40 and [r.seq for r in sink.results] == list(range(1, 41))
    assert max(backend.batches) == 4 and sum(backend.batches) == 40  # never more than max_batch
    first = {r.timing.inference_start for r in sink.results}
    assert len(first) == len(backend.batches)  # one stamp per batch, shared by its frames
    live = FakeBackend(delay=0.01)  # a live feed: latency mode, one frame at a time
    run(FakeSource(live=True, count=30, period=0.001), live, max_batch=4)
    assert set(live.batches) == {1}


def test_a_batch_the_model_refuses_is_retried_frame_by_frame():
    class Picky(FakeBackend):
        def infer(self, batch):
            if batch.shape[0] > 1 or abs(batch[0, 0, 0, 0] * 255 - 7) < 1e-3:  # frame 7
                raise ValueError("cannot take it")
            return super().infer(batch)

    p, c, sink = run(FakeSource(live=False, count=20), Picky(delay=0.005), queue_size=8)
    assert c["invalid"] == 1 and c["processed"] == 19 and balanced(c)


def test_fan_search_never_holds_up_a_served_frame():
    """Searches after the first run on their own thread: a 150 ms search does not show in any
    frame's latency, and the frames after it use what it found."""
    cfg = dataclasses.replace(config(), preprocess=PreprocessConfig(mode="auto", redetect_every=4))
    p = build_pipeline(cfg, FakeSource(live=False, count=60, period=0.005), FakeBackend(),
                       [sink := FakeSink()], PipelineMetrics("t"))
    tracker = p.stages.preprocess.tracker
    real_look, looks = tracker.look, []

    def slow_look(image, detect, fit):
        looks.append(threading.current_thread().name)
        if len(looks) > 1:
            time.sleep(0.15)
        return real_look(image, detect, fit)

    tracker.look = slow_look
    p.start()
    assert p.wait(10)
    assert p.close()["processed"] == 60
    assert looks[0] == "streamer-preprocess" and "streamer-fan-search" in looks[1:]
    assert set(looks[1:]) == {"streamer-fan-search"}
    assert max(r.timing.stage_seconds()["preprocess"] for r in sink.results) < 0.1


@pytest.mark.parametrize("in_source", [False, True])
def test_preprocessing_in_either_thread_keeps_every_contract(in_source):
    """Preprocessing on its own thread (default) or in the source thread: the same accounting,
    order, stamps and drops."""
    threads = set()
    backend = FakeBackend(delay=0.005)
    p = build_pipeline(config(preprocess_in_source=in_source, queue_size=4),
                       FakeSource(live=False, count=30),
                       backend, [sink := FakeSink()], PipelineMetrics("t"))
    real = p.stages.preprocess.process
    p.stages.preprocess.process = lambda f: (threads.add(threading.current_thread().name), real(f))[1]
    p.start()
    assert p.wait(10)
    assert p.close() == {"captured": 30, "processed": 30, "dropped": 0, "invalid": 0}
    assert threads == {"streamer-source" if in_source else "streamer-preprocess"}
    assert [r.seq for r in sink.results] == list(range(1, 31))
    for r in sink.results:
        parts = r.timing.stage_seconds()
        assert min(parts.values()) >= 0
        assert sum(parts[s] for s in PARTS) == pytest.approx(parts["capture_to_publish"], abs=1e-9)
    _, c, _ = run(FakeSource(live=True, count=60, period=0.002), FakeBackend(delay=0.02),
                  preprocess_in_source=in_source)
    assert c["captured"] == 60 and c["dropped"] > 20 and balanced(c)
