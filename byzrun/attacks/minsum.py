"""Min-sum (Shejwalkar & Houmansadr, "Manipulating the Byzantine: Optimizing Model Poisoning Attacks
and Defenses for Federated Learning", NDSS 2021, Sec. IV-B, AGR-agnostic): every Byzantine worker
sends  x_m = μ + γ·p  with γ the largest (Algorithm 1) for which

    Σ_i ||x_m - x_i||²  <=  max_i Σ_j ||x_i - x_j||²        (i, j over the honest vectors seen)

so the malicious vector's summed squared distance to the honest vectors is no larger than that of
the most remote honest vector. Directions and the search: perturbation.py.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from byzrun.attacks import perturbation
from byzrun.attacks.base import Attack, AttackContext


def largest_row_sum(sq_dist: Tensor) -> Tensor:
    return sq_dist.sum(dim=1).max()


class MinSum(Attack):
    """x_m = μ + γ·p, γ the largest keeping the sum of squared distances to the honest vectors within
    the largest such sum of an honest vector. Options as min-max (minmax.py)."""

    name = "minsum"

    def __init__(
        self,
        direction: str = "std",
        gamma_init: float = 10.0,
        tau: float = 1e-5,
        knowledge: str = "omniscient",
    ):
        self.direction, self.gamma_init, self.tau, self.knowledge = direction, gamma_init, tau, knowledge
        self.gamma: float | None = None  # the last round's γ

    def validate(self, *, n: int, m: int, data=None) -> None:
        perturbation.check(self.direction, self.gamma_init, self.tau, self.knowledge, n=n, m=m)

    def __call__(self, ctx: AttackContext) -> Tensor:
        row, self.gamma = perturbation.perturbed_row(
            ctx, self.direction, self.gamma_init, self.tau, self.knowledge, largest_row_sum, Tensor.sum
        )
        return row.expand(ctx.rows, -1).contiguous()

    def summary_fields(self) -> dict[str, Any]:
        return {"gamma": self.gamma}
