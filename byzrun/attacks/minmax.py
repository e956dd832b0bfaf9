"""Min-max (Shejwalkar & Houmansadr, "Manipulating the Byzantine: Optimizing Model Poisoning Attacks
and Defenses for Federated Learning", NDSS 2021, Sec. IV-B, AGR-agnostic): every Byzantine worker
sends  x_m = μ + γ·p  with γ the largest (Algorithm 1) for which

    max_i ||x_m - x_i||²  <=  max_{i,j} ||x_i - x_j||²      (i, j over the honest vectors seen)

so the malicious vector lies no farther from any honest vector than two honest vectors lie apart.
It ignores the server's rule (agnostic of the aggregation). Directions and the search: perturbation.py.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from byzrun.attacks import perturbation
from byzrun.attacks.base import Attack, AttackContext


class MinMax(Attack):
    """x_m = μ + γ·p, γ the largest keeping the largest squared distance to an honest vector within
    the honest vectors' largest pairwise squared distance.

    direction: std (-σ, unbiased; the default), unit_vec (-μ/||μ||) or sign (-sign(μ)).
    gamma_init, tau: Algorithm 1's start (and first step) and stopping threshold (their code: 10, 1e-5);
        γ is searched in [0, 2·gamma_init].
    knowledge: omniscient (all honest vectors, the paper's full-knowledge attacker) or corrupted
        (the corrupted workers' own honest gradients, their partial-knowledge attacker).
    """

    name = "minmax"

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
            ctx, self.direction, self.gamma_init, self.tau, self.knowledge, Tensor.max, Tensor.max
        )
        return row.expand(ctx.rows, -1).contiguous()

    def summary_fields(self) -> dict[str, Any]:
        return {"gamma": self.gamma}
