"""Phocas (Xie, Koyejo, Gupta, "Phocas: dimensional Byzantine-resilient stochastic gradient
descent", 2018): per coordinate, the mean of the n-f values closest to the trimmed mean
(the mean without the f largest and f smallest values), as in the Distributed Momentum code.
Tolerates f <= ceil(n/2)-1 (which also keeps n-2f >= 1 values in the trimmed mean).
"""

from __future__ import annotations

from torch import Tensor

from byzrun.defenses.base import MAJORITY, Defense
from byzrun.defenses.order import column_map, nearest_mean_sorted, trimmed_sorted


class Phocas(Defense):
    """Per coordinate, the mean of the n-f values nearest the f-trimmed mean.

    Ties in the distance go to the smaller value.
    """

    name = "phocas"
    bound = MAJORITY

    def __call__(self, G: Tensor, f: int) -> Tensor:
        k = max(1, G.shape[0] - f)
        return column_map(G, lambda S: nearest_mean_sorted(S, trimmed_sorted(S, f), k))
