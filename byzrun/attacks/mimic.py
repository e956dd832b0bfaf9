"""Mimic (Karimireddy, He & Jaggi, "Byzantine-Robust Learning on Heterogeneous Datasets via
Bucketing", ICLR 2022, Sec. 5 and Appendix; the attack `mimic` of their code,
epfml/byzantine-robust-noniid-optimizer): every Byzantine worker sends a copy of one honest worker's
vector, so that this worker's data weighs m+1 times in the aggregate. Harmless on i.i.d. data, it
biases the model towards one worker's distribution on heterogeneous data.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from byzrun.attacks import options
from byzrun.attacks.base import Attack, AttackContext
from byzrun.errors import ConfigError


class Mimic(Attack):
    """Every Byzantine row is the submission x_{i*} of one honest worker i*.

    target: an integer (i* fixed, 0 <= i* < n-m; ByzFL's Mimic(epsilon=i*)), or `warmup`, the
        paper's choice: i* is the honest worker farthest along the direction z of largest variance
        of the honest vectors, z estimated over the first `warmup` rounds by one step of power
        iteration per round (as their code):
            round 0:     μ = mean_i x_i,  z ∝ Σ_i <x_i - μ, z_0> (x_i - μ),  z_0 ~ N(0, I) from seed 0
            round t < w: μ <- (t·μ + mean_i x_i)/(t+1),
                         z <- normalised (t·z + v/||v||)/(t+1),  v = Σ_i <x_i - μ, z> (x_i - μ)
            during warm-up each round:  i* = argmax_i <x_i, z>  (ties: the lowest index)
        From round `warmup` on, i* stays the last one chosen. z_0 comes from a generator of its own
        (seed 0, on the CPU, as the code seeds it), so the choice does not consume the run's draws.
    The estimate is state across rounds: an attack is built afresh for every run (byzrun.train), so
    each run starts its warm-up anew.
    """

    name = "mimic"

    def __init__(self, target: Any = "warmup", warmup: int = 1):
        self.target, self.warmup = target, warmup
        self.fixed: int | None = None  # the fixed index of target=<int>
        self.chosen: int | None = None  # the worker copied in the last round
        self.rounds = 0  # rounds seen, for the warm-up
        self.mu: Tensor | None = None
        self.z: Tensor | None = None

    def validate(self, *, n: int, m: int, data=None) -> None:
        options.integer("warmup", self.warmup, low=1)
        if self.target == "warmup":
            self.fixed = None
            return
        try:
            self.fixed = options.integer("target", self.target, low=0, high=n - m - 1)
        except ConfigError:
            raise ConfigError(
                f"attack.target must be warmup or an honest worker's index in [0, {n - m - 1}], "
                f"got {self.target!r}"
            ) from None

    def _power_step(self, honest: Tensor) -> None:
        """One warm-up round's update of μ and z."""
        t = self.rounds
        mean = honest.mean(dim=0)
        self.mu = mean if t == 0 else (t * self.mu + mean) / (t + 1)
        X = honest - self.mu
        if t == 0:
            start = torch.randn(
                honest.shape[1], generator=torch.Generator().manual_seed(0), dtype=torch.float64
            )
            self.z = start.to(honest.device, honest.dtype)
        v = (X @ self.z) @ X  # Σ_i <x_i - μ, z> (x_i - μ): one product with the covariance
        v = v / torch.linalg.vector_norm(v).clamp_min(torch.finfo(v.dtype).tiny)
        z = v if t == 0 else (t * self.z + v) / (t + 1)
        self.z = z / torch.linalg.vector_norm(z).clamp_min(torch.finfo(z.dtype).tiny)

    def __call__(self, ctx: AttackContext) -> Tensor:
        if self.fixed is None and self.target != "warmup":
            self.validate(n=ctx.n, m=ctx.m)
        if self.fixed is not None:
            self.chosen = self.fixed
        elif self.rounds < int(self.warmup):
            self._power_step(ctx.honest)
            self.chosen = int(torch.argmax(ctx.honest @ self.z))
        self.rounds += 1
        return ctx.honest[self.chosen].expand(ctx.m, -1)  # a view: the round copies it once

    def summary_fields(self) -> dict[str, Any]:
        return {"mimic_target": self.chosen}
