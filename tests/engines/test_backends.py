import numpy as np
import onnx
import pytest

from engines.backends import (
    REGISTRY,
    BackendError,
    BackendOptions,
    backend_class,
    backend_for,
    create_backend,
)
from engines.backends.base import Backend
from engines.export import set_metadata
from tests.conftest import ultrasound_like

CPU_BACKENDS = {"onnxruntime": "compact_onnx", "torch": "compact_checkpoint"}


@pytest.fixture(params=sorted(CPU_BACKENDS))
def backend(request):
    path = request.getfixturevalue(CPU_BACKENDS[request.param])
    with create_backend(request.param, path) as b:
        yield b


def test_contract_every_cpu_backend(backend):
    """The same contract for each registered CPU backend."""
    out = backend.infer(ultrasound_like(2))
    assert out.scores.shape == (2, 6) and out.scores.dtype == np.float32
    assert out.maps.shape == (2, 6, 14, 14) and out.maps.dtype == np.float32
    assert np.isfinite(out.scores).all() and np.isfinite(out.maps).all()
    assert backend.last_inference_s > 0
    d = backend.describe()
    assert d["backend"] == backend.name and d["classes"] == list(backend.info.classes)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((1, 1, 224, 224), np.float64), "dtype"),
    (np.zeros((1, 3, 224, 224), np.float32), "shape"),
    (np.zeros((1, 1, 128, 128), np.float32), "shape"),
    (np.zeros((224, 224), np.float32), "shape"),
    ([[0.0]], "numpy"),
])
def test_bad_input_is_refused_with_a_clear_error(backend, bad, message):
    with pytest.raises(ValueError, match=message):
        backend.infer(bad)


def test_onnxruntime_and_torch_agree():
    """The bundled (trained) model through both backends, on frames it was trained for: outputs
    of meaningful scale, within the float32 bounds derived in test_export."""
    from engines.datasets import open_dataset
    from engines.defaults import DEFAULT_MODEL_DIR
    from tests.engines.test_export import assert_close

    data = open_dataset("sim:n=2,seed=9,polar=1", input_size=224)
    x = np.stack([data[i].image for i in range(2)])[:, None].astype(np.float32)
    with (create_backend("onnxruntime", DEFAULT_MODEL_DIR / "sonostream_default.onnx") as a,
          create_backend("torch", DEFAULT_MODEL_DIR / "sonostream_default.pt") as b):
        ra, rb = a.infer(x), b.infer(x)
    assert_close(rb.scores, rb.maps, ra.scores, ra.maps)


def test_fixed_batch_model_runs_a_batch_frame_by_frame(compact_onnx, compact_onnx_dynamic):
    x = ultrasound_like(3, seed=2)
    with create_backend("onnxruntime", compact_onnx) as fixed:
        assert fixed.fixed_batch == 1
        one = fixed.infer(x)
    with create_backend("onnxruntime", compact_onnx_dynamic) as dyn:
        assert dyn.fixed_batch is None
        assert np.allclose(one.scores, dyn.infer(x).scores, atol=1e-5)


def test_missing_and_corrupt_model_files(tmp_path):
    with pytest.raises(BackendError, match="not found"):
        create_backend("onnxruntime", tmp_path / "nope.onnx").open()
    (tmp_path / "bad.onnx").write_bytes(b"\x00garbage")
    with pytest.raises(BackendError, match="cannot read"):
        create_backend("onnxruntime", tmp_path / "bad.onnx").open()


def test_class_count_mismatch_is_caught_at_open(tmp_path, compact_onnx):
    graph = onnx.load(str(compact_onnx))
    set_metadata(graph, {"sonostream.classes": '["head", "spine", "thorax"]'})
    onnx.save(graph, str(tmp_path / "lying.onnx"))
    with pytest.raises(BackendError, match="3 declared classes"):
        create_backend("onnxruntime", tmp_path / "lying.onnx").open()


def test_onnx_without_our_metadata_is_refused(tmp_path, compact_onnx):
    graph = onnx.load(str(compact_onnx))
    del graph.metadata_props[:]
    onnx.save(graph, str(tmp_path / "plain.onnx"))
    with pytest.raises(ValueError, match="not a sonostream model"):
        create_backend("onnxruntime", tmp_path / "plain.onnx").open()


def test_registry_errors_and_options():
    with pytest.raises(ValueError, match="unknown backend"):
        backend_class("openvino")
    assert [backend_for(f"m{s}") for s in (".onnx", ".pt", ".plan")] == ["onnxruntime", "torch", "tensorrt"]
    with pytest.raises(ValueError, match="cannot tell the backend"):
        backend_for("model.bin")
    assert all(issubclass(backend_class(n), Backend) for n in ("onnxruntime", "torch"))
    assert set(CPU_BACKENDS) | {"tensorrt"} <= set(REGISTRY)
    with pytest.raises(ValueError, match="device"):
        BackendOptions(device="tpu")
    with pytest.raises(ValueError, match="precision"):
        BackendOptions(precision="int4")


def test_torch_backend_refuses_gpu_options_it_cannot_honour(compact_checkpoint):
    with pytest.raises(BackendError, match="fp16"):
        create_backend("torch", compact_checkpoint, BackendOptions(precision="fp16")).open()


def test_infer_before_open_and_after_close(compact_onnx):
    b = create_backend("onnxruntime", compact_onnx)
    with pytest.raises(BackendError, match="not open"):
        b.infer(ultrasound_like(1))
    b.open()
    b.close()
    with pytest.raises(BackendError, match="not open"):
        b.infer(ultrasound_like(1))
