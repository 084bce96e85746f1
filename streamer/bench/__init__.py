"""`streamer bench`: model-only and end-to-end latency/throughput beside a naive baseline.

Modules: ``plan`` (what to run), ``machine`` (the host), ``flops`` (the
model's arithmetic per frame), ``model_only``, ``end_to_end``, ``baseline`` (the measurements),
``runner`` (runs a plan into one result dict), ``report`` (table, JSON, plot).
"""
