"""Divide and conquer, DnC (Shejwalkar, Houmansadr, "Manipulating the Byzantine: Optimizing Model
Poisoning Attacks and Defenses for Federated Learning", NDSS 2021, Algorithm 2).

For each of `iterations` rounds of filtering: draw b random coordinates r, centre the subsampled
submissions on their mean mu = (1/n) sum_i p_i[r], take the top right singular vector v of the
centred [n, b] matrix, score every submission by its squared projection
    s_i = <p_i[r] - mu, v>^2,
and keep the n - c*f submissions of smallest score. The good set is the intersection of the kept sets
over the iterations; the aggregate is the mean of the good set.

Choices where the paper is silent: rows with a non-finite value score +inf (they are never good) and
mu, v come from the finite rows; should the intersection be empty, the good set is the rows kept by
the most iterations (the intersection whenever it is not empty). DnC assumes an honest majority:
f < n/2.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from byzrun.defenses.base import MAJORITY, Defense
from byzrun.defenses.distances import finite_rows
from byzrun.defenses.draws import coordinate_subset, round_generator
from byzrun.errors import ConfigError


def outlier_scores(S: Tensor, ok: Tensor) -> Tensor:
    """s_i = <S_i - mu, v>^2 for the rows of S [n, b] (+inf where ok is False), mu and v from the ok rows.

    With C the centred ok rows and C = U Sigma V' its SVD, C v_1 = sigma_1 u_1, so s = sigma_1^2 u_1^2:
    the top eigenpair of the small Gram matrix C C' [n, n] gives the scores without the [b, b] side.
    """
    C = S[ok].double()
    C = C - C.mean(0)
    eigenvalues, eigenvectors = torch.linalg.eigh(C @ C.T)
    scores = torch.full((S.shape[0],), math.inf, dtype=torch.float64, device=S.device)
    scores[ok] = eigenvalues[-1].clamp_min(0.0) * eigenvectors[:, -1] ** 2
    return scores


class DnC(Defense):
    """Divide and conquer (Shejwalkar and Houmansadr 2021): the mean of the submissions that a spectral
    outlier score never filters out.

    Options:
      iterations: niters, filtering rounds on fresh coordinate subsets
      b: coordinates per subset (all d when d <= b, then every iteration is the same)
      c: filtering fraction: each iteration removes the ceil(c*f) highest scores (keeps floor(n - c*f), >= 1)
      seed: the coordinate subsets come from hash(seed, the round's submissions) (byzrun/defenses/draws.py):
            fresh every round, the same on a re-run
    Ties in the scores keep the lower index.
    """

    name = "dnc"
    bound = MAJORITY

    def __init__(self, iterations: int = 5, b: int = 10000, c: float = 1.0, seed: int = 0):
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
            raise ConfigError(f"defense.iterations must be an integer >= 1, got {iterations!r}")
        if isinstance(b, bool) or not isinstance(b, int) or b < 1:
            raise ConfigError(f"defense.b must be an integer >= 1 (coordinates per subset), got {b!r}")
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not c >= 0:
            raise ConfigError(f"defense.c must be a number >= 0 (the filtering fraction), got {c!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"defense.seed must be an integer, got {seed!r}")
        self.iterations, self.b, self.c, self.seed = iterations, b, float(c), seed

    def kept(self, n: int, f: int) -> int:
        """How many submissions each iteration keeps: floor(n - c*f), at least 1."""
        return max(1, math.floor(n - self.c * f + 1e-9))

    def select(self, G: Tensor, f: int) -> Tensor:
        n = G.shape[0]
        ok = finite_rows(G)
        if not bool(ok.any()):
            return torch.arange(n, device=G.device)
        votes = torch.zeros(n, dtype=torch.long, device=G.device)
        generator = round_generator(G, self.seed)
        iterations = self.iterations if self.b < G.shape[1] else 1  # all coordinates: every iteration alike
        for _ in range(iterations):
            r = coordinate_subset(G.shape[1], self.b, generator).to(G.device)
            scores = outlier_scores(G[:, r], ok)
            votes[torch.sort(scores, stable=True).indices[: self.kept(n, f)]] += 1
        votes[~ok] = 0
        return (votes == votes.max()).nonzero().flatten()

    def __call__(self, G: Tensor, f: int) -> Tensor:
        return G[self.select(G, f)].mean(dim=0)
