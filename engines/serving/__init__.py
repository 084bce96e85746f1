"""Serving our model on an Open Inference Protocol (KServe v2) server.

``contract`` names the tensors and parameters both sides agree on and imports no serving library;
``mlserver_runtime`` runs inside the server process only (``streamer serve``), the gRPC client
lives in ``engines.backends.remote_backend``: mlserver and tritonclient both register the
``inference.*`` protobuf symbols, so the two can never be imported into one process.
"""
