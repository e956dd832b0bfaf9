"""Krum (Blanchard et al., "Machine Learning with Adversaries: Byzantine Tolerant Gradient Descent",
NeurIPS 2017; ALIE paper Sec. 2.3).

score(i) = sum of the squared Euclidean distances from p_i to its n-f-2 nearest other vectors;
Krum outputs the vector with the lowest score. Tolerates f Byzantine workers when n >= 2f+3.
"""

from __future__ import annotations

import torch
from torch import Tensor

from byzrun.defenses.base import KRUM, Defense
from byzrun.defenses.distances import pairwise_sq_distances
from byzrun.errors import ConfigError

DISTANCES = ("squared", "plain")
# how many nearest others a Krum score sums, per convention
NEIGHBOURS = {"paper": 2, "dm_code": 1, "alie_code": 0}  # n - f - this


def check_options(distances: str, neighbours: str) -> None:
    if distances not in DISTANCES:
        raise ConfigError(f"defense.distances must be one of {DISTANCES}, got {distances!r}")
    if neighbours not in NEIGHBOURS:
        raise ConfigError(f"defense.neighbours must be one of {tuple(NEIGHBOURS)}, got {neighbours!r}")


def neighbour_count(n: int, f: int, neighbours: str = "paper") -> int:
    """How many nearest others a score sums: n-f-2 (paper), n-f-1 (the Distributed Momentum code) or
    n-f (the ALIE code), kept within [1, n-1]."""
    k = n - f - NEIGHBOURS[neighbours]
    return max(1, min(k, n - 1))


def krum_scores(D: Tensor, f: int, distances: str = "squared", neighbours: str = "paper") -> Tensor:
    """Krum score [n] of every row, from the squared distances D [n, n] (+inf for non-finite rows).

    Rows with a non-finite value score +inf.
    """
    n = D.shape[0]
    if n == 1:
        return torch.zeros(1, dtype=D.dtype)
    E = D.sqrt() if distances == "plain" else D.clone()
    E.fill_diagonal_(torch.inf)  # a vector is not its own neighbour
    k = neighbour_count(n, f, neighbours)
    return E.topk(k, dim=1, largest=False).values.sum(1)


def lowest(scores: Tensor, k: int) -> Tensor:
    """Indices of the k lowest scores (ties: lower index first), deterministic."""
    order = torch.sort(scores, stable=True).indices
    return order[:k]


class Krum(Defense):
    """Krum: the submitted vector with the lowest Krum score (Blanchard et al. 2017).

    Options (the papers' definition is the default):
      distances: squared (paper) | plain (the ALIE and Distributed Momentum code: Euclidean, not squared)
      neighbours: paper (n-f-2 nearest others) | dm_code (n-f-1, the Distributed Momentum code) |
                  alie_code (n-f nearest others, as the ALIE code)
    Outside the bound (allow_out_of_bound) the neighbour count is kept within [1, n-1].
    """

    name = "krum"
    bound = KRUM

    def __init__(self, distances: str = "squared", neighbours: str = "paper"):
        check_options(distances, neighbours)
        self.distances = distances
        self.neighbours = neighbours

    def scores(self, G: Tensor, f: int) -> Tensor:
        return krum_scores(pairwise_sq_distances(G), f, self.distances, self.neighbours)

    def select(self, G: Tensor, f: int) -> Tensor:
        return lowest(self.scores(G, f), 1).to(G.device)

    def __call__(self, G: Tensor, f: int) -> Tensor:
        return G[self.select(G, f)[0]].clone()
