"""The control socket of a running streamer (``streamer run --control ENDPOINT``): a ZeroMQ REP
socket, loopback only, answering one small JSON request at a time. Today it knows one command:
start a new exam (``streamer exam``), on one stream or all of them.

    request  {"v": 1, "cmd": "new_exam", "stream": "us0" | null, "exam": "ID" | null}
    answer   {"v": 1, "ok": true, "exams": {"us0": "ID"}}   or   {"v": 1, "ok": false, "error": "..."}
"""

from __future__ import annotations

import json
import logging
import threading

import zmq

from streamer.coverage import check_exam_id
from streamer.errors import UserError
from streamer.security import check_endpoint, is_local_endpoint

log = logging.getLogger(__name__)
VERSION = 1
MAX_REQUEST_BYTES = 4096
POLL_MS = 100


def answer(request: bytes, coverages: dict) -> dict:
    """The answer to one request; whatever arrives, never an exception."""
    try:
        if len(request) > MAX_REQUEST_BYTES:
            raise ValueError(f"request over {MAX_REQUEST_BYTES} bytes")
        msg = json.loads(request.decode("utf-8"))
        if not isinstance(msg, dict) or msg.get("v") != VERSION:
            raise ValueError(f"a JSON object with v {VERSION} expected")
        if msg.get("cmd") != "new_exam":
            raise ValueError(f"unknown cmd {str(msg.get('cmd'))[:40]!r}; known: new_exam")
        stream, exam = msg.get("stream"), check_exam_id(msg.get("exam"))
        if stream is not None and stream not in coverages:
            raise ValueError(f"no stream {str(stream)[:64]!r}; streams: {', '.join(coverages)}")
        targets = [stream] if stream is not None else list(coverages)
        return {"v": VERSION, "ok": True,
                "exams": {name: coverages[name].new_exam(exam) for name in targets}}
    except (ValueError, UserError) as exc:  # JSON and UTF-8 errors are ValueErrors too
        return {"v": VERSION, "ok": False, "error": str(exc)[:300]}


class ControlServer:
    """The REP socket's thread; ``coverages``: stream name → its ExamCoverage."""

    def __init__(self, endpoint: str, coverages: dict):
        check_endpoint(endpoint)
        if not is_local_endpoint(endpoint):
            raise UserError(f"--control {endpoint}: the control socket is loopback only")
        self.coverages, self._stop = coverages, threading.Event()
        self._sock = zmq.Context.instance().socket(zmq.REP)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.MAXMSGSIZE, MAX_REQUEST_BYTES)
        try:
            self._sock.bind(endpoint)
        except zmq.ZMQError as exc:
            self._sock.close()
            raise UserError(f"--control {endpoint}: cannot bind ({exc})") from None
        self.endpoint = self._sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self._thread = threading.Thread(target=self._serve, name="streamer-control", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            if not self._sock.poll(POLL_MS):
                continue
            reply = answer(self._sock.recv(), self.coverages)
            if reply["ok"]:
                log.info("new exam on request: %s", reply["exams"])
            self._sock.send(json.dumps(reply).encode())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        self._sock.close()


def request_new_exam(endpoint: str, exam: str | None, stream: str | None,
                     timeout_s: float = 5.0) -> dict:
    """Ask a running streamer for a new exam; its answer, or UserError when none comes."""
    check_exam_id(exam)
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(endpoint)
        sock.send(json.dumps({"v": VERSION, "cmd": "new_exam", "stream": stream,
                              "exam": exam}).encode())
        if not sock.poll(int(timeout_s * 1000)):
            raise UserError(f"no answer from {endpoint} within {timeout_s:g} s: is a streamer "
                            "running with --control there?")
        return json.loads(sock.recv().decode("utf-8"))
    finally:
        sock.close()
