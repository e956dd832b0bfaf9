"""SignGuard (Xu, Huang, Song, Lan, "Byzantine-robust Federated Learning through Collaborative Malicious
Gradient Filtering", ICDCS 2022).

With M the median of the submissions' L2 norms:
1. norm filter: S1 = {i : L <= ||p_i|| / M <= R};
2. sign clustering: on a random subset of the coordinates, the sign statistics of every submission,
   (share of positive, share of zero, share of negative values), are clustered with mean shift;
   S2 = the largest cluster;
3. the aggregate is the mean over S = S1 ∩ S2 of the submissions clipped to the median norm,
       (1/|S|) sum_{i in S} p_i min(1, M / ||p_i||).

Mean shift is scikit-learn's (flat kernel, bin seeding, points farther than the bandwidth from every
mode left unclustered). Its bandwidth is the mean distance from each point to its floor(n/2)-th
nearest point, itself counted (scikit-learn's estimate_bandwidth at quantile 0.5, as in the authors'
code, here on all points where the code samples 50), but at least to its nearest other point
(otherwise n <= 3 gives a bandwidth of 0). Choices where the paper is silent: the median of an even
count averages the two middle norms; a non-finite norm counts as +inf (so it fails the norm filter);
a zero bandwidth (more than half the statistics identical) becomes 1e-12, so that identical
statistics form one cluster; an empty S gives the zero vector (the server skips the round). The
authors' code differs in ways the paper does not describe: it takes a contiguous block of
coordinates, divides each statistic by its maximum over the workers, and replaces NaN by 0.
The median norm is robust for f < n/2.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.cluster import MeanShift, estimate_bandwidth
from torch import Tensor

from byzrun.defenses.base import MAJORITY, Defense
from byzrun.defenses.draws import coordinate_subset, round_generator
from byzrun.errors import ConfigError

#: bandwidth used when the estimate is 0: far below any difference of two sign statistics (1/d)
_MIN_BANDWIDTH = 1e-12


def median_norm(norms: Tensor) -> Tensor:
    """The median of the norms [n] (the average of the two middle ones for an even n)."""
    s = norms.sort().values
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def sign_statistics(S: Tensor) -> np.ndarray:
    """[n, 3] float64: the shares of positive, zero and negative values in each row of S (NaN: none)."""
    b = S.shape[1]
    counts = [(S > 0).sum(1), (S == 0).sum(1), (S < 0).sum(1)]
    return (torch.stack(counts, dim=1).double() / b).cpu().numpy()


def largest_cluster(features: np.ndarray) -> np.ndarray:
    """[n] bool: the members of the largest mean-shift cluster of the rows of `features` (ties: the
    cluster scikit-learn lists first, the one with the most points within the bandwidth of its mode)."""
    n = len(features)
    bandwidth = estimate_bandwidth(features, quantile=max(0.5, 2 / n)) if n > 1 else 0.0
    clustering = MeanShift(bandwidth=max(bandwidth, _MIN_BANDWIDTH), bin_seeding=True, cluster_all=False)
    with warnings.catch_warnings():  # as many bins as points: it seeds from the points, and says so
        warnings.filterwarnings("ignore", message="Binning data failed", category=UserWarning)
        labels = clustering.fit(features).labels_
    clustered = labels[labels >= 0]
    if not len(clustered):
        return np.ones(n, dtype=bool)
    return labels == np.bincount(clustered).argmax()


class SignGuard(Defense):
    """SignGuard (Xu et al. 2022): norm filter and sign-statistics clustering, then the mean of the kept
    submissions clipped to the median norm.

    Options:
      lower, upper: L and R, the kept range of ||p_i|| / median norm
      fraction: share of the coordinates whose signs are counted (at least one coordinate)
      seed: the coordinate subset comes from hash(seed, the round's submissions)
            (byzrun/defenses/draws.py): fresh every round, the same on a re-run
    """

    name = "signguard"
    bound = MAJORITY

    def __init__(self, lower: float = 0.1, upper: float = 3.0, fraction: float = 0.1, seed: int = 0):
        for key, value in (("lower", lower), ("upper", upper), ("fraction", fraction)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"defense.{key} must be a number, got {value!r}")
        if not 0 <= lower <= 1 <= upper:
            raise ConfigError(
                f"defense.lower and defense.upper need 0 <= lower <= 1 <= upper, got {lower}, {upper}"
            )
        if not 0 < fraction <= 1:
            raise ConfigError(f"defense.fraction must be in (0, 1], got {fraction}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"defense.seed must be an integer, got {seed!r}")
        self.lower, self.upper, self.fraction, self.seed = float(lower), float(upper), float(fraction), seed

    def norms(self, G: Tensor) -> Tensor:
        """[n] L2 norms (computed in G's dtype, then float64), +inf for a row with a non-finite value."""
        return torch.linalg.vector_norm(G, dim=1).double().nan_to_num(nan=torch.inf)

    def kept_mask(self, G: Tensor, norms: Tensor, M: Tensor) -> Tensor:
        """[n] bool: S1 ∩ S2."""
        by_norm = (norms >= self.lower * M) & (norms <= self.upper * M) & torch.isfinite(norms)
        d = G.shape[1]
        columns = coordinate_subset(d, max(1, int(self.fraction * d)), round_generator(G, self.seed))
        by_sign = torch.from_numpy(largest_cluster(sign_statistics(G[:, columns.to(G.device)])))
        return by_norm & by_sign.to(by_norm.device)

    def select(self, G: Tensor, f: int) -> Tensor:
        norms = self.norms(G)
        return self.kept_mask(G, norms, median_norm(norms)).nonzero().flatten().to(G.device)

    def __call__(self, G: Tensor, f: int) -> Tensor:
        norms = self.norms(G)
        M = median_norm(norms)
        kept = self.kept_mask(G, norms, M)
        if not bool(kept.any()):
            return torch.zeros_like(G[0])
        scale = torch.where(norms > M, M / norms, 1.0)[kept]
        return (scale.to(G.dtype) @ G[kept.to(G.device)]) / int(kept.sum())
