"""Bulyan (El Mhamdi, Guerraoui, Rouault, "The Hidden Vulnerability of Distributed Learning in
Byzantium", ICML 2018; ALIE paper Algorithm 2).

1. Selection: repeatedly apply A = Krum to the vectors not yet selected (same f, so the neighbour
   count shrinks with the remaining count r: r-f-2), moving the chosen one into the selection set,
   until it holds theta = n-2f vectors.
2. Aggregation: per coordinate, the mean of the beta = theta-2f values of the selection set
   closest to the coordinate-wise median of the selection set (TrimmedMean variant 2).
Tolerates f Byzantine workers when n >= 4f+3.

The pairwise distances are computed once; each Krum re-run is O(n^2) work on that matrix.
"""

from __future__ import annotations

import torch
from torch import Tensor

from byzrun.defenses.base import BULYAN, Defense
from byzrun.defenses.distances import pairwise_sq_distances
from byzrun.defenses.krum import check_options, krum_scores, lowest, neighbour_count
from byzrun.defenses.order import column_map, median_sorted, nearest_mean_sorted
from byzrun.defenses.trimmed_mean import check_even
from byzrun.errors import ConfigError

INNER = ("krum", "krum_once")
BETA = ("paper", "alie_code")


def iterated_krum(
    D: Tensor, f: int, theta: int, distances: str = "squared", neighbours: str = "paper"
) -> Tensor:
    """Indices of theta rows picked one by one, each the Krum winner among the rows not yet picked."""
    n = D.shape[0]
    E = D.sqrt() if distances == "plain" else D.clone()
    E.fill_diagonal_(torch.inf)
    remaining = torch.ones(n, dtype=torch.bool)
    big = torch.finfo(E.dtype).max
    chosen = []
    for t in range(min(theta, n)):
        r = n - t
        if r == 1:
            i = int(remaining.nonzero()[0])
        else:
            k = neighbour_count(r, f, neighbours)
            # picked rows are +inf columns, so the k nearest come from the r-1 remaining others
            scores = E.topk(k, dim=1, largest=False).values.sum(1)
            # a remaining row with an infinite score still beats a row already picked
            key = torch.where(remaining, scores.nan_to_num(nan=big, posinf=big), torch.inf)
            i = int(lowest(key, 1)[0])
        chosen.append(i)
        remaining[i] = False
        E[:, i] = torch.inf
    return torch.tensor(chosen, dtype=torch.long)


class Bulyan(Defense):
    """Bulyan with Krum as the inner rule A (El Mhamdi et al. 2018; ALIE paper Algorithm 2).

    Options:
      inner: krum (default: Krum re-run on the remaining vectors, same f, after each pick) |
             krum_once (one Krum scoring of all n vectors, the theta lowest scores; some libraries do this)
      distances: squared (paper) | plain (the ALIE code) -- the inner Krum's distances
      neighbours: paper (r-f-2 nearest others) | dm_code (r-f-1) | alie_code (r-f) -- the inner Krum's
                  neighbour count
      beta: paper (theta-2f values nearest the median) | alie_code (theta-2f-1, the ALIE code)
      even: median of an even selection set: average (default) | lower
    Outside the bound theta and beta are kept >= 1.
    """

    name = "bulyan"
    bound = BULYAN

    def __init__(
        self,
        inner: str = "krum",
        distances: str = "squared",
        neighbours: str = "paper",
        beta: str = "paper",
        even: str = "average",
    ):
        check_options(distances, neighbours)
        check_even(even)
        if inner not in INNER:
            raise ConfigError(f"defense.inner must be one of {INNER}, got {inner!r}")
        if beta not in BETA:
            raise ConfigError(f"defense.beta must be one of {BETA}, got {beta!r}")
        self.inner = inner
        self.distances = distances
        self.neighbours = neighbours
        self.beta = beta
        self.even = even

    def sizes(self, n: int, f: int) -> tuple[int, int]:
        """(theta, beta): the selection set's size and how many values per coordinate are averaged."""
        θ = max(1, n - 2 * f)
        β = θ - 2 * f - (1 if self.beta == "alie_code" else 0)
        return θ, max(1, β)

    def select(self, G: Tensor, f: int) -> Tensor:
        θ, _ = self.sizes(len(G), f)
        D = pairwise_sq_distances(G)
        if self.inner == "krum_once":
            chosen = lowest(krum_scores(D, f, self.distances, self.neighbours), θ)
        else:
            chosen = iterated_krum(D, f, θ, self.distances, self.neighbours)
        return chosen.to(G.device)

    def __call__(self, G: Tensor, f: int) -> Tensor:
        _, β = self.sizes(len(G), f)
        chosen = self.select(G, f)
        return column_map(G, lambda S: nearest_mean_sorted(S, median_sorted(S, self.even), β), rows=chosen)
