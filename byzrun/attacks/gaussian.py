"""Gaussian noise: the Byzantine workers send random vectors."""

from __future__ import annotations

import torch
from torch import Tensor

from byzrun.attacks import options
from byzrun.attacks.base import Attack, AttackContext

CENTERS = ("zero", "own_mean", "honest_mean")


class Gaussian(Attack):
    """Byzantine row i = c + σ·ξ_i, ξ_i ~ N(0, I_d) drawn independently per worker and round.

    The Gaussian Byzantine workers of the Krum paper (Blanchard et al., NeurIPS 2017), whose
    experiments use a large σ; default σ = 200.
    center c: zero (pure noise, the default), own_mean (mean of the corrupted workers' own honest
        gradients: noise around a plausible gradient) or honest_mean (mean of all honest rows).
    The noise comes from torch's global generator on the device, which the run's seed fixes.
    """

    name = "gaussian"

    def __init__(self, sigma: float = 200.0, center: str = "zero"):
        self.sigma, self.center = sigma, center

    def validate(self, *, n: int, m: int, data=None) -> None:
        options.number("sigma", self.sigma, low=0.0)
        options.choice("center", self.center, CENTERS)

    def __call__(self, ctx: AttackContext) -> Tensor:
        own = ctx.own
        rows = torch.randn(own.shape, dtype=own.dtype, device=own.device).mul_(float(self.sigma))
        if self.center == "own_mean":
            rows += own.mean(dim=0)
        elif self.center == "honest_mean":
            rows += ctx.honest.mean(dim=0)
        return rows

    def summary_fields(self) -> dict:
        return {"sigma": float(self.sigma)}
