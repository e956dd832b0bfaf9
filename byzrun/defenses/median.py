"""Coordinate-wise median (Yin et al., "Byzantine-Robust Distributed Learning: Towards Optimal
Statistical Rates", ICML 2018; Xie et al. 2018). Tolerates f <= ceil(n/2)-1.
"""

from __future__ import annotations

from torch import Tensor

from byzrun.defenses.base import MAJORITY, Defense
from byzrun.defenses.order import median
from byzrun.defenses.trimmed_mean import check_even


class Median(Defense):
    """Coordinate-wise median.

    Options:
      even: average (default: the mean of the two middle values when n is even) |
            lower (the lower middle value, as torch.median and the Distributed Momentum code)
    NaN counts as +inf, so f <= ceil(n/2)-1 non-finite rows cannot move the median out of the
    honest values.
    """

    name = "median"
    bound = MAJORITY

    def __init__(self, even: str = "average"):
        check_even(even)
        self.even = even

    def __call__(self, G: Tensor, f: int) -> Tensor:
        return median(G, self.even)
