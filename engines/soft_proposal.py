"""Soft proposal layer (Zhu et al. 2017) as the reference SPN code computes it.

Given feature maps U [B, K, h, w] with N = h·w positions:
  L(u, v) = exp(-|p_u - p_v|² / (2 f²))           spatial kernel, f = 0.15·N by default
  W(u, v) = |U_u - U_v|₂ · L(u, v)                 feature distance times kernel
  T = W with each column divided by its sum
  M₀ = 1/N,  M ← T·M  until |T·M - M|₂ < tol or max_iter
and the layer returns U ⊙ M (coupled).  M carries no gradient.

Three forms share the graph up to T:
  ``converge``   — the reference loop with early stop (training and reference);
  ``unrolled``   — a fixed number of iterations, no control flow (ONNX / TensorRT);
  ``stationary`` — the exact limit rowsum(W) / sum(W) (W is symmetric).
"""

from __future__ import annotations

import torch
from torch import nn

MODES = ("converge", "unrolled", "stationary")
DEFAULT_FACTOR = 0.15
DEFAULT_TOLERANCE = 1e-4
DEFAULT_MAX_ITER = 20
DEFAULT_UNROLLED_ITERATIONS = DEFAULT_MAX_ITER  # the reference's cap: never fewer steps than converge
_EPS = 1e-12


def spatial_kernel(h: int, w: int, factor: float = DEFAULT_FACTOR) -> torch.Tensor:
    """L [N, N] on integer grid coordinates with f = factor·N."""
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    p = torch.stack([ys.flatten(), xs.flatten()], dim=1).double()
    d2 = ((p[:, None, :] - p[None, :, :]) ** 2).sum(-1)
    f = factor * h * w
    return torch.exp(-d2 / (2.0 * f * f)).float()


def pairwise_distance(x: torch.Tensor) -> torch.Tensor:
    """|x_u - x_v|₂ for x [B, N, K] → [B, N, N].

    Written as |a|²+|b|²-2aᵀb with a clamp (torch.cdist does not export for small maps), on
    features centred over positions: distances are unchanged and the cancellation is smaller.
    """
    x = x - x.mean(dim=1, keepdim=True)
    sq = (x * x).sum(-1)
    d2 = sq[:, :, None] + sq[:, None, :] - 2.0 * torch.bmm(x, x.transpose(1, 2))
    return torch.sqrt(torch.clamp(d2, min=0.0))


def transition(u: torch.Tensor, kernel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """W and the column-normalised T for u [B, K, h, w]."""
    b, k, h, w = u.shape
    x = u.reshape(b, k, h * w).transpose(1, 2)
    weights = pairwise_distance(x) * kernel
    return weights, weights / (weights.sum(dim=1, keepdim=True) + _EPS)


def iterate(t: torch.Tensor, m: torch.Tensor, iterations: int) -> torch.Tensor:
    for _ in range(iterations):
        m = torch.bmm(t, m)
    return m


def converge(
    t: torch.Tensor, tol: float = DEFAULT_TOLERANCE, max_iter: int = DEFAULT_MAX_ITER
) -> tuple[torch.Tensor, int]:
    """Reference power iteration from uniform, each sample stopping on its own.

    Returns (M [B, N, 1], the most iterations any sample used).
    """
    n = t.shape[-1]
    m = torch.full((t.shape[0], n, 1), 1.0 / n, dtype=t.dtype, device=t.device)
    running = torch.ones(t.shape[0], 1, 1, dtype=torch.bool, device=t.device)
    for i in range(1, max_iter + 1):
        nxt = torch.bmm(t, m)
        step = torch.linalg.vector_norm(nxt - m, dim=(1, 2), keepdim=True)
        m = torch.where(running, nxt, m)
        running = running & (step >= tol)
        if not bool(running.any()):
            return m, i
    return m, max_iter


def unrolled(t: torch.Tensor, iterations: int) -> torch.Tensor:
    n = t.shape[-1]
    m = torch.ones(t.shape[0], n, 1, dtype=t.dtype, device=t.device) / n
    return iterate(t, m, iterations)


def stationary(weights: torch.Tensor) -> torch.Tensor:
    """Closed-form limit of the iteration: each position's share of total affinity."""
    rows = weights.sum(dim=2, keepdim=True)
    return rows / (rows.sum(dim=1, keepdim=True) + _EPS)


def measure_convergence(u: torch.Tensor, factor: float = DEFAULT_FACTOR,
                        tol: float = DEFAULT_TOLERANCE, cap: int = 200) -> list[int]:
    """Iterations the reference loop needs for each sample of u [B, K, h, w]."""
    with torch.no_grad():
        _, t = transition(u.detach().double(), spatial_kernel(*u.shape[-2:], factor).double())
        return [converge(t[i : i + 1], tol, cap)[1] for i in range(t.shape[0])]


def choose_iterations(needed: list[int], margin: int = 2, cap: int = DEFAULT_MAX_ITER) -> int:
    """Unrolled count from measured convergence: the worst case plus a margin, within the cap."""
    return max(1, min(cap, max(needed) + margin))


class SoftProposal(nn.Module):
    """Computes the proposal map M [B, 1, h, w] and the coupled output U ⊙ M."""

    def __init__(
        self,
        mode: str = "converge",
        iterations: int = DEFAULT_UNROLLED_ITERATIONS,
        factor: float = DEFAULT_FACTOR,
        tol: float = DEFAULT_TOLERANCE,
        max_iter: int = DEFAULT_MAX_ITER,
    ):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"soft proposal mode must be one of {MODES}, got {mode!r}")
        if iterations < 1:
            raise ValueError(f"iterations must be ≥ 1, got {iterations}")
        self.mode, self.iterations, self.factor = mode, iterations, factor
        self.tol, self.max_iter = tol, max_iter
        self._kernels: dict[tuple[int, int, str], torch.Tensor] = {}

    def kernel(self, h: int, w: int, like: torch.Tensor) -> torch.Tensor:
        key = (h, w, str(like.device))
        if key not in self._kernels:
            self._kernels[key] = spatial_kernel(h, w, self.factor).to(like.device)
        return self._kernels[key].to(like.dtype)

    def proposal(self, u: torch.Tensor) -> torch.Tensor:
        """M [B, 1, h, w], no gradient (the reference backward passes grad·M only)."""
        b, _, h, w = u.shape
        u = u.detach()
        with torch.no_grad():
            weights, t = transition(u, self.kernel(h, w, u))
            if self.mode == "stationary":
                m = stationary(weights)
            elif self.mode == "unrolled":
                m = unrolled(t, self.iterations)
            else:
                m, _ = converge(t, self.tol, self.max_iter)
        return m.reshape(b, 1, h, w)

    def forward(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.proposal(u)
        return u * m, m
