"""The control socket: a new exam on request, and nothing else it is sent can hurt the run."""

from __future__ import annotations

import json

import pytest

from streamer.cli import main
from streamer.control import ControlServer, answer
from streamer.coverage import ExamCoverage
from streamer.errors import UserError


def coverages():
    return {"us0": ExamCoverage(("head",), exam="a0"), "us1": ExamCoverage(("head",), exam="a1")}


def test_a_new_exam_on_one_stream_or_all():
    cov = coverages()
    reply = answer(json.dumps({"v": 1, "cmd": "new_exam", "stream": "us1", "exam": "e2"}).encode(),
                   cov)
    assert reply == {"v": 1, "ok": True, "exams": {"us1": "e2"}}
    assert cov["us1"]._pending == "e2" and cov["us0"]._pending is None
    reply = answer(b'{"v": 1, "cmd": "new_exam"}', cov)
    assert reply["ok"] and set(reply["exams"]) == {"us0", "us1"}


@pytest.mark.parametrize("request_bytes, error", [
    (b"not json", "Expecting value"), (b"\xff\xfe", "utf-8"), (b"[1]", "JSON object"),
    (b'{"v": 2, "cmd": "new_exam"}', "v 1"), (b'{"v": 1, "cmd": "shutdown"}', "unknown cmd"),
    (b'{"v": 1, "cmd": "new_exam", "stream": "us9"}', "no stream 'us9'"),
    (b'{"v": 1, "cmd": "new_exam", "exam": "../etc"}', "exam id"),
    (b"x" * 5000, "over 4096 bytes"),
])
def test_bad_requests_are_answered_not_obeyed(request_bytes, error):
    cov = coverages()
    reply = answer(request_bytes, cov)
    assert reply["ok"] is False and error in reply["error"]
    assert all(c._pending is None for c in cov.values())


def test_the_command_starts_a_new_exam_on_a_running_streamer(capsys):
    cov = coverages()
    server = ControlServer("tcp://127.0.0.1:0", cov)
    try:
        assert main(["exam", "e9", "--control", server.endpoint, "--stream", "us0"]) == 0
        assert "stream us0: new exam e9" in capsys.readouterr().out
        assert cov["us0"]._pending == "e9"
        assert main(["exam", "x/y", "--control", server.endpoint]) == 2  # refused before sending
    finally:
        server.close()


def test_loopback_only_and_no_answer_is_one_line(capsys):
    with pytest.raises(UserError, match="loopback only"):
        ControlServer("tcp://0.0.0.0:0", {})
    assert main(["exam", "--control", "tcp://127.0.0.1:9", "--timeout", "0.2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no answer from tcp://127.0.0.1:9" in err[0]
