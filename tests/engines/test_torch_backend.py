"""The torch backend's GPU choices that can be checked without a GPU, and the GPU checks themselves."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engines.backends import BackendError, BackendOptions, create_backend
from engines.backends.torch_backend import TorchBackend, keep_proposal_fp32
from engines.soft_proposal import SoftProposal


def test_fp16_model_keeps_the_soft_proposal_in_fp32(compact_model):
    torch.manual_seed(0)
    u = torch.rand(2, 512, 14, 14) * 40  # squared distances past FP16's 65504
    want = SoftProposal("unrolled", 12)(u)[1]
    assert not torch.isfinite(SoftProposal("unrolled", 12)(u.half())[1]).all()  # why it matters
    model = type(compact_model)(compact_model.cfg)
    model.set_proposal_mode("unrolled", 12)
    keep_proposal_fp32(model)
    coupled, m = model.soft_proposal(u.half())
    assert m.dtype == coupled.dtype == torch.float16
    torch.testing.assert_close(m.float(), want, rtol=2e-3, atol=1e-6)


def test_cuda_device_index_is_resolved_and_checked(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    assert TorchBackend._device(torch, "cuda") == torch.device("cuda", 1)
    assert TorchBackend._device(torch, "cuda:0") == torch.device("cuda", 0)
    with pytest.raises(BackendError, match=r"cuda:3 asked for, but torch sees 2 GPU"):
        TorchBackend._device(torch, "cuda:3")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(BackendError, match="sees no GPU"):
        TorchBackend._device(torch, "cuda")


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_cuda_graphs_per_batch_size_match_eager(precision, compact_checkpoint):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    rng = np.random.default_rng(0)
    eager = create_backend("torch", compact_checkpoint, BackendOptions(device="cuda", precision=precision))
    graphs = create_backend("torch", compact_checkpoint,
                            BackendOptions(device="cuda", precision=precision, cuda_graphs=True))
    with eager, graphs:
        for b in (1, 4, 1, 4, 2):
            x = rng.random((b, 1, 224, 224), dtype=np.float32)
            want, got = eager.infer(x), graphs.infer(x)
            np.testing.assert_allclose(got.scores, want.scores, atol=1e-3, rtol=1e-3)
        assert graphs.describe()["graph_batches"] == [1, 2, 4]
