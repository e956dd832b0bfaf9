"""Centered clipping (Karimireddy, He, Jaggi, "Learning from History for Byzantine Robust
Optimization", ICML 2021).

v_{l+1} = v_l + (1/n) sum_i (p_i - v_l) min(1, tau / ||p_i - v_l||), for l = 0..L-1.

The paper starts from the previous round's aggregate (v_0 = the server momentum). byzrun's rules are
stateless, so v_0 comes from the current round: the coordinate-wise median by default. The paper's
guarantee (Theorem III) needs a Byzantine fraction delta = f/n <= 0.1.
"""

from __future__ import annotations

import torch
from torch import Tensor

from byzrun.defenses.base import TENTH, Defense
from byzrun.defenses.distances import finite_rows
from byzrun.defenses.order import median
from byzrun.errors import ConfigError

CENTERS = ("median", "mean", "zero")


class CenteredClipping(Defense):
    """Centered clipping, stateless (Karimireddy et al. 2021).

    Options:
      tau: clipping radius (L2)
      iterations: L, clipping steps
      center: where v_0 comes from: median (coordinate-wise, default) | mean (of the finite rows) |
              zero (the origin, i.e. an average of norm-clipped vectors on the first step)
    A row with a non-finite value contributes nothing (its clipped difference is undefined), as if it
    had sent v_l.
    """

    name = "centered_clipping"
    bound = TENTH

    def __init__(self, tau: float = 10.0, iterations: int = 1, center: str = "median"):
        if center not in CENTERS:
            raise ConfigError(f"defense.center must be one of {CENTERS}, got {center!r}")
        if tau <= 0 or int(iterations) < 1:
            raise ConfigError("defense.tau must be > 0 and defense.iterations >= 1")
        self.tau = float(tau)
        self.iterations = int(iterations)
        self.center = center

    def __call__(self, G: Tensor, f: int) -> Tensor:
        n = G.shape[0]
        ok = finite_rows(G)
        clean = G if bool(ok.all()) else torch.where(ok[:, None], G, 0.0)
        if self.center == "median":
            v = median(G)
        elif self.center == "mean":
            v = clean.sum(0) / ok.sum().clamp_min(1)
        else:
            v = torch.zeros_like(G[0])
        for _ in range(self.iterations):
            diff = clean - v
            scale = (self.tau / torch.linalg.vector_norm(diff, dim=1)).clamp(max=1.0)
            scale = torch.where(ok, scale, 0.0)
            v = v + (scale @ diff) / n
        return v
