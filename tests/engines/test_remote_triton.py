"""The remote backend against Triton's side of the v2 protocol: a gRPC server built from Triton's
own service protos (tritonclient's generated code) that serves a repository written by
write_triton_repo, the way Triton reads it (model description from the config's parameters, the
input's name and type from the metadata, no `parameters` in the metadata). There is no Triton
binary here; the model itself runs on ONNX Runtime."""

from concurrent import futures

import numpy as np
import onnxruntime as ort
import pytest

grpc = pytest.importorskip("grpc")
pytest.importorskip("tritonclient.grpc")
from google.protobuf import text_format  # noqa: E402
from tritonclient.grpc import model_config_pb2 as mc  # noqa: E402
from tritonclient.grpc import service_pb2 as pb  # noqa: E402
from tritonclient.grpc import service_pb2_grpc as pbg  # noqa: E402

from engines.backends import BackendError, create_backend  # noqa: E402
from engines.defaults import default_onnx  # noqa: E402
from engines.serving.triton_repo import write_triton_repo  # noqa: E402


class TritonLike(pbg.GRPCInferenceServiceServicer):
    """ModelMetadata, ModelConfig and ModelInfer for one model, as Triton answers them."""

    def __init__(self, config_path, onnx_path):
        self.config = text_format.Parse(config_path.read_text(), mc.ModelConfig())
        self.session = ort.InferenceSession(str(onnx_path))
        self.batched = self.config.max_batch_size > 0

    def _tensor(self, t):
        shape = ([-1] if self.batched else []) + list(t.dims)
        return pb.ModelMetadataResponse.TensorMetadata(
            name=t.name, datatype=mc.DataType.Name(t.data_type).removeprefix("TYPE_"), shape=shape)

    def _check(self, name, context):
        if name != self.config.name:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Request for unknown model: '{name}'")

    def ModelMetadata(self, request, context):
        self._check(request.name, context)
        return pb.ModelMetadataResponse(
            name=self.config.name, versions=["1"], platform=self.config.platform,
            inputs=[self._tensor(t) for t in self.config.input],
            outputs=[self._tensor(t) for t in self.config.output])

    def ModelConfig(self, request, context):
        self._check(request.name, context)
        return pb.ModelConfigResponse(config=self.config)

    def ModelInfer(self, request, context):
        self._check(request.model_name, context)
        (inp,) = request.inputs
        dtype = {"UINT8": np.uint8, "FP32": np.float32}[inp.datatype]
        x = np.frombuffer(request.raw_input_contents[0], dtype).reshape(list(inp.shape))
        # as Triton does: the outputs the request names (all of them when it names none)
        names = [o.name for o in request.outputs] or [o.name for o in self.session.get_outputs()]
        outs = self.session.run(names, {self.session.get_inputs()[0].name: x})
        return pb.ModelInferResponse(
            model_name=request.model_name, id=request.id,
            outputs=[pb.ModelInferResponse.InferOutputTensor(name=n, datatype="FP32", shape=o.shape)
                     for n, o in zip(names, outs, strict=True)],
            raw_output_contents=[np.ascontiguousarray(o, np.float32).tobytes() for o in outs])


@pytest.fixture
def serve():
    servers = []

    def start(config_path, onnx_path) -> str:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        pbg.add_GRPCInferenceServiceServicer_to_server(TritonLike(config_path, onnx_path), server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        return f"grpc://127.0.0.1:{port}"

    yield start
    for server in servers:
        server.stop(0)


def test_uint8_onnx_repository_through_the_remote_backend(serve, tmp_path):
    config = write_triton_repo(default_onnx(), tmp_path)
    url = serve(config, config.parent / "1" / "model.onnx")
    local = create_backend("onnxruntime", default_onnx()).open()
    with create_backend("remote", f"{url}/sonostream") as remote:
        assert remote.info == local.info  # all of it from the config's parameters
        assert (remote.input_name, remote.input_type, remote.fixed_batch) == ("frames", "UINT8", 1)
        x = np.random.default_rng(2).integers(0, 256, (2, 1, 224, 224)).astype(np.float32) / 255
        got, want = remote.infer(x), local.infer(x)
    # UINT8 on the wire loses nothing (the rest is ONNX Runtime optimising two graphs apart)
    np.testing.assert_allclose(got.scores, want.scores, atol=1e-4)
    np.testing.assert_allclose(got.maps, want.maps, atol=1e-4)


def test_fp32_batched_input_as_a_plan_takes_it(serve, tmp_path):
    import torch

    from engines.export import export_onnx
    from engines.model import ModelConfig, SPNModel

    torch.manual_seed(0)
    onnx_path = export_onnx(SPNModel(ModelConfig(arch="compact")).eval(), tmp_path / "d.onnx",
                            dynamic_batch=True)
    plan = tmp_path / "m.plan"
    plan.write_bytes(b"plan")
    (tmp_path / "m.plan.json").write_text(
        '{"tensorrt_version": "10", "gpu_name": "x", "compute_capability": "9.0", "precision": '
        '"fp16", "input_shape": [1, 1, 224, 224], "batch_range": [1, 8], "onnx_sha256": ""}')
    config = write_triton_repo(onnx_path, tmp_path / "repo", plan=plan)
    url = serve(config, onnx_path)  # the FP32 graph stands in for the plan
    with create_backend("remote", f"{url}/sonostream") as remote:
        assert (remote.input_name, remote.input_type, remote.fixed_batch) == ("input", "FP32", None)
        assert remote.info.precision == "fp16"
        x = np.random.default_rng(3).random((3, 1, 224, 224), dtype=np.float32)
        out = remote.infer(x)
    want = ort.InferenceSession(str(onnx_path)).run(None, {"input": x})
    np.testing.assert_allclose(out.scores, want[0], atol=1e-5)
    assert out.maps.shape == want[1].shape


def test_a_model_without_our_description_is_refused(serve, tmp_path):
    config = write_triton_repo(default_onnx(), tmp_path)
    text = config.read_text()
    config.write_text(text[: text.index("parameters {")])
    url = serve(config, config.parent / "1" / "model.onnx")
    with pytest.raises(ValueError, match="not a sonostream model"):
        create_backend("remote", f"{url}/sonostream").open()
    with pytest.raises(BackendError, match="no model 'other'"):
        create_backend("remote", f"{url}/other").open()
