"""Covariance-bound agnostic filter, CAF (Allouah, Guerraoui, Stephan, "Towards Trustworthy Federated
Learning with Untrusted Participants", ICML 2025): an iterative spectral filter.

Weights c_i = 1; while sum_i c_i > n - 2f:
    mu_c    = sum_i c_i p_i / sum_i c_i
    Sigma_c = sum_i c_i (p_i - mu_c)(p_i - mu_c)^T / sum_i c_i,  (lambda, v) its top eigenpair
    tau_i   = ((p_i - mu_c)^T v)^2
    c_i    <- c_i (1 - tau_i / max_{j: c_j > 0} tau_j)
and return the mu_c of the smallest lambda met. Each step zeroes at least one weight, so at most n
steps. For f < n/2.

Everything runs on the n x n Gram matrix K (computed once, distances.centered_gram): with w = c/sum c,
the differences D = (I - 1w^T) P have Gram M = (I - 1w^T) K (I - w1^T), Sigma_c has the non-zero
eigenvalues of A = W^1/2 M W^1/2 (W = diag w), and with A's top eigenvector u the projections are
D v = M W^1/2 u / sqrt(lambda). The eigenpair is exact (LAPACK on n x n), not a power method; only the
final mu_c = w^T P touches the [n, d] data.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from byzrun.defenses.base import MAJORITY, Defense
from byzrun.defenses.distances import centered_gram


def caf_weights(K: Tensor, f: int) -> Tensor:
    """The weights w [n] (float64, summing to 1) of CAF's output mu_c = w^T P, from the Gram matrix K.

    A row with a non-finite value starts with weight 0: a finite row that far would be zeroed by the
    first step. f = 0: the mean (the loop never runs).
    """
    n = K.shape[0]
    ok = torch.isfinite(K.diagonal())
    K = torch.where(ok[:, None] & ok[None, :], K, 0.0)
    c = ok.to(K.dtype)
    if not bool(ok.any()):
        return torch.full((n,), 1.0 / n, dtype=K.dtype)
    best, best_value = c / c.sum(), math.inf
    eye = torch.eye(n, dtype=K.dtype)
    while float(c.sum()) > n - 2 * f:
        w = c / c.sum()
        centring = eye - w[None, :]  # row i: e_i - w, so centring @ P = P - 1 mu^T
        M = centring @ K @ centring.T
        root = w.sqrt()
        values, vectors = torch.linalg.eigh(root[:, None] * M * root[None, :])
        top, u = float(values[-1]), vectors[:, -1]
        if top < best_value:
            best, best_value = w, top
        if top <= 0.0:  # every weighted row at mu_c: nothing left to filter
            break
        tau = (M @ (root * u)) ** 2 / top
        tau_max = float(tau[c > 0].max())
        if tau_max <= 0.0:
            break
        c = torch.where(c > 0, c * (1.0 - tau / tau_max), 0.0).clamp_min(0.0)
    return best


class CovarianceFilter(Defense):
    """CAF: iteratively down-weight the rows along the top covariance direction (Allouah et al. 2025).

    No options. Differences from ByzFL's CAF (0.0.11): the exact top eigenpair instead of one power
    step from a random vector; tau_max over the rows still weighted (ByzFL's includes rows already at
    weight 0, so one huge outlier removed in the first step stalls the filter); f = 0 gives the mean
    (ByzFL returns None).
    """

    name = "caf"
    bound = MAJORITY

    def __call__(self, G: Tensor, f: int) -> Tensor:
        w = caf_weights(centered_gram(G), f)
        used = (w > 0).to(G.device)
        if not bool(used.all()):
            G = torch.where(used[:, None], G, 0.0)  # 0 * NaN would still be NaN
        return w.to(G.device, G.dtype) @ G
