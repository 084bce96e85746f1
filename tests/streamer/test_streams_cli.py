"""`streamer run` with several streams: repeated --source/--stream or a config's [source]
streams, results recorded under each stream's name, and bad stream flags one line, exit 2."""

from __future__ import annotations

import json

import pytest

from streamer.cli import main

SIM = "sim:seed={},realtime=0,width=160,height=120"


def run_args(random_onnx, *extra):
    return ["run", "--model", str(random_onnx), "--publish", "tcp://127.0.0.1:*",
            "--metrics-port", "0", *extra]




def recorded(path) -> dict[str, list[int]]:
    seqs: dict[str, list[int]] = {}
    for line in path.read_text().splitlines():
        msg = json.loads(line)
        assert msg["topic"] == f"det.{msg['stream']}"
        seqs.setdefault(msg["stream"], []).append(msg["seq"])
    return seqs


def test_repeated_source_and_stream_run_every_stream(random_onnx, tmp_path, capsys, kept_metrics):
    record = tmp_path / "results.jsonl"
    code = main(run_args(random_onnx, "--source", SIM.format(1), "--stream", "bay1",
                         "--source", SIM.format(2), "--stream", "bay2", "--max-frames", "6",
                         "--record", str(record)))
    out, err = capsys.readouterr()
    assert code == 0, (out, err)
    seqs = recorded(record)
    assert set(seqs) == {"bay1", "bay2"}
    assert all(s == sorted(s) and len(s) >= 6 for s in seqs.values())
    assert "stream bay1: captured" in out and "stream bay2: captured" in out
    registry = kept_metrics[0].registry  # one registry for both streams
    for name in ("bay1", "bay2"):
        assert registry.get_sample_value("streamer_frames_total",
                                         {"stream": name, "outcome": "processed"}) == len(seqs[name])


def test_a_config_names_the_streams(random_onnx, tmp_path, capsys):
    toml = tmp_path / "site.toml"
    toml.write_text(f'[source.streams]\nleft = "{SIM.format(3)}"\nright = "{SIM.format(4)}"\n'
                    f'[publish]\nrecord = "{tmp_path / "r.jsonl"}"\n')
    assert main(run_args(random_onnx, "--config", str(toml), "--max-frames", "4")) == 0, \
        capsys.readouterr()
    assert set(recorded(tmp_path / "r.jsonl")) == {"left", "right"}
    toml.write_text(f'[source.streams]\nleft = "{SIM.format(3)}"\n')  # one named stream
    assert main(run_args(random_onnx, "--config", str(toml), "--max-frames", "2",
                         "--record", str(tmp_path / "one.jsonl"))) == 0
    assert set(recorded(tmp_path / "one.jsonl")) == {"left"}


@pytest.mark.parametrize("argv, message", [
    (["--source", "sim", "--source", "sim", "--stream", "a"],
     "2 --source but 1 --stream: with several sources give each its --stream NAME"),
    (["--source", "sim", "--stream", "a", "--stream", "b"], "1 --source but 2 --stream"),
    (["--source", "sim", "--stream", "a", "--source", "sim", "--stream", "a"],
     "--stream a is given twice: stream names must be distinct"),
    (["--source", "sim", "--stream", "a", "--source", "sim", "--stream", "b c"],
     "--stream: stream name must be 1-64 of [A-Za-z0-9_-], got 'b c'"),
    (["--source", "sim", "--stream", "a", "--source", "nope:x", "--stream", "b"],
     "stream b: unknown source 'nope'"),
])
def test_bad_stream_flags_are_one_line_and_exit_2(random_onnx, capsys, argv, message):
    argv = [SIM.format(0) if a == "sim" else a for a in argv]
    assert main(run_args(random_onnx, *argv, "--max-frames", "1")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_a_config_with_streams_and_a_lone_stream_flag_is_refused(random_onnx, tmp_path, capsys):
    toml = tmp_path / "site.toml"
    toml.write_text('[source.streams]\nx = "sim"\ny = "sim"\n')
    assert main(run_args(random_onnx, "--config", str(toml), "--stream", "z")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--stream alone cannot name the config's 2 streams" in err[0]
    toml.write_text('[source.streams]\n"x y" = "sim"\n')
    assert main(run_args(random_onnx, "--config", str(toml))) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "[source] streams: stream name must be" in err[0]


def test_a_source_that_does_not_open_names_its_stream(random_onnx, tmp_path, capsys):
    missing = tmp_path / "gone.mp4"
    assert main(run_args(random_onnx, "--source", SIM.format(1), "--stream", "ok",
                         "--source", f"file:{missing}", "--stream", "bad")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "stream bad" in err[0] and str(missing) in err[0], err
