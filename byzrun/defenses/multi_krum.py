"""Multi-Krum (Blanchard et al., NeurIPS 2017, Sec. 5): the average of the k vectors with the lowest
Krum scores, the scores computed once as in Krum. Tolerates f Byzantine workers when n >= 2f+3.
"""

from __future__ import annotations

from torch import Tensor

from byzrun.defenses.base import KRUM, Defense
from byzrun.defenses.distances import pairwise_sq_distances
from byzrun.defenses.krum import check_options, krum_scores, lowest
from byzrun.errors import ConfigError

K_NAMED = {"n-f": 0, "n-f-2": 2}


class MultiKrum(Defense):
    """Multi-Krum: average of the k lowest-scoring vectors (Krum scores, Blanchard et al. 2017).

    Options:
      k: null or "n-f" (default: n-f vectors) | "n-f-2" (the Distributed Momentum code's "krum") | an int
      distances: squared (paper) | plain (ALIE and Distributed Momentum code)
      neighbours: paper (n-f-2 nearest others) | dm_code (n-f-1) | alie_code (n-f)
    k is kept within [1, n].
    """

    name = "multi_krum"
    bound = KRUM

    def __init__(self, k: int | str | None = None, distances: str = "squared", neighbours: str = "paper"):
        check_options(distances, neighbours)
        if k is not None and not isinstance(k, int) and k not in K_NAMED:
            raise ConfigError(f"defense.k must be null, an int or one of {list(K_NAMED)}, got {k!r}")
        self.k = k
        self.distances = distances
        self.neighbours = neighbours

    def count(self, n: int, f: int) -> int:
        k = self.k
        if k is None or isinstance(k, str):
            k = n - f - K_NAMED.get(k or "n-f")
        return max(1, min(int(k), n))

    def select(self, G: Tensor, f: int) -> Tensor:
        scores = krum_scores(pairwise_sq_distances(G), f, self.distances, self.neighbours)
        return lowest(scores, self.count(len(G), f)).to(G.device)

    def __call__(self, G: Tensor, f: int) -> Tensor:
        return G[self.select(G, f)].mean(0)
