"""Gaussian noise: the Byzantine workers send random vectors."""

from __future__ import annotations

import torch
from torch import Tensor

from byzrun.attacks import options
from byzrun.attacks.base import Attack, AttackContext
from byzrun.cpu_reductions import row_mean
from byzrun.errors import ConfigError

CENTERS = ("zero", "own_mean", "honest_mean")


class Gaussian(Attack):
    """Byzantine row i = c + σ·ξ_i, ξ_i ~ N(0, I_d), drawn afresh every round.

    The Gaussian Byzantine workers of the Krum paper (Blanchard et al., NeurIPS 2017), whose
    experiments use a large σ; default σ = 200.
    center c: zero (pure noise, the default), own_mean (mean of the corrupted workers' own honest
        gradients: noise around a plausible gradient), honest_mean (mean of all honest rows), or a
        number μ (every coordinate μ: ByzFL's Gaussian(mu, sigma)).
    shared: false draws one ξ_i per worker (independent rows); true draws one ξ and sends it from all
        m workers, as ByzFL's ByzantineClient copies its one Gaussian vector to the f workers.
    The noise comes from torch's global generator on the device, which the run's seed fixes.
    """

    name = "gaussian"

    def __init__(self, sigma: float = 200.0, center: str | float = "zero", shared: bool = False):
        self.sigma, self.center, self.shared = sigma, center, shared

    def validate(self, *, n: int, m: int, data=None) -> None:
        options.number("sigma", self.sigma, low=0.0)
        if not isinstance(self.center, str) or self.center not in CENTERS:
            try:
                options.number("center", self.center)
            except ConfigError:
                choices = ", ".join(CENTERS)
                raise ConfigError(
                    f"attack.center={self.center!r} is unknown; choose one of {choices} or a number"
                ) from None
        if not isinstance(self.shared, bool):
            raise ConfigError(f"attack.shared must be true or false, got {self.shared!r}")

    def __call__(self, ctx: AttackContext) -> Tensor:
        own = ctx.own
        shape = own.shape[1:] if self.shared else own.shape
        rows = torch.randn(shape, dtype=own.dtype, device=own.device)
        if float(self.sigma) != 1.0:  # times 1.0 changes no bit: one pass over the rows saved
            rows.mul_(float(self.sigma))
        if self.center == "own_mean":
            rows += row_mean(own)
        elif self.center == "honest_mean":
            rows += row_mean(ctx.honest)
        elif self.center != "zero":
            rows += float(self.center)
        return rows.expand(ctx.m, -1) if self.shared else rows  # shared: a view, copied once by the round

    def summary_fields(self) -> dict:
        return {"sigma": float(self.sigma)}
