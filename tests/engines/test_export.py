import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from engines.checkpoint import load_checkpoint, save_checkpoint
from engines.export import FORBIDDEN_OPS, TENSORRT_OPS, check_graph, export_onnx, graph_ops
from engines.model import ModelConfig, SPNModel
from engines.model_info import ModelInfo
from streamer.cli import main
from tests.conftest import ultrasound_like


def run_onnx(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["scores", "maps"], {"input": x})


# Float32 bounds between two kernels (PyTorch, ONNX Runtime; any x86-64 CPU), from the arithmetic:
# a float32 sum of L terms, pairwise or blocked, lies within about log2(L) ulps (eps = 1.2e-7) of
# its exact value, so two kernels within 2·log2(L). A logit sums L = 128 maps × 196 positions
# (log2 L ≈ 15): 30 ulps = 3.6e-6 of the largest logit; SCORE_TOLERANCE leaves 3× that. A map
# value is the last of ~10 layers whose reductions (3×3×128 = 1152 terms, log2 ≈ 10) each add
# their rounding: ~200 ulps = 2.4e-5 of the map's own largest value; MAP_TOLERANCE leaves 4×.
# Measured on the trained model here: 4e-7 and 3.2e-6. What they guard: a wrong op, weight or
# layout in the export changes outputs by O(1) of their scale (the iteration count is checked
# exactly by counting the unrolled MatMuls).
SCORE_TOLERANCE = 1e-5  # of the largest |logit|
MAP_TOLERANCE = 1e-4  # of each map's largest |value|


def assert_close(scores, maps, o_scores, o_maps, map_tolerance=MAP_TOLERANCE):
    assert np.abs(o_scores - scores).max() <= SCORE_TOLERANCE * np.abs(scores).max()
    scale = np.abs(maps).max(axis=(-2, -1), keepdims=True)  # each map on its own scale
    assert (np.abs(o_maps - maps) / scale).max() <= map_tolerance


def assert_parity(model, path, x, map_tolerance=MAP_TOLERANCE):
    with torch.no_grad():
        scores, maps = model(torch.from_numpy(x))
    assert_close(scores.numpy(), maps.numpy(), *run_onnx(path, x), map_tolerance)


@pytest.fixture(scope="module")
def trained_onnx(tmp_path_factory):
    """The bundled model's checkpoint exported here (as `streamer export` does), and the path."""
    from engines.defaults import DEFAULT_MODEL_DIR

    checkpoint = DEFAULT_MODEL_DIR / "sonostream_default.pt"
    path = tmp_path_factory.mktemp("trained") / "trained.onnx"
    return export_onnx(load_checkpoint(checkpoint), path), checkpoint


