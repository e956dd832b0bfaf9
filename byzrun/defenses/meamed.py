"""MeaMed, mean around the median (Xie, Koyejo, Gupta, "Generalized Byzantine-tolerant SGD", 2018):
per coordinate, the mean of the n-f values closest to the median. Tolerates f <= ceil(n/2)-1.
"""

from __future__ import annotations

from torch import Tensor

from byzrun.defenses.base import MAJORITY, Defense
from byzrun.defenses.order import column_map, median_sorted, nearest_mean_sorted
from byzrun.defenses.trimmed_mean import check_even


class MeaMed(Defense):
    """Per coordinate, the mean of the n-f values nearest the coordinate-wise median.

    Options:
      even: median of an even count: average (of the two middle values, default) |
            lower (the lower middle value, as the Distributed Momentum code's median)
    Ties in the distance to the median go to the smaller value.
    """

    name = "meamed"
    bound = MAJORITY

    def __init__(self, even: str = "average"):
        check_even(even)
        self.even = even

    def __call__(self, G: Tensor, f: int) -> Tensor:
        k = max(1, G.shape[0] - f)
        return column_map(G, lambda S: nearest_mean_sorted(S, median_sorted(S, self.even), k))
