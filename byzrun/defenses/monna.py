"""MoNNA's nearest-neighbour averaging (Farhadkhani, Guerraoui, Gupta, Hoang, Pinot, Stephan, "Robust
Collaborative Learning with Linear Gradient Overhead", ICML 2023).

In MoNNA every honest node i averages the n-f vectors nearest its own, itself included:

    NNA_i(p_1..p_n) = (1/(n-f)) sum_{j in N_i} p_j,   N_i = the n-f vectors nearest p_i

At a server there is one output: here node i is the `pivot`, a worker the server trusts. byzrun's
honest workers are rows 0..n-m-1, so the default pivot 0 is honest whenever m < n. For f < n/2.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from byzrun.cpu_reductions import row_mean
from byzrun.defenses.base import MAJORITY, Defense
from byzrun.errors import ConfigError

#: bytes of G - pivot per block of rows on a CPU: a few cached MiB at a time instead of a second [n, d]
#: matrix, whose fresh pages cost more than the arithmetic at large d (make bench, d=1e6)
_BLOCK_BYTES = 4 << 20


def distances_to(G: Tensor, pivot: int) -> Tensor:
    """||G_j - G_pivot|| for every row j: n differences, exact up to one rounding, no Gram matrix.
    On a CPU in blocks of rows, the same bits (each row's norm is a reduction of its own row)."""
    n, d = G.shape
    rows = n if G.device.type != "cpu" else max(1, _BLOCK_BYTES // max(1, d * G.element_size()))
    if rows >= n:
        return torch.linalg.vector_norm(G - G[pivot], dim=1)
    out = torch.empty(n, dtype=G.dtype)
    for start in range(0, n, rows):
        torch.linalg.vector_norm(G[start : start + rows] - G[pivot], dim=1, out=out[start : start + rows])
    return out


class NearestNeighbourAveraging(Defense):
    """The mean of the n-f submissions nearest the pivot's (itself included; ties: lower index first).

    Options:
      pivot: the row whose neighbourhood is averaged; it must be an honest worker, 0 <= pivot < n-m
    """

    name = "monna"
    bound = MAJORITY

    def __init__(self, pivot: int = 0):
        if not isinstance(pivot, int) or pivot < 0:
            raise ConfigError(f"defense.pivot must be an integer >= 0, got {pivot!r}")
        self.pivot = pivot

    def check(self, n: int, f: int) -> None:
        if self.pivot >= n - f:
            raise ConfigError(
                f"defense.pivot={self.pivot} is not an honest worker (rows 0..{n - f - 1} with n={n}, "
                f"m={f}); set defense.pivot below {n - f}"
            )

    def select(self, G: Tensor, f: int) -> Tensor:
        n = G.shape[0]
        k = max(1, min(n - f, n))
        dist = distances_to(G, self.pivot).to("cpu", torch.float64)
        dist = torch.nan_to_num(dist, nan=math.inf)
        return torch.sort(dist, stable=True).indices[:k].to(G.device)

    def __call__(self, G: Tensor, f: int) -> Tensor:
        return row_mean(G[self.select(G, f)])  # .mean(0), bit for bit, faster on a CPU
