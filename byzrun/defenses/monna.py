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

from byzrun.defenses.base import MAJORITY, Defense
from byzrun.errors import ConfigError


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
        # distances to one row: n differences, exact up to one rounding, no Gram matrix needed
        dist = torch.linalg.vector_norm(G - G[self.pivot], dim=1).to("cpu", torch.float64)
        dist = torch.nan_to_num(dist, nan=math.inf)
        return torch.sort(dist, stable=True).indices[:k].to(G.device)

    def __call__(self, G: Tensor, f: int) -> Tensor:
        return G[self.select(G, f)].mean(0)
