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

ENV = {"tensorrt_version": "10.13.0", "gpu_name": "NVIDIA H100", "compute_capability": "9.0"}


class Recorder:
    """Any attribute is a callable that records its call and returns another Recorder."""

    def __init__(self, log, name):
        self._log, self._name = log, name

    def __getattr__(self, attr):
        return Recorder(self._log, f"{self._name}.{attr}")

    def __call__(self, *args, **kwargs):
        self._log.append((self._name, args, kwargs))
        return Recorder(self._log, self._name + "()")


def fake_trt(log, version="10.13.0", dynamic=True):
    trt = types.SimpleNamespace(__version__=version)
    trt.NetworkDefinitionCreationFlag = types.SimpleNamespace(STRONGLY_TYPED=2)
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="WORKSPACE")
    trt.Logger = type("Logger", (), {"WARNING": 2, "VERBOSE": 4, "__init__": lambda s, lvl: log.append(("Logger", (lvl,), {}))})

    class Builder(Recorder):
        def __init__(self, logger):
            super().__init__(log, "builder")

        def create_network(self, flags):
            log.append(("builder.create_network", (flags,), {}))
            net = Recorder(log, "network")
            net.get_input = lambda i: types.SimpleNamespace(name="input", shape=(-1 if dynamic else 1, 1, 224, 224))
            return net

        def build_serialized_network(self, network, config):
            log.append(("builder.build_serialized_network", (), {}))
            return b"PLAN"

    class Config(Recorder):
        def get_timing_cache(self):
            return types.SimpleNamespace(serialize=lambda: b"CACHE")

    Builder.create_builder_config = lambda self: (log.append(("builder.create_builder_config", (), {})),
                                                  Config(log, "config"))[1]

    class OnnxParser(Recorder):
        num_errors = 0

        def __init__(self, network, logger):
            super().__init__(log, "parser")

        def parse_from_file(self, path):
            log.append(("parser.parse_from_file", (path,), {}))
            return True

    trt.Builder, trt.OnnxParser = Builder, OnnxParser
    return trt


def test_build_calls_the_real_api_in_order(compact_onnx_dynamic, tmp_path):
    log = []
    cache = tmp_path / "timing.cache"
    side = build_plan(compact_onnx_dynamic, tmp_path / "m.plan",
                      BuildOptions((8, 1, 32), 512, str(cache)), trt=fake_trt(log), env=ENV)
    names = [c[0] for c in log]
    order = ["builder.create_network", "parser.parse_from_file", "builder.create_builder_config",
             "config.set_memory_pool_limit", "config.create_timing_cache", "config.set_timing_cache",
             "builder.create_optimization_profile", "builder.create_optimization_profile().set_shape",
             "config.add_optimization_profile", "builder.build_serialized_network"]
    assert [n for n in names if n in order] == order
    calls = {c[0]: c for c in log}
    assert calls["builder.create_network"][1] == (1 << 2,)  # STRONGLY_TYPED, no precision flags
    assert calls["config.set_memory_pool_limit"][1] == ("WORKSPACE", 512 << 20)
    assert calls["builder.create_optimization_profile().set_shape"][1] == (
        "input", [1, 1, 224, 224], [8, 1, 224, 224], [32, 1, 224, 224])
    assert not any("BuilderFlag" in n or "set_flag" in n for n in names)
    assert (tmp_path / "m.plan").read_bytes() == b"PLAN" and cache.read_bytes() == b"CACHE"
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
    with pytest.raises(BackendError, match="--device cuda"):
        create_backend("tensorrt", plan).open()


def test_build_arguments_and_errors(tmp_path, capsys):
    args = build_parser().parse_args(["build", "--onnx", "m.onnx", "--batch", "1,8,32", "--timing-cache", "t.cache"])
    assert (args.precision, args.workspace_mb, args.timing_cache) == ("auto", 1024, "t.cache")
    assert parse_batches(args.batch) == (1, 8, 32)
    with pytest.raises(ValueError):
        parse_batches("1,x")
    assert main(["build", "--onnx", str(tmp_path / "none.onnx")]) == 2
    assert "not found" in capsys.readouterr().err


@pytest.mark.gpu
def test_tensorrt_matches_onnxruntime_on_gpu(compact_onnx_dynamic, tmp_path):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    pytest.importorskip("tensorrt")
    onnx_path = tmp_path / "m.onnx"
    onnx_path.write_bytes(compact_onnx_dynamic.read_bytes())
    x = np.random.default_rng(0).random((1, 1, 224, 224), dtype=np.float32)
    with create_backend("onnxruntime", onnx_path) as ref:
        want = ref.infer(x)
    for graphs in (False, True):
        with create_backend("tensorrt", onnx_path, BackendOptions(device="cuda", cuda_graphs=graphs)) as be:
            got = be.infer(x)
        np.testing.assert_allclose(got.scores, want.scores, atol=1e-3)
        np.testing.assert_allclose(got.maps, want.maps, atol=1e-3 * np.abs(want.maps).max() + 1e-6)


def _gpu_check():
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("gpu_check", root / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return root, module


def test_gpu_check_without_gpu_exits_with_a_clear_message(monkeypatch, capsys):
    import torch

    root, gpu_check = _gpu_check()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main(["--out", "unused"]) == 3
    assert "no CUDA GPU visible" in capsys.readouterr().err
    assert (root / "scripts" / "gpu_check").stat().st_mode & 0o111


def test_gpu_check_cpu_dry_run_writes_its_report(tmp_path):
    import json

    _, gpu_check = _gpu_check()
    assert gpu_check.main(["--cpu-dry-run", "--iters", "2", "--models", "default", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    rows = {r["variant"]: r for r in report["models"][0]["rows"]}
    assert set(rows) == {"torch fp32", "onnxruntime cpu"} and all("error" not in r for r in rows.values())
    assert rows["torch fp32"]["decisions_agree"] and rows["torch fp32"]["max_abs_dprob"] < 1e-4
    assert "| torch fp32 |" in (tmp_path / "gpu_check.md").read_text()
