"""TensorRT path without TensorRT: the API call sequence against a recording fake, sidecar and
cache decisions, clear errors for a missing TensorRT or GPU, the build command's arguments."""

from __future__ import annotations

import builtins
import sys
import types

import numpy as np
import pytest

from engines.backends import BackendError, BackendOptions, create_backend
from engines.model_info import file_sha256
from engines.tensorrt import compat
from engines.tensorrt.build import BuildOptions, build_plan, ensure_plan
from engines.tensorrt.sidecar import PlanMismatch, Sidecar, decide
from streamer.cli import build_parser, main
from streamer.cli.build_cmd import parse_batches
from tests.engines.fake_tensorrt import FakeCudart, api_names, expected, fake_trt

ENV = {"tensorrt_version": "10.13.0", "gpu_name": "NVIDIA H100", "compute_capability": "9.0"}


@pytest.fixture
def gpu(monkeypatch):
    """The TensorRT and cuda-python fakes installed as the modules the code imports."""
    log: list = []
    trt = fake_trt(log)
    cuda_pkg, bindings = types.ModuleType("cuda"), types.ModuleType("cuda.bindings")
    bindings.runtime, cuda_pkg.bindings = trt._cudart, bindings
    for name, mod in {"tensorrt": trt, "cuda": cuda_pkg, "cuda.bindings": bindings,
                      "cuda.bindings.runtime": trt._cudart}.items():
        monkeypatch.setitem(sys.modules, name, mod)
    return types.SimpleNamespace(trt=trt, rt=trt._cudart, log=log)


def _plan(onnx, tmp_path, trt, batches=(1, 8), gpu=0, name="m.plan"):
    env = {"tensorrt_version": trt.__version__, **FakeCudart.device_env(gpu)}
    build_plan(onnx, tmp_path / name, BuildOptions(batches), trt=trt, env=env)
    return tmp_path / name


def test_build_calls_the_real_api_in_order(compact_onnx_dynamic, tmp_path):
    log = []
    cache = tmp_path / "timing.cache"
    side = build_plan(compact_onnx_dynamic, tmp_path / "m.plan",
                      BuildOptions((8, 1, 32), 512, str(cache)), trt=fake_trt(log), env=ENV)
    names = [c[0] for c in log]
    order = ["builder.create_network", "parser.parse_from_file", "builder.create_builder_config",
             "config.set_memory_pool_limit", "config.create_timing_cache", "config.set_timing_cache",
             "builder.create_optimization_profile", "profile.set_shape",
             "config.add_optimization_profile", "builder.build_serialized_network"]
    assert [n for n in names if n in order] == order
    calls = {c[0]: c for c in log}
    assert calls["builder.create_network"][1] == (1 << 2,)  # STRONGLY_TYPED, no precision flags
    assert calls["config.set_memory_pool_limit"][1] == ("WORKSPACE", 512 << 20)
    assert calls["profile.set_shape"][1] == (
        "input", [1, 1, 224, 224], [8, 1, 224, 224], [32, 1, 224, 224])
    assert not any("BuilderFlag" in n or "flag" in n for n in names)  # TF32 stays allowed by default
    assert (tmp_path / "m.plan").read_bytes() == b"PLAN:1:32" and cache.read_bytes() == b"CACHE"
    again = Sidecar.read(tmp_path / "m.plan")
    assert again == side and side.batch_range == [1, 32] and side.precision == "fp32"
    assert side.onnx_sha256 == file_sha256(compact_onnx_dynamic) and side.gpu_name == "NVIDIA H100"


def test_fixed_batch_onnx_refuses_a_batch_range(compact_onnx, tmp_path):
    with pytest.raises(BackendError, match="--batch dynamic"):
        build_plan(compact_onnx, tmp_path / "m.plan", BuildOptions((1, 8)), trt=fake_trt([], dynamic=False), env=ENV)


def test_cache_decisions(compact_onnx_dynamic, tmp_path):
    plan = tmp_path / "m.plan"
    assert decide(plan, ENV, compact_onnx_dynamic) == "rebuild"  # no plan yet
    with pytest.raises(PlanMismatch, match="no ONNX"):
        decide(plan, ENV)
    build_plan(compact_onnx_dynamic, plan, trt=fake_trt([]), env=ENV)
    assert decide(plan, ENV, compact_onnx_dynamic) == "use" and decide(plan, ENV) == "use"
    other = {**ENV, "gpu_name": "NVIDIA L4", "compute_capability": "8.9"}
    assert decide(plan, other, compact_onnx_dynamic) == "rebuild"
    with pytest.raises(PlanMismatch, match="gpu_name.*rebuild it here"):
        decide(plan, other)
    with pytest.raises(PlanMismatch, match="tensorrt_version"):
        decide(plan, {**ENV, "tensorrt_version": "11.0.0"})
    log = []
    ensure_plan(plan, compact_onnx_dynamic, trt=fake_trt(log), env=other)
    assert ("builder.build_serialized_network", (), {}) in log
    assert Sidecar.read(plan).gpu_name == "NVIDIA L4"


