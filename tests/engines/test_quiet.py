"""Export and calibration keep third-party chatter out of our output, but never our own lines,
never errors, and never with debug logging on."""

from __future__ import annotations

import logging
import os

import pytest

from engines.quiet import quiet_third_party


class Capture(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def from_file(name: str, level: int, msg: str, path: str):
    """A record as if logged by code in ``path`` (how ONNX Runtime's quantiser logs: the root)."""
    logger = logging.getLogger(name)
    if logger.isEnabledFor(level):
        logger.handle(logger.makeRecord(name, level, path, 1, msg, (), None))


@pytest.fixture
def capture():
    root, handler = logging.getLogger(), Capture()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)


ORT = os.path.join(os.sep, "site-packages", "onnxruntime", "quantization", "quant_utils.py")


def test_chatter_is_dropped_inside_and_back_after(capture, capsys):
    with quiet_third_party():
        logging.getLogger("onnxscript.optimizer").info("Skipping constant folding")
        logging.getLogger("torch.onnx._internal.exporter").warning("torchvision is not installed")
        from_file("root", logging.WARNING, "Please consider pre-processing", ORT)
        print("Collecting tensor data and making histogram ...")
        logging.getLogger("calibration.int8").info("ours")
        logging.getLogger("onnxscript").error("a real error")
    assert capture.lines == ["ours", "a real error"]
    assert capsys.readouterr().out == ""
    logging.getLogger("onnxscript.optimizer").info("after")
    from_file("root", logging.WARNING, "after, root", ORT)
    print("printed after")
    assert capture.lines[-2:] == ["after", "after, root"]
    assert capsys.readouterr().out == "printed after\n"


def test_debug_logging_shows_everything(capture):
    logging.getLogger().setLevel(logging.DEBUG)
    with quiet_third_party():
        logging.getLogger("onnxscript.optimizer").info("Skipping constant folding")
    assert capture.lines == ["Skipping constant folding"]


def _model_with_an_unused_initializer() -> bytes:
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])
    unused = numpy_helper.from_array(np.ones(2, np.float32), "unused")
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y], [unused])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def test_onnxruntime_sessions_opened_inside_keep_their_warnings_to_themselves(capfd):
    """The quantiser's own sessions warn "Removing initializer" from C++, straight to stderr."""
    import onnxruntime as ort

    model = _model_with_an_unused_initializer()
    with quiet_third_party():
        ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    assert "Removing initializer" not in capfd.readouterr().err
    ort.InferenceSession(model, providers=["CPUExecutionProvider"])  # warnings are back after
    assert "Removing initializer 'unused'" in capfd.readouterr().err
