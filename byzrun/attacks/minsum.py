"""Min-sum (Shejwalkar & Houmansadr, "Manipulating the Byzantine: Optimizing Model Poisoning Attacks
and Defenses for Federated Learning", NDSS 2021, Sec. IV-B, AGR-agnostic): every Byzantine worker
sends  x_m = μ + γ·p  with γ the largest (Algorithm 1) for which

    Σ_i ||x_m - x_i||²  <=  max_i Σ_j ||x_i - x_j||²        (i, j over the honest vectors seen)

so the malicious vector's summed squared distance to the honest vectors is no larger than that of
the most remote honest vector. Directions and the search: perturbation.py.
"""

from __future__ import annotations

from torch import Tensor

from byzrun.attacks.base import Attack
from byzrun.attacks.perturbation import PerturbationSearch


def largest_row_sum(sq_dist: Tensor) -> Tensor:
    return sq_dist.sum(dim=1).max()


class MinSum(PerturbationSearch, Attack):
    """x_m = μ + γ·p, γ the largest keeping the sum of squared distances to the honest vectors within
    the largest such sum of an honest vector. Options as min-max (minmax.py)."""

    name = "minsum"
    reduce_crafted = staticmethod(Tensor.sum)
    reduce_honest = staticmethod(largest_row_sum)