def test_exported_graph_is_static_and_tensorrt_parsable(compact_onnx):
    graph = onnx.load(str(compact_onnx))
    onnx.checker.check_model(graph, full_check=True)
    ops = graph_ops(graph)
    assert not ops & FORBIDDEN_OPS
    assert ops <= TENSORRT_OPS
    assert max(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")) >= 17
    # one MatMul per unrolled iteration (M ← T·M) and one for the distances (xᵀx): exactly, so an
    # iteration lost in the loop (torch and ONNX alike, which parity cannot see) turns this red
    iterations = ModelInfo.from_onnx(compact_onnx).iterations
    assert iterations == 20 and sum(n.op_type == "MatMul" for n in graph.graph.node) == iterations + 1


def test_metadata_travels_with_the_model(compact_onnx, compact_model):
    info = ModelInfo.from_onnx(compact_onnx)
    assert info.classes == compact_model.cfg.classes and info.activation == "sigmoid"
    assert info.input_size == 224 and info.iterations == 20 and info.proposal_mode == "unrolled"
    assert info.arch == "compact" and info.precision == "fp32" and info.model_version
    assert info.representation == "sector"


@pytest.mark.parametrize("frames", ["random", "ultrasound"])
def test_onnx_runtime_matches_pytorch(trained_onnx, frames):
    """The bundled (trained) model exported anew: outputs of meaningful scale, where a random
    model's maps of ~1e-4 are differences of nearly equal features that cancellation amplifies."""
    from engines.datasets import open_dataset

    path, checkpoint = trained_onnx
    x = (np.random.default_rng(0).random((1, 1, 224, 224), dtype=np.float32) if frames == "random"
         else open_dataset("sim:n=1,seed=5,polar=1", input_size=224)[0].image[None, None])
    deploy = load_checkpoint(checkpoint, proposal_mode="unrolled",
                             iterations=ModelInfo.from_onnx(path).iterations)
    assert_parity(deploy.eval(), path, x.astype(np.float32))


def test_dynamic_batch_runs_several_frames(compact_onnx_dynamic, compact_model):
    x = ultrasound_like(3, seed=5)
    scores, maps = run_onnx(compact_onnx_dynamic, x)
    assert scores.shape == (3, 6) and maps.shape == (3, 6, 14, 14)
    single, _ = run_onnx(compact_onnx_dynamic, x[1:2])
    assert np.allclose(single, scores[1:2], atol=1e-5)


def test_per_class_and_stationary_forms_export_with_parity(tmp_path):
    """A small random-init head has tiny, nearly equal features, the worst case for float32
    rounding in the distances: its maps (~1e-4) are differences that cancellation amplifies,
    1.4e-5 of their scale here and up to 1.6e-4 seen on another CPU family. 3e-4 leaves 2× that
    and is still thousands of times under what a wrong op in either form changes (O(1))."""
    torch.manual_seed(0)
    model = SPNModel(ModelConfig(head="per_class", num_maps=32, input_size=128)).eval()
    x = ultrasound_like(1, size=128, seed=1)
    for mode in ("unrolled", "stationary"):
        path = export_onnx(model, tmp_path / f"{mode}.onnx", mode=mode, iterations=6)
        deploy = SPNModel(model.cfg.replace(proposal_mode=mode, iterations=6))
        deploy.load_state_dict(model.state_dict())
        assert_parity(deploy.eval(), path, x, map_tolerance=3e-4)
        assert ModelInfo.from_onnx(path).proposal_mode == mode


def _valid_graph(node: onnx.NodeProto, opset: int = 18) -> onnx.ModelProto:
    """A one-node model that onnx.checker accepts: x [1] float -> y [1] float."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        initializer=[helper.make_tensor("n", TensorProto.INT64, [], [3]),
                     helper.make_tensor("c", TensorProto.BOOL, [], [True])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model, full_check=True)
    return model


def test_check_graph_refuses_a_valid_graph_with_a_loop():
    """Valid ONNX (the checker passes), but a Loop is control flow: not static."""
    from onnx import TensorProto, helper

    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Add", ["x_in", "x_in"], ["x_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("x_in", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("x_out", TensorProto.FLOAT, [1])])
    model = _valid_graph(helper.make_node("Loop", ["n", "c", "x"], ["y"], body=body))
    with pytest.raises(ValueError, match=r"not static: it contains \['Loop'\]"):
        check_graph(model)


def test_check_graph_refuses_ops_outside_the_tensorrt_allow_list():
    from onnx import helper

    with pytest.raises(ValueError, match=r"allow-list: \['Sin'\]"):
        check_graph(_valid_graph(helper.make_node("Sin", ["x"], ["y"])))
    with pytest.raises(ValueError, match="opset 16 < 17"):
        check_graph(_valid_graph(helper.make_node("Relu", ["x"], ["y"]), opset=16))
    check_graph(_valid_graph(helper.make_node("Relu", ["x"], ["y"])))  # allowed op, opset 18


def test_cli_exports_a_briefly_trained_checkpoint(tmp_path, capsys):
    torch.manual_seed(0)
    model = SPNModel(ModelConfig(input_size=64))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.6)
    x, y = torch.from_numpy(ultrasound_like(4, size=64)), torch.randint(0, 2, (4, 6)).float()
    for _ in range(3):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x)[0], y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    ckpt = save_checkpoint(model.eval(), tmp_path / "trained.pt")
    out = tmp_path / "trained.onnx"
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(out), "--iterations", "8"]) == 0
    info = ModelInfo.from_onnx(out)
    assert info.iterations == 8 and len(info.source_sha256) == 64
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(out), "--iterations", "0"]) == 2
    assert "iterations" in capsys.readouterr().err
    assert main(["export", "--checkpoint", str(tmp_path / "none.pt"), "--out", str(out)]) == 2