def test_changed_onnx_or_broken_sidecar_rebuilds(compact_onnx_dynamic, tmp_path):
    plan = tmp_path / "m.plan"
    build_plan(compact_onnx_dynamic, plan, trt=fake_trt([]), env=ENV)
    other_onnx = tmp_path / "other.onnx"
    other_onnx.write_bytes(compact_onnx_dynamic.read_bytes() + b" ")
    assert decide(plan, ENV, other_onnx) == "rebuild"
    (tmp_path / "m.plan.json").write_text("{not json")
    assert decide(plan, ENV, compact_onnx_dynamic) == "rebuild"
    with pytest.raises(PlanMismatch, match="no readable sidecar"):
        decide(plan, ENV)


def _hide(monkeypatch, *modules):
    real = builtins.__import__

    def fake(name, *args, **kwargs):
        if name.split(".")[0] in modules:
            raise ImportError(f"No module named {name!r}")
        return real(name, *args, **kwargs)

    for m in list(sys.modules):
        if m.split(".")[0] in modules:
            monkeypatch.delitem(sys.modules, m)
    monkeypatch.setattr(builtins, "__import__", fake)


def test_missing_tensorrt_is_one_clear_error(monkeypatch, tmp_path):
    _hide(monkeypatch, "tensorrt")
    plan = tmp_path / "m.plan"
    plan.write_bytes(b"x")
    with pytest.raises(BackendError, match=r"TensorRT is not installed.*--backend onnxruntime"):
        create_backend("tensorrt", plan, BackendOptions(device="cuda")).open()


def test_old_tensorrt_is_refused(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="8.6.1"))
    with pytest.raises(BackendError, match="too old"):
        compat.import_tensorrt()


def test_missing_cuda_bindings_and_gpu(monkeypatch):
    from engines.tensorrt import cuda

    _hide(monkeypatch, "cuda", "pycuda")
    with pytest.raises(BackendError, match="cuda-python.*--backend onnxruntime"):
        cuda.load_cuda()
    rt = types.SimpleNamespace(cudaGetDeviceCount=lambda: (0, 0))
    with pytest.raises(BackendError, match="no CUDA GPU"):
        cuda.CudaRuntime(rt)


def test_cpu_device_is_refused(tmp_path):
    plan = tmp_path / "m.plan"
    plan.write_bytes(b"x")
    with pytest.raises(BackendError, match="--backend onnxruntime"):
        create_backend("tensorrt", plan).open()


def test_build_arguments_and_errors(tmp_path, capsys):
    args = build_parser().parse_args(["build", "--onnx", "m.onnx", "--batch", "1,8,32", "--timing-cache", "t.cache"])
    assert (args.precision, args.workspace_mb, args.timing_cache) == ("auto", 1024, "t.cache")
    assert parse_batches(args.batch) == (1, 8, 32)
    with pytest.raises(ValueError):
        parse_batches("1,x")
    assert main(["build", "--onnx", str(tmp_path / "none.onnx")]) == 2
    assert "not found" in capsys.readouterr().err


def test_build_command_batch_8_makes_a_plan_that_opens(compact_onnx_dynamic, tmp_path, gpu, capsys):
    plan = tmp_path / "m.plan"
    argv = ["build", "--onnx", str(compact_onnx_dynamic), "--out", str(plan), "--batch", "8"]
    assert main([*argv, "--no-tf32", "--device", "cuda:1"]) == 0
    side = Sidecar.read(plan)
    assert (side.batch_range, side.tf32, side.gpu_name) == ([1, 8], False, "NVIDIA L4")
    assert "batches 1..8, strict FP32" in capsys.readouterr().out
    with create_backend("tensorrt", plan, BackendOptions(device="cuda:1")) as be:
        assert be.infer(np.zeros((8, 1, 224, 224), np.float32)).scores.shape == (8, 6)
    assert main([*argv, "--device", "cpu"]) == 2
    assert "--device must be cuda" in capsys.readouterr().err


