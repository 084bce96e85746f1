"""The running pipeline: three frame threads, a fan-search thread and the queues between them
(all threading lives in this package).

    source ──input queue──▶ preprocess ──prepared queue──▶ inference ────────────▶ sinks
    (grab,   (live: latest   (fan crop,    (lossless;       (micro-batch of what   (in the same
     count)   frame wins,     grey,         holds a batch)   is waiting, up to      thread: no
              dropped; non-   resample)                      max_batch; infer,      hop)
              live: lossless)     └─▶ fan search (own thread, latest request wins)  postprocess)

Preprocessing overlaps inference of the frame before (OpenCV and ONNX Runtime release the GIL).
``[pipeline] preprocess_in_source = true`` preprocesses in the source thread instead, one hop
fewer, but a source that works hard itself (decoding, rendering) then delays it; `streamer bench
--preprocess-in-source` compares the two. Postprocessing and publishing run in the inference
thread (no hop). The fan is found and the sector fitted on a thread of their own, off the served
frames; the next frames use what a search found. When frames queue up (saturation) the inference
thread takes whatever is waiting, up to ``max_batch``, as one batch; at a live frame rate one
frame waits at most, so latency mode is batch 1.

Every frame carries a stamp at each hand-off (``streamer.frames.Timing``), so the stage
latencies add up to capture→publish. Stages (Preprocessor, InferenceStage, Postprocessor,
PublishStage: ``stages.py``) know nothing of threads. Each thread is a worker that owns its loop
(``source_reader.py``, ``preprocess_worker.py`` with the fan search, ``inference_worker.py``);
they share one ``Run`` (config, stop event, the frame accounting: ``accounting.py``) and are
wired in :meth:`Pipeline.compose` (``compose.py``); :func:`build_pipeline` makes the stages. Every loop watches the
stop event and waits with timeouts. At shutdown ``captured == processed + dropped + invalid``
holds exactly: frames still waiting for inference when the pipeline stops are counted as
dropped, and every processed frame is published.
"""

from streamer.pipeline.compose import Pipeline, build_pipeline
from streamer.pipeline.slots import POLL_S, FrameSlot

__all__ = ["POLL_S", "FrameSlot", "Pipeline", "build_pipeline"]
