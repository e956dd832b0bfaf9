"""Trimmed mean, per coordinate, in the three variants of the ALIE paper (Sec. 2.3).

For coordinate j, v_j = mean of (p_i)_j over i in U_j, where U_j is
  nearest_n-f    the n-f values nearest the median mu_j (variant 1, Xie et al. 2018, "mean around median")
  nearest_n-2f   the n-2f values nearest the median (variant 2, El Mhamdi et al. 2018; used by Bulyan)
  trim_extremes  all values but the f largest and the f smallest (variant 3, Yin et al. 2018)
  alie_code      the n-f-1 values nearest the median (what the ALIE authors' code computes)
All variants tolerate f <= ceil(n/2)-1 (the median must come from the honest values).
"""

from __future__ import annotations

from torch import Tensor

from byzrun.defenses.base import MAJORITY, Defense
from byzrun.defenses.order import column_map, median_sorted, nearest_mean_sorted, trimmed_sorted
from byzrun.errors import ConfigError

VARIANTS = ("nearest_n-2f", "nearest_n-f", "trim_extremes", "alie_code")
EVEN = ("average", "lower")


def check_even(even: str) -> None:
    if even not in EVEN:
        raise ConfigError(f"defense.even must be one of {EVEN}, got {even!r}")


class TrimmedMean(Defense):
    """Coordinate-wise trimmed mean (ALIE paper Sec. 2.3; Xie et al. 2018; Yin et al. 2018).

    Options:
      variant: nearest_n-2f (default, ALIE variant 2) | nearest_n-f (variant 1) |
               trim_extremes (variant 3) | alie_code (n-f-1 nearest the median, the ALIE code)
      even: how the median of an even count is taken for the "nearest" variants:
            average (of the two middle values, default) | lower (the lower middle, as torch.median)
    Ties in the distance to the median go to the smaller value. Outside the bound at least one
    value per coordinate is kept.
    """

    name = "trimmed_mean"
    bound = MAJORITY

    def __init__(self, variant: str = "nearest_n-2f", even: str = "average"):
        if variant not in VARIANTS:
            raise ConfigError(f"defense.variant must be one of {VARIANTS}, got {variant!r}")
        check_even(even)
        self.variant = variant
        self.even = even

    def kept(self, n: int, f: int) -> int:
        """|U_j|, at least 1."""
        k = {
            "nearest_n-2f": n - 2 * f,
            "nearest_n-f": n - f,
            "trim_extremes": n - 2 * f,
            "alie_code": n - f - 1,
        }
        return max(1, k[self.variant])

    def __call__(self, G: Tensor, f: int) -> Tensor:
        n = G.shape[0]
        if self.variant == "trim_extremes":
            return column_map(G, lambda S: trimmed_sorted(S, f))
        k = self.kept(n, f)
        return column_map(G, lambda S: nearest_mean_sorted(S, median_sorted(S, self.even), k))
