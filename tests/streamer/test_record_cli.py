"""`streamer run --record` says what it could not record: in the summary, in
streamer_record_lost_total and in its exit status (4); `--record-strict` stops at the first loss."""

import re

from streamer.cli import main


def run_args(random_onnx, *extra):
    return ["run", "--source", "sim:realtime=0,width=160,height=120", "--model", str(random_onnx),
            "--publish", "tcp://127.0.0.1:*", "--metrics-port", "0", *extra]




def test_results_lost_on_a_full_disk_are_counted_said_and_exit_4(random_onnx, capsys, kept_metrics):
    code = main(run_args(random_onnx, "--max-frames", "5", "--record", "/dev/full"))
    out, err = capsys.readouterr()
    assert code == 4, (out, err)
    assert "record: 5 of 5 results not recorded in /dev/full (0 behind: the destination did not " \
           "keep up; 5 write errors)" in out.splitlines()
    err = err.strip().splitlines()
    assert len(err) == 1 and re.fullmatch(
        r"streamer run: error: 5 results were not recorded in /dev/full; first: result seq \d+ "
        r"\(No space left on device\)", err[0]), err
    lost = kept_metrics[0].registry.get_sample_value("streamer_record_lost_total",
                                                {"stream": "main", "reason": "error"})
    assert lost == 5


def test_record_strict_stops_the_run_at_the_first_loss(random_onnx, capsys):
    limit = 3000  # far more frames than the run processes before it stops
    code = main(run_args(random_onnx, "--max-frames", str(limit), "--record", "/dev/full",
                         "--record-strict"))
    out, err = capsys.readouterr()
    assert code == 4, (out, err)
    err = err.strip().splitlines()
    assert len(err) == 1 and re.fullmatch(
        r"streamer run: error: stopped \(--record-strict\): result seq \d+ \(No space left on "
        r"device\) could not be recorded in /dev/full", err[0]), err
    processed = int(re.search(r"^frames: captured \d+, processed (\d+)", out, re.M).group(1))
    assert 1 <= processed < limit


def test_a_complete_record_is_said_and_exits_0(random_onnx, capsys, tmp_path):
    path = tmp_path / "rec.jsonl"
    assert main(run_args(random_onnx, "--max-frames", "3", "--record", str(path))) == 0
    assert f"record: all 3 results written to {path}" in capsys.readouterr().out.splitlines()
    assert len(path.read_text().splitlines()) == 3


def test_record_strict_without_a_record_is_one_line(capsys):
    assert main(["run", "--record-strict", "--metrics-port", "0", "--max-frames", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["streamer run: error: --record-strict needs --record FILE (or [publish] record)"]
