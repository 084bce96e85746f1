import math

import pytest
import torch

from engines.soft_proposal import (
    DEFAULT_UNROLLED_ITERATIONS,
    SoftProposal,
    choose_iterations,
    converge,
    measure_convergence,
    pairwise_distance,
    spatial_kernel,
    stationary,
    transition,
    unrolled,
)


def features(batch=4, k=32, h=14, w=14, seed=0, sparse=False):
    g = torch.Generator().manual_seed(seed)
    u = torch.relu(torch.randn(batch, k, h, w, generator=g, dtype=torch.float64))
    if sparse:  # a few strong, spatially clustered activations: the slow-converging case
        u = u * (torch.rand(batch, k, 1, 1, generator=g, dtype=torch.float64) > 0.8)
        u[:, :, 3:6, 4:8] += 5.0
    return u


def test_spatial_kernel_follows_the_reference_formula():
    h, w = 3, 4
    kernel = spatial_kernel(h, w, factor=0.15)
    f = 0.15 * h * w
    # position 0 is (0,0); the last is (2,3): squared distance 4 + 9
    assert kernel[0, -1].item() == pytest.approx(math.exp(-13 / (2 * f * f)), rel=1e-6)
    assert torch.allclose(kernel, kernel.T)
    assert torch.all(kernel.diagonal() == 1)


def test_pairwise_distance_matches_cdist():
    x = torch.randn(2, 20, 7, dtype=torch.float64)
    assert torch.allclose(pairwise_distance(x), torch.cdist(x, x), atol=1e-6)


def test_transition_is_column_stochastic():
    u = features()
    weights, t = transition(u, spatial_kernel(14, 14).double())
    assert torch.allclose(t.sum(dim=1), torch.ones(4, 196, dtype=torch.float64))
    assert torch.allclose(weights, weights.transpose(1, 2))  # W is symmetric


@pytest.mark.parametrize("sparse", [False, True])
def test_unrolled_agrees_with_converge_and_is_closer_to_the_limit(sparse):
    u = features(sparse=sparse)
    weights, t = transition(u, spatial_kernel(14, 14).double())
    exact = stationary(weights)
    for i in range(u.shape[0]):
        m_conv, used = converge(t[i : i + 1])
        m_unr = unrolled(t[i : i + 1], DEFAULT_UNROLLED_ITERATIONS)
        assert used <= DEFAULT_UNROLLED_ITERATIONS
        assert torch.linalg.vector_norm(m_unr - m_conv) <= 1e-4
        assert torch.linalg.vector_norm(m_unr - exact[i]) <= torch.linalg.vector_norm(m_conv - exact[i])


def test_stationary_equals_converge_run_to_a_tight_tolerance():
    u = features(sparse=True)
    weights, t = transition(u, spatial_kernel(14, 14).double())
    tight, used = converge(t, tol=1e-13, max_iter=5000)
    assert used < 5000
    assert torch.linalg.vector_norm(stationary(weights) - tight, dim=(1, 2)).max() <= 1e-9


def test_proposal_sums_to_one_and_is_positive():
    m = SoftProposal("converge").proposal(features().float())
    assert torch.allclose(m.sum(dim=(1, 2, 3)), torch.ones(4), atol=1e-5)
    assert torch.all(m >= 0)


def test_gradient_reaches_features_only_through_the_coupling():
    """The reference backward passes grad·M: M itself carries no gradient."""
    u = features().float().requires_grad_(True)
    out, m = SoftProposal("unrolled").forward(u)
    assert not m.requires_grad
    out.sum().backward()
    assert torch.allclose(u.grad, m.expand_as(u))


def test_all_modes_agree_on_the_coupled_output():
    u = features().float()
    outs = [SoftProposal(mode)(u)[0] for mode in ("converge", "unrolled", "stationary")]
    for other in outs[1:]:
        assert torch.allclose(outs[0], other, atol=1e-6)


def test_dead_features_give_zeros_not_nan():
    out, m = SoftProposal("unrolled")(torch.zeros(1, 8, 5, 5))
    assert torch.isfinite(m).all() and torch.all(out == 0)
    assert torch.isfinite(SoftProposal("stationary").proposal(torch.zeros(1, 8, 5, 5))).all()


def test_measured_convergence_chooses_a_bounded_count():
    needed = measure_convergence(features(sparse=True))
    assert all(1 <= n <= 200 for n in needed)
    k = choose_iterations(needed)
    assert k == min(20, max(needed) + 2)
    assert choose_iterations([50]) == 20


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="mode"):
        SoftProposal("loop")
    with pytest.raises(ValueError, match="iterations"):
        SoftProposal("unrolled", iterations=0)
