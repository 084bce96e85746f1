"""`--backend tensorrt` on a machine that cannot run it: one line naming what is missing here and
what to use instead (exit 2), never a traceback from an import deep inside."""

from __future__ import annotations

import importlib.util
import os

import pytest

from engines.backends import tensorrt_backend
from engines.defaults import default_onnx
from streamer.cli import main


def machine(monkeypatch, gpu: bool, tensorrt: bool):
    real_exists, real_spec = os.path.exists, importlib.util.find_spec
    monkeypatch.setattr(tensorrt_backend.os.path, "exists", lambda p: gpu if "nvidia" in str(p)
                        else real_exists(p))
    monkeypatch.setattr(tensorrt_backend.importlib.util, "find_spec",
                        lambda name, *a: (object() if tensorrt else None) if name == "tensorrt"
                        else real_spec(name, *a))


@pytest.mark.parametrize("gpu, tensorrt, says", [
    (False, False, ["needs an NVIDIA GPU", "no NVIDIA GPU driver and no TensorRT",
                    "use --backend onnxruntime"]),
    (False, True, ["no NVIDIA GPU driver:", "use --backend onnxruntime"]),
    (True, False, ["add --device cuda (this machine has no TensorRT (pip install"]),
    (True, True, ["add --device cuda, or use --backend onnxruntime"]),
])
def test_the_message_names_what_is_missing_and_what_to_use(monkeypatch, gpu, tensorrt, says):
    machine(monkeypatch, gpu, tensorrt)
    message = tensorrt_backend._not_on_gpu_message()
    assert "\n" not in message
    for part in says:
        assert part in message, message


def test_run_with_tensorrt_on_a_cpu_is_one_line_exit_2(monkeypatch, capsys):
    machine(monkeypatch, gpu=False, tensorrt=False)
    assert main(["run", "--backend", "tensorrt", "--model", str(default_onnx()), "--metrics-port",
                 "0", "--publish", "", "--max-frames", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no NVIDIA GPU driver" in err[0] and "--backend onnxruntime" in err[0]