def test_fake_tensorrt_refuses_what_the_real_api_lacks():
    ten, eleven = api_names(10), api_names(11)
    assert {"execute_async_v3", "set_input_shape", "set_device_memory", "num_errors"} <= ten & eleven
    assert "execute_async_v2" not in ten | eleven  # removed in TensorRT 10
    assert "FP16" in ten and "FP16" not in eleven and "EXPLICIT_BATCH" not in eleven
    trt = fake_trt([], version="11.4.0")
    with pytest.raises(AttributeError, match="not in TensorRT 11"):
        trt.BuilderFlag.FP16  # noqa: B018
    with pytest.raises(AttributeError, match="execute_async_v2"):
        trt.Runtime(None).deserialize_cuda_engine(b"PLAN:1:1").create_execution_context().execute_async_v2  # noqa: B018


@pytest.mark.parametrize("version", ["10.16.1", "11.4.0"])
def test_build_uses_only_names_both_versions_have(version, compact_onnx_dynamic, tmp_path):
    log = []
    build_plan(compact_onnx_dynamic, tmp_path / "m.plan", BuildOptions((1,), tf32=False),
               trt=fake_trt(log, version), env={**ENV, "tensorrt_version": version})
    assert ("config.clear_flag", ("TF32",), {}) in log  # strict FP32 asked for
    assert Sidecar.read(tmp_path / "m.plan").tf32 is False


@pytest.mark.parametrize("batches, profile", [((8,), (1, 8, 8)), ((8, 32), (1, 8, 32)), ((1,), (1, 1, 1))])
def test_profile_always_starts_at_batch_one(batches, profile, compact_onnx_dynamic, tmp_path, gpu):
    plan = _plan(compact_onnx_dynamic, tmp_path, gpu.trt, batches)
    shape = next(c[1] for c in gpu.log if c[0] == "profile.set_shape")
    assert tuple(s[0] for s in shape[1:]) == profile
    assert Sidecar.read(plan).batch_range == [1, profile[2]]
    x = np.random.default_rng(0).random((1, 1, 224, 224), dtype=np.float32)
    with create_backend("tensorrt", plan, BackendOptions(device="cuda")) as be:  # warms up at batch 1
        np.testing.assert_allclose(be.infer(x).scores, expected(x)[0], rtol=1e-5)


@pytest.mark.parametrize("graphs", [False, True])
def test_every_batch_size_has_its_own_context_and_graph(graphs, compact_onnx_dynamic, tmp_path, gpu):
    plan = _plan(compact_onnx_dynamic, tmp_path, gpu.trt, (1, 8))
    rng = np.random.default_rng(1)
    with create_backend("tensorrt", plan, BackendOptions(device="cuda", cuda_graphs=graphs)) as be:
        for b in (1, 2, 1, 8, 2, 1):  # capture b1, capture b2, replay b1 ...
            x = rng.random((b, 1, 224, 224), dtype=np.float32)
            out = be.infer(x)
            np.testing.assert_allclose(out.scores, expected(x)[0], rtol=1e-5)
            np.testing.assert_allclose(out.maps, expected(x)[1], rtol=1e-5)
        assert be.describe().get("graph_batches") == ([1, 2, 8] if graphs else [])
    shapes = [c[1][1] for c in gpu.log if c[0] == "context.set_input_shape"]
    assert len(gpu.trt._contexts) == 3 and sorted(s[0] for s in shapes) == [1, 2, 8]
    memory = {c[1] for c in gpu.log if c[0] == "context.set_device_memory"}
    assert len(memory) == 1  # one scratch allocation shared by the contexts


def test_failed_enqueue_is_an_error_not_the_previous_outputs(compact_onnx_dynamic, tmp_path, gpu):
    plan = _plan(compact_onnx_dynamic, tmp_path, gpu.trt, (1, 8))
    x = np.random.default_rng(2).random((1, 1, 224, 224), dtype=np.float32)
    with create_backend("tensorrt", plan, BackendOptions(device="cuda")) as be:
        be.infer(x)
        gpu.trt._contexts[0]._fail = 1
        with pytest.raises(BackendError, match="execute_async_v3 returned False"):
            be.infer(x * 0.5)
        np.testing.assert_allclose(be.infer(x * 0.5).scores, expected(x * 0.5)[0], rtol=1e-5)


def test_refused_input_shape_is_an_error(compact_onnx_dynamic, tmp_path, gpu):
    plan = _plan(compact_onnx_dynamic, tmp_path, gpu.trt, (1, 8))
    with create_backend("tensorrt", plan, BackendOptions(device="cuda")) as be:
        be.engine._range = (1, 4)  # an engine whose profile disagrees with its sidecar
        with pytest.raises(BackendError, match=r"refused input shape \[6, 1, 224, 224\]"):
            be.infer(np.zeros((6, 1, 224, 224), np.float32))


