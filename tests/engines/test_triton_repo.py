"""The Triton model repository, checked against Triton's own ModelConfig protobuf schema."""

import json

import numpy as np
import onnxruntime as ort
import pytest

from engines.defaults import default_onnx
from engines.model_info import ModelInfo
from engines.serving.triton_repo import TritonRepoOptions, write_triton_repo

model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2")
text_format = pytest.importorskip("google.protobuf.text_format")


def parse(path):
    """Strict parse: an unknown field or a bad value in config.pbtxt raises here."""
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def parameters_info(config) -> ModelInfo:
    return ModelInfo.from_metadata({k: v.string_value for k, v in config.parameters.items()})


@pytest.fixture(scope="module")
def dynamic_onnx(tmp_path_factory):
    import torch

    from engines.export import export_onnx
    from engines.model import ModelConfig, SPNModel

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("triton") / "dynamic.onnx"
    return export_onnx(SPNModel(ModelConfig(arch="compact")).eval(), path, dynamic_batch=True)


def test_fixed_batch_onnx_repository(tmp_path):
    path = write_triton_repo(default_onnx(), tmp_path, opts=TritonRepoOptions(kind="KIND_CPU"))
    config = parse(path)
    assert path == tmp_path / "sonostream" / "config.pbtxt"
    assert config.platform == "onnxruntime_onnx" and config.max_batch_size == 0
    assert not config.HasField("dynamic_batching")  # a batch-1 model cannot be batched
    assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
    (inp,) = config.input
    assert (inp.name, inp.data_type, list(inp.dims)) == (
        "frames", model_config_pb2.TYPE_UINT8, [1, 1, 224, 224])
    assert [o.name for o in config.output] == ["scores", "maps"]
    assert parameters_info(config) == ModelInfo.from_onnx(default_onnx())


def test_dynamic_batch_repository_scales_uint8_inside_the_model(tmp_path, dynamic_onnx):
    path = write_triton_repo(dynamic_onnx, tmp_path, opts=TritonRepoOptions(name="fetal", max_batch=8,
                                                                             max_queue_delay_us=500))
    config = parse(path)
    assert config.name == "fetal" and config.max_batch_size == 8
    assert config.dynamic_batching.max_queue_delay_microseconds == 500
    assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    assert list(config.input[0].dims) == [1, 224, 224]  # the batch axis is Triton's
    assert list(config.output[0].dims) == [6] and list(config.output[1].dims)[0] == 6
    served = ort.InferenceSession(str(path.parent / "1" / "model.onnx"))
    original = ort.InferenceSession(str(dynamic_onnx))
    frames = np.random.default_rng(1).integers(0, 256, (3, 1, 224, 224), dtype=np.uint8)
    got = served.run(None, {"frames": frames})
    want = original.run(None, {"input": frames.astype(np.float32) * np.float32(1 / 255)})
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)  # the same scaling as our preprocessing, bit for bit


def test_plan_repository(tmp_path, dynamic_onnx):
    plan = tmp_path / "model.plan"
    plan.write_bytes(b"not a real plan")
    meta = ModelInfo.from_onnx(dynamic_onnx).to_metadata()
    (tmp_path / "model.plan.json").write_text(json.dumps({
        "tensorrt_version": "10.0", "gpu_name": "x", "compute_capability": "9.0",
        "precision": "fp16", "input_shape": [4, 1, 224, 224], "batch_range": [1, 4],
        "onnx_sha256": "", "model_metadata": meta}))
    config = parse(write_triton_repo(dynamic_onnx, tmp_path / "repo", plan=plan))
    assert config.platform == "tensorrt_plan" and config.max_batch_size == 4  # the plan's profile
    assert config.input[0].data_type == model_config_pb2.TYPE_FP32
    assert parameters_info(config).precision == "fp16"
    assert (tmp_path / "repo" / "sonostream" / "1" / "model.plan").read_bytes() == b"not a real plan"


def test_export_command_writes_the_bundled_model(tmp_path, capsys):
    from streamer.cli import main

    assert main(["export", "--triton-repo", str(tmp_path)]) == 0
    assert parse(tmp_path / "sonostream" / "config.pbtxt").platform == "onnxruntime_onnx"
    assert main(["export", "--plan", "x.plan"]) == 2
