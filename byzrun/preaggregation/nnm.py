"""Nearest-neighbour mixing, NNM (Allouah, Farhadkhani, Guerraoui, Gupta, Pinot, Stephan, "Fixing by
Mixing: A Recipe for Optimal Byzantine ML under Heterogeneity", AISTATS 2023).

A pre-aggregation step: every vector p_i is replaced by the mean of its n-f nearest neighbours
(Euclidean, p_i itself included), then any rule runs on the n mixed vectors. For f < n/2.
Use it from the config: `defense.pre=[nnm]`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from byzrun.defenses.base import MAJORITY
from byzrun.defenses.distances import finite_rows, pairwise_sq_distances
from byzrun.preaggregation.base import PreAggregator


class NearestNeighborMixing(PreAggregator):
    """p_i -> mean of the n-f vectors nearest p_i (itself included; ties: lower index first).

    For selections, mixed vector i stands for worker i. A mixed vector that takes in a non-finite
    vector is NaN; with at most f non-finite inputs only those inputs' own vectors are.
    """

    name = "nnm"
    bound = MAJORITY

    def apply(self, G: Tensor, f: int) -> tuple[Tensor, Tensor]:
        n = G.shape[0]
        k = max(1, min(n - f, n))
        D = pairwise_sq_distances(G)
        nearest = torch.sort(D, dim=1, stable=True).indices[:, :k]  # D_ii = 0 puts i first
        W = torch.zeros(n, n, dtype=torch.float64).scatter_(1, nearest, 1.0 / k)
        ok = finite_rows(G)
        clean = G if bool(ok.all()) else torch.where(ok[:, None], G, 0.0)
        ok = ok.cpu()
        mixed = W.to(G.device, G.dtype) @ clean
        spoiled = (W[:, ~ok] > 0).any(1)
        if bool(spoiled.any()):
            mixed[spoiled.to(G.device)] = math.nan
        return mixed, torch.eye(n, dtype=torch.bool, device=G.device)
