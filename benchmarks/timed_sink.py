"""A sink wrapper that times every publish() call on the inference thread (benchmarks only)."""

from __future__ import annotations

import time


class TimedSink:
    """Wraps a sink, recording how long each publish() call takes the inference thread, in ns.
    ``video_fps``: results carry the source's own time, seq / fps (a lossless run of the simulator
    stamps the moment it rendered a frame; a DICOM loop or a sender's t_ns gives its own time)."""

    def __init__(self, sink, video_fps: float | None = None):
        self.sink, self.calls, self.video_fps = sink, [], video_fps

    def publish(self, result):
        if self.video_fps:
            result.t_source_ns = round(result.seq * 1e9 / self.video_fps)
        t0 = time.perf_counter_ns()
        self.sink.publish(result)
        self.calls.append(time.perf_counter_ns() - t0)

    def publish_status(self, status):
        self.sink.publish_status(status)

    def close(self):
        self.sink.close()
