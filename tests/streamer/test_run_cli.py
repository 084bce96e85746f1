"""What `streamer run` tells its user: where its outputs are, and what to do with a model file
that is a PyTorch checkpoint rather than ONNX."""

import re

import pytest
import torch

from engines.errors import UserError
from engines.model_info import ModelInfo
from streamer.cli import main
from tests.streamer.test_viewer import free_port

RUN = ["run", "--source", "sim:realtime=0", "--publish", "tcp://127.0.0.1:*", "--max-frames", "2"]


def test_run_says_where_results_and_metrics_are(random_onnx, capsys):
    port = free_port()
    assert main([*RUN, "--model", str(random_onnx), "--metrics-port", str(port)]) == 0
    out = capsys.readouterr().out.splitlines()
    results = [line for line in out if line.startswith("results  ")]
    assert len(results) == 1 and re.fullmatch(  # the bound port, not the asked-for "*"
        r"results  tcp://127\.0\.0\.1:(\d+)   \(another terminal: streamer tap --connect "
        r"tcp://127\.0\.0\.1:\1\)", results[0]), out
    assert f"metrics  http://127.0.0.1:{port}/metrics" in out
    assert not any(line.startswith("viewer") for line in out)
    assert out.index(results[0]) < min(i for i, line in enumerate(out) if line.startswith("frames:"))


def test_run_says_where_its_viewer_is(random_onnx, capsys):
    pytest.importorskip("aiohttp")
    assert main([*RUN, "--model", str(random_onnx), "--metrics-port", "0", "--view-port", "0"]) == 0
    out = capsys.readouterr().out.splitlines()
    viewer = [line for line in out if line.startswith("viewer   ")]
    assert len(viewer) == 1 and re.fullmatch(r"viewer   http://127\.0\.0\.1:[1-9]\d*/", viewer[0]), out
    assert not any(line.startswith("metrics") for line in out)  # --metrics-port 0: none


def test_where_lines_read_as_the_demo_prints_them():
    from streamer.cli.run_cmd import where

    class Sink:
        def __init__(self, kind, **attrs):
            self.kind = kind
            self.__dict__.update(attrs)

    lines = where([Sink("zmq", endpoint="tcp://127.0.0.1:5556"), Sink("record"),
                   Sink("view", url="http://127.0.0.1:8090/")], "http://127.0.0.1:9108/metrics")
    assert lines == ["results  tcp://127.0.0.1:5556   (another terminal: streamer tap)",
                     "metrics  http://127.0.0.1:9108/metrics",
                     "viewer   http://127.0.0.1:8090/"]


def test_tap_and_view_help_show_the_default_endpoint(capsys):
    for command in ("tap", "view"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        help_text = " ".join(capsys.readouterr().out.split())
        assert "--connect CONNECT the streamer's PUB endpoint (default tcp://127.0.0.1:5556)" in help_text


def _checkpoint(path, legacy: bool):
    torch.save({"format": "sonostream-checkpoint", "state_dict": {"w": torch.zeros(2)}}, path,
               _use_new_zipfile_serialization=not legacy)
    assert path.read_bytes()[:4] == b"PK\x03\x04" if not legacy else path.read_bytes()[:1] == b"\x80"
    return path


@pytest.mark.parametrize("name, legacy", [("model.pt", False), ("model.pth", True),
                                          ("misnamed.onnx", False)])
def test_a_torch_checkpoint_as_the_model_says_how_to_run_it(tmp_path, capsys, name, legacy):
    """Not a protobuf parse error: what the file is, and the two ways to run it."""
    path = _checkpoint(tmp_path / name, legacy)
    code = main(["run", "--model", str(path), "--publish", "tcp://127.0.0.1:*",
                 "--metrics-port", "0", "--max-frames", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert f"{path} is a PyTorch checkpoint, not an ONNX model" in err[0]
    onnx = next(iter(re.findall(r"streamer export --checkpoint \S+ --out (\S+\.onnx)", err[0])), "")
    assert onnx and onnx != str(path) and f"--model {onnx}" in err[0], err[0]
    assert "--backend torch" in err[0] and "protobuf" not in err[0].lower()


def test_onnx_readers_name_a_torch_checkpoint(tmp_path):
    path = _checkpoint(tmp_path / "model.pt", legacy=False)
    with pytest.raises(UserError, match="is a PyTorch checkpoint, not an ONNX model"):
        ModelInfo.from_onnx(path)


def test_the_summary_says_how_many_dropped_frames_never_arrived():
    """Frames lost inside ZeroMQ (holes in the sender's seq) are part of dropped, and said so."""
    from streamer.cli.run_cmd import summary

    counts = {"captured": 100, "processed": 60, "dropped": 40, "invalid": 0}
    lines = summary(counts, {}, 2.0, gaps=25).splitlines()
    assert lines[0] == "frames: captured 100, processed 60, dropped 40, invalid 0 in 2.0 s"
    assert lines[1].strip() == "25 of the dropped never arrived (holes in the sender's seq)"
    assert "never arrived" not in summary(counts, {}, 2.0)  # none: no line
