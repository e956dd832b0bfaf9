"""Geometric median by the smoothed Weiszfeld algorithm (Pillutla, Kakade, Harchaoui, "Robust
Aggregation for Federated Learning" (RFA), IEEE TSP 2022; Weiszfeld 1937).

The geometric median minimises sum_i ||v - p_i||. Weiszfeld's iteration
v <- sum_i b_i p_i / sum_i b_i with b_i = 1 / max(nu, ||v - p_i||) (nu: RFA's smoothing) starts at
the mean, so every iterate is a convex combination v = sum_i a_i p_i of the inputs and
||v - p_i||^2 = K_ii - 2 (K a)_i + a'K a with K the centred Gram matrix. The iterations therefore run
on the n x n Gram matrix (computed once, see distances.py) and only the final combination touches
the [n, d] data. Breakdown point 1/2: tolerates f < n/2.
"""

from __future__ import annotations

import torch
from torch import Tensor

from byzrun.defenses.base import MAJORITY, Defense
from byzrun.defenses.distances import centered_gram
from byzrun.errors import ConfigError


def weiszfeld_weights(K: Tensor, iterations: int, tol: float, nu: float) -> Tensor:
    """Convex weights a [n] (float64, CPU) of the smoothed geometric median, from the centred Gram K.

    Rows with a non-finite value (non-finite K_ii) get weight 0: they are infinitely far from any
    candidate, so Weiszfeld's weight 1/||v - p_i|| vanishes.
    """
    ok = torch.isfinite(K.diagonal())
    if not bool(ok.any()):
        return torch.full((K.shape[0],), 1.0 / K.shape[0], dtype=K.dtype)
    K = torch.where(ok[:, None] & ok[None, :], K, 0.0)
    q = K.diagonal()
    a = ok.to(K.dtype) / ok.sum()
    previous = None
    for _ in range(iterations):
        Ka = K @ a
        dist = (q - 2.0 * Ka + a @ Ka).clamp_min(0.0).sqrt()
        objective = float(dist[ok].sum())
        if previous is not None and abs(previous - objective) <= tol * objective:
            break
        previous = objective
        b = torch.where(ok, 1.0 / dist.clamp_min(nu), 0.0)
        a = b / b.sum()
    return a


class GeometricMedian(Defense):
    """Geometric median (smoothed Weiszfeld, as RFA).

    Options:
      iterations: at most this many Weiszfeld steps (RFA's few-step regime: e.g. 3)
      tol: stop when the objective sum_i ||v - p_i|| changes by less than tol (relative)
      nu: smoothing; distances below nu count as nu (avoids dividing by zero at an input vector)
    """

    name = "geometric_median"
    bound = MAJORITY

    def __init__(self, iterations: int = 100, tol: float = 1e-6, nu: float = 1e-6):
        if int(iterations) < 1 or tol < 0 or nu <= 0:
            raise ConfigError("defense.iterations must be >= 1, defense.tol >= 0 and defense.nu > 0")
        self.iterations = int(iterations)
        self.tol = float(tol)
        self.nu = float(nu)

    def __call__(self, G: Tensor, f: int) -> Tensor:
        a = weiszfeld_weights(centered_gram(G), self.iterations, self.tol, self.nu)
        used = (a > 0).to(G.device)
        if not bool(used.all()):
            G = torch.where(used[:, None], G, 0.0)  # 0 * NaN would still be NaN
        return a.to(G.device, G.dtype) @ G