def test_failed_capture_ends_it_and_runs_without_a_graph(compact_onnx_dynamic, tmp_path, gpu):
    plan = _plan(compact_onnx_dynamic, tmp_path, gpu.trt, (1, 8))
    x = np.random.default_rng(3).random((4, 1, 224, 224), dtype=np.float32)
    with create_backend("tensorrt", plan, BackendOptions(device="cuda", cuda_graphs=True)) as be:
        gpu.rt.fail_capture = True
        out = be.infer(x)
        np.testing.assert_allclose(out.scores, expected(x)[0], rtol=1e-5)
        assert be.describe().get("graph_batches") == [1]
        np.testing.assert_allclose(be.infer(x).scores, expected(x)[0], rtol=1e-5)
    names = [c[0] for c in gpu.log]
    assert names.count("cudart.cudaStreamBeginCapture") == names.count("cudart.cudaStreamEndCapture") == 2
    assert "cudart.cudaGetLastError" in names and not gpu.rt.capturing and not gpu.rt.graphs


def test_close_destroys_graphs_and_frees_memory(compact_onnx_dynamic, tmp_path, gpu):
    plan = _plan(compact_onnx_dynamic, tmp_path, gpu.trt, (1, 8))
    be = create_backend("tensorrt", plan, BackendOptions(device="cuda", cuda_graphs=True)).open()
    be.infer(np.zeros((3, 1, 224, 224), np.float32))
    assert len(gpu.rt.execs) == 2 and not gpu.rt.graphs  # a graph goes once instantiated
    be.close()
    assert not gpu.rt.execs and not gpu.rt.mem and not gpu.rt.pinned


def test_device_index_is_used_in_every_thread(compact_onnx_dynamic, tmp_path, gpu):
    import threading

    plan = _plan(compact_onnx_dynamic, tmp_path, gpu.trt, (1, 8), gpu=1)
    with pytest.raises(PlanMismatch, match="NVIDIA L4.*NVIDIA H100"):
        create_backend("tensorrt", plan, BackendOptions(device="cuda")).open()  # GPU 0 is an H100
    x = np.random.default_rng(4).random((2, 1, 224, 224), dtype=np.float32)
    with create_backend("tensorrt", plan, BackendOptions(device="cuda:1", cuda_graphs=True)) as be:
        assert be.describe()["gpu"] == "NVIDIA L4"
        got = []
        worker = threading.Thread(target=lambda: got.append(be.infer(x)))  # the pipeline's thread
        worker.start()
        worker.join()
        np.testing.assert_allclose(got[0].scores, expected(x)[0], rtol=1e-5)
    with pytest.raises(BackendError, match=r"cuda:5 asked for.*2 GPU"):
        create_backend("tensorrt", plan, BackendOptions(device="cuda:5")).open()


def test_onnx_is_not_built_beside_itself(compact_onnx_dynamic, tmp_path, gpu):
    onnx_path = tmp_path / "models" / "m.onnx"
    onnx_path.parent.mkdir()
    onnx_path.write_bytes(compact_onnx_dynamic.read_bytes())
    with pytest.raises(BackendError, match="streamer build --onnx"):
        create_backend("tensorrt", onnx_path, BackendOptions(device="cuda")).open()
    cache = tmp_path / "plans"
    for _ in range(2):
        with create_backend("tensorrt", onnx_path, BackendOptions(device="cuda"), build_if_missing=cache) as be:
            be.infer(np.zeros((1, 1, 224, 224), np.float32))
    assert [c[0] for c in gpu.log].count("builder.build_serialized_network") == 1  # built once, reused
    assert sorted(p.name for p in onnx_path.parent.iterdir()) == ["m.onnx"]
    assert len(list(cache.glob("m.*.plan"))) == 1


@pytest.mark.gpu
def test_tensorrt_matches_onnxruntime_on_gpu(compact_onnx_dynamic, tmp_path):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    pytest.importorskip("tensorrt")
    plan = tmp_path / "m.plan"
    build_plan(compact_onnx_dynamic, plan, BuildOptions((1, 4)))
    rng = np.random.default_rng(0)
    with create_backend("onnxruntime", compact_onnx_dynamic) as ref:
        for graphs in (False, True):
            with create_backend("tensorrt", plan, BackendOptions(device="cuda", cuda_graphs=graphs)) as be:
                for b in (1, 4, 1, 2):  # graphs captured at several sizes, replayed in turn
                    x = rng.random((b, 1, 224, 224), dtype=np.float32)
                    want, got = ref.infer(x), be.infer(x)
                    np.testing.assert_allclose(got.scores, want.scores, atol=1e-2)
                    np.testing.assert_allclose(got.maps, want.maps, atol=1e-2 * np.abs(want.maps).max() + 1e-6)
