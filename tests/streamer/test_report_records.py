"""`streamer report` reads a --record file or refuses it in one line (exit 2): empty, not JSON, a
line over 1 MB, a file over 2 GB, too many streams; and it reads what a real record holds:
several streams, gaps in seq, a result twice, runs appended, unknown keys and topics, a last
line cut short. Nothing is written over an existing file without --force."""

from __future__ import annotations

import json
import os

import pytest

from streamer.cli import main
from tests.streamer.report_fixtures import det, write_lines


def report(capsys, record, out, *extra) -> tuple[int, str, list[str]]:
    code = main(["report", str(record), "--out", str(out), *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip().splitlines()


def refused(capsys, tmp_path, record, *extra) -> str:
    """The one error line of a refused record; nothing written."""
    out = tmp_path / "report.html"
    code, _, err = report(capsys, record, out, *extra)
    assert code == 2 and len(err) == 1, (code, err)
    assert not out.exists()
    return err[0]


def test_an_empty_file_is_not_a_record(capsys, tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    assert refused(capsys, tmp_path, path) == (
        f"streamer report: error: {path}: empty, not a record (streamer run --record FILE "
        "writes one JSON line per result)")


def test_a_file_of_other_text_is_refused_naming_its_line(capsys, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text(json.dumps(det(0)) + "\nhello, this is not JSON\n" + json.dumps(det(1)) + "\n")
    assert refused(capsys, tmp_path, path) == (
        f"streamer report: error: {path} line 2: not JSON, not a record (streamer run --record "
        "FILE writes one JSON object per line)")


def test_json_that_is_not_a_record_is_refused(capsys, tmp_path):
    for body, said in (("[1, 2, 3]\n", "line 1: a JSON list, not a record line (an object)"),
                       ('{"name": "x"}\n', "line 1: neither a result nor a status line (no "
                                           "topic), not a record"),
                       (json.dumps({**det(0), "v": 2}) + "\n",
                        "line 1: protocol version 2; this report reads version 1"),
                       (json.dumps({**det(0), "seq": "7"}) + "\n",
                        "line 1: a result needs an integer seq ≥ 0 and t_source_ns")):
        path = tmp_path / "x.jsonl"
        path.write_text(body)
        assert refused(capsys, tmp_path, path) == f"streamer report: error: {path} {said}"


def test_a_line_over_1_mb_is_refused_without_reading_it_whole(capsys, tmp_path):
    path = tmp_path / "long.jsonl"
    long = {**det(1), "pad": "x" * (1 << 20)}
    path.write_text(json.dumps(det(0)) + "\n" + json.dumps(long) + "\n")
    assert refused(capsys, tmp_path, path) == (
        f"streamer report: error: {path} line 2: over 1 MB, not a line of a record")


def test_a_file_over_2_gb_is_refused_before_reading(capsys, tmp_path):
    path = tmp_path / "huge.jsonl"
    write_lines(path, [det(0)])
    os.truncate(path, (2 << 30) + 1)  # sparse: no disk used
    assert refused(capsys, tmp_path, path) == (
        f"streamer report: error: {path}: 2 GB, over the 2 GB a report reads (split it, or pick "
        "a stream with --stream)")


def test_more_than_16_streams_are_refused(capsys, tmp_path):
    path = write_lines(tmp_path / "many.jsonl", [det(0, stream=f"us{i}") for i in range(17)])
    assert refused(capsys, tmp_path, path) == (
        f"streamer report: error: {path}: more than 16 streams (a report reads at most 16; pick "
        "one with --stream)")
    code, _, _ = report(capsys, path, tmp_path / "one.html", "--stream", "us16")
    assert code == 0


def test_mixed_streams_get_a_section_each_and_stream_picks_one(capsys, tmp_path):
    lines = [det(i, stream=s, present=("head",) if s == "us1" else ("spine",))
             for i in range(30) for s in ("us0", "us1")]
    path = write_lines(tmp_path / "two.jsonl", lines)
    out = tmp_path / "both.html"
    code, said, _ = report(capsys, path, out)
    assert code == 0 and "2 stream(s), 60 results" in said
    page = out.read_text()
    assert page.count('<section class="stream"') == 2
    assert 'id="stream-us0"' in page and 'id="stream-us1"' in page
    code, _, _ = report(capsys, path, tmp_path / "us1.html", "--stream", "us1")
    page = (tmp_path / "us1.html").read_text()
    assert code == 0 and page.count('<section class="stream"') == 1 and 'id="stream-us1"' in page
    assert "other streams in the record, not shown (--stream): us0" in page
    assert refused(capsys, tmp_path, path, "--stream", "us9") == (
        f"streamer report: error: {path} has no results of stream 'us9' (its streams: us0, us1)")


def test_gaps_in_seq_are_counted_as_missing_results(capsys, tmp_path):
    seqs = [*range(0, 10), *range(13, 20), *range(25, 30)]  # 3 and 5 missing: 8 in 2 places
    path = write_lines(tmp_path / "gaps.jsonl", [det(i) for i in seqs])
    out = tmp_path / "gaps.html"
    assert report(capsys, path, out)[0] == 0
    page = out.read_text()
    assert "gaps in seq: 8 results missing in 2 place(s) (largest 5)" in page
    assert f"{len(seqs)} results processed and recorded" in page


def test_duplicates_runs_unknown_keys_and_topics_and_a_cut_last_line_are_read(capsys, tmp_path):
    first = [det(i, present=("head",), future_key={"x": 1}) for i in range(10)]
    again = [det(i, t=10**12 + i * 33_333_333) for i in range(5)]  # a second run, seq from 0
    lines = [*first, first[-1], {"topic": "record.main", "lost": 3}, *again]
    path = write_lines(tmp_path / "odd.jsonl", lines)
    with path.open("a") as f:
        f.write(json.dumps(det(5))[:40])  # the run stopped while writing this one
    out = tmp_path / "odd.html"
    code, said, err = report(capsys, path, out)
    assert code == 0 and err == [] and "15 results" in said
    page = out.read_text()
    assert "1 results recorded twice (counted once)" in page
    assert "15 results, seq 0 to 4, 2 runs appended" in page
    assert "lines of other topics not read: record (1)" in page
    assert "the last line was cut short" in page
    assert "no gaps in seq" in page  # the restart is no gap


def test_nothing_is_overwritten_without_force(capsys, tmp_path):
    path = write_lines(tmp_path / "r.jsonl", [det(i) for i in range(5)])
    out = tmp_path / "r.html"
    out.write_text("keep me")
    code, _, err = report(capsys, path, out)
    assert code == 2 and err == [f"streamer report: error: --out {out} exists: pass --force to "
                                 "overwrite it"]
    assert out.read_text() == "keep me"
    assert report(capsys, path, out, "--force")[0] == 0 and out.read_text().startswith("<!doctype")
    code, _, err = report(capsys, path, path, "--force")
    assert code == 2 and err == [f"streamer report: error: --out {path} is the record itself"]
    assert report(capsys, path, tmp_path / "a.html", "--exam", "x")[2] == [
        "streamer report: error: --exam needs --keyframes DIR"]


@pytest.mark.parametrize("kind", ["folder", "missing"])
def test_a_record_that_is_no_file_is_one_line(capsys, tmp_path, kind):
    path = tmp_path / "rec"
    if kind == "folder":
        path.mkdir()
    line = refused(capsys, tmp_path, path)
    assert line.startswith("streamer report: error: ") and str(path) in line


def test_status_lines_name_the_model_and_the_streamers_counts(capsys, tmp_path):
    status = {"topic": "status.main", "v": 1, "stream": "main", "captured": 12, "processed": 10,
              "dropped": 2, "invalid": 0, "source": {"kind": "capture"},
              "backend": {"backend": "onnxruntime", "model": "/models/site/compact.onnx"}}
    path = write_lines(tmp_path / "s.jsonl", [det(i) for i in range(10)] + [status])
    out = tmp_path / "s.html"
    assert report(capsys, path, out)[0] == 0
    page = out.read_text()
    assert "<dt>model</dt><dd>compact.onnx (onnxruntime)</dd>" in page
    assert "<dt>source</dt><dd>capture</dd>" in page
    assert "the streamer&#x27;s last status: captured 12, processed 10, dropped 2, invalid 0" in page
