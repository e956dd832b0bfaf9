"""Pairwise squared Euclidean distances between the rows of G [n, d], computed once per round.

Krum, Multi-Krum, Bulyan, nearest-neighbour mixing and the geometric median all start from the
n x n distances. The Gram trick ||a-b||^2 = ||a||^2 + ||b||^2 - 2<a,b> costs one matrix product but
cancels catastrophically when the vectors are large and close (|a| ~ 100, |a-b| ~ 1e-3 in float32
gives garbage). So the rows are first centred on a point inside the cloud, which leaves every
distance unchanged but makes the norms comparable to the distances:

1. centre on the coordinate-wise mean (of the finite rows, under a NaN/Inf attack);
2. if most rows are still far from that centre compared with their distances to their neighbours
   (an attacker with huge vectors drags the mean away), centre again on the row with the tightest
   majority neighbourhood, and failing that on the coordinate-wise median.

Subtracting a nearby centre is exact in floating point (Sterbenz), so the centred Gram has the
relative accuracy of an ordinary dot product. Distances are clamped at 0; a pair involving a row
with a non-finite value gets +inf, so order statistics over distances never see NaN.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import Tensor

# Recentre when a row's squared distance to the centre exceeds this many times its squared distance
# to its majority neighbourhood: beyond it the Gram trick loses more than 8 bits.
_CANCELLATION = 256.0


def finite_rows(G: Tensor) -> Tensor:
    """[n] bool: rows with no NaN or Inf.

    One per-row sum in G's own dtype: a row holding NaN or Inf has a non-finite sum, so a finite sum
    proves the row finite. A finite row can still overflow to an infinite sum (values near the
    dtype's maximum); only the rows whose sum is not finite are then checked element by element. No
    float64 pass over [n, d], the same answer.
    """
    ok = torch.isfinite(G.sum(1))
    if not bool(ok.all()):
        suspect = (~ok).nonzero().squeeze(1)
        ok[suspect] = torch.isfinite(G[suspect]).all(1)
    return ok


@contextmanager
def _ieee_matmul(device: torch.device):
    """Full fp32 matrix products on CUDA even when the training loop allowed TF32 (10-bit mantissa)."""
    if device.type != "cuda":
        yield
        return
    backend = torch.backends.cuda.matmul
    previous = backend.allow_tf32
    backend.allow_tf32 = False
    try:
        yield
    finally:
        backend.allow_tf32 = previous


def _gram(C: Tensor) -> Tensor:
    """C @ C.T for C [n, d] contiguous."""
    n, d = C.shape
    if C.device.type == "cpu" and d >= 65_536:
        # One matrix product per slice of the coordinates (a batch): MKL spreads a batch over the
        # cores better than one long n x n product (3.2 ms instead of 3.4-4 ms at n=51, d=79,510).
        b = 8
        c = d // b
        X = C.as_strided((b, n, c), (c, d, 1))
        K = torch.bmm(X, X.transpose(1, 2)).sum(0)
        if b * c < d:
            R = C[:, b * c :]
            K += R @ R.T
        return K
    with _ieee_matmul(C.device):
        return C @ C.T


def _centered_gram(G: Tensor, center: Tensor) -> Tensor:
    dtype = torch.promote_types(G.dtype, torch.float32)
    C = G.to(dtype) - center.to(dtype)
    K = _gram(C).to("cpu", torch.float64)
    return 0.5 * (K + K.T)  # the two triangles may round differently


def gram_to_sq_distances(K: Tensor) -> Tensor:
    """[n, n] squared distances from a (centred) Gram matrix; +inf where a row is non-finite."""
    q = K.diagonal()
    D = (q[:, None] + q[None, :] - 2.0 * K).clamp_min_(0.0)
    D = torch.where(torch.isfinite(D), D, torch.inf)
    D.fill_diagonal_(0.0)
    return D


def _far_from_center(K: Tensor, D: Tensor) -> tuple[bool, Tensor]:
    """Whether most finite rows lie too far from the Gram's centre; and each row's neighbourhood radius."""
    n = K.shape[0]
    q = K.diagonal()
    ok = torch.isfinite(q)
    count = int(ok.sum())
    radius = torch.full((n,), torch.inf, dtype=D.dtype)
    if count < 3:
        return False, radius
    h = max(1, min(count - 1, n // 2))  # a majority neighbourhood, among the finite rows
    Dok = D[ok][:, ok].clone()
    Dok.fill_diagonal_(torch.inf)
    radius[ok] = Dok.kthvalue(h, dim=1).values
    far = ok & (q > _CANCELLATION * radius)
    return int(far.sum()) * 2 > count, radius


def centered_gram(G: Tensor) -> Tensor:
    """Gram matrix [n, n] (float64, on the CPU) of the rows of G centred on a point inside the cloud.

    Any centre gives the same distances; this one keeps them accurate (see the module docstring).
    """
    from byzrun.defenses.order import median

    center = G.mean(0)
    if not bool(torch.isfinite(center).all()):
        ok = finite_rows(G)
        center = G[ok].mean(0) if bool(ok.any()) else torch.zeros_like(center)
    K = _centered_gram(G, center)
    far, radius = _far_from_center(K, gram_to_sq_distances(K))
    if far and bool(torch.isfinite(radius).any()):
        K = _centered_gram(G, G[int(radius.argmin())])
        far, radius = _far_from_center(K, gram_to_sq_distances(K))
    if far:
        K = _centered_gram(G, median(G))
    return K


def pairwise_sq_distances(G: Tensor) -> Tensor:
    """Squared Euclidean distances [n, n] between the rows of G (float64, on the CPU).

    Zero on the diagonal, +inf for pairs that involve a non-finite row. The matrix is small and the
    selection logic that uses it (Krum scores, Bulyan's loop) is cheaper on the CPU than as many
    tiny device kernels.
    """
    return gram_to_sq_distances(centered_gram(G))
