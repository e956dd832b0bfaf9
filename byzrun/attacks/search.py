"""The adaptive attacker's line search over its factor (attack.factor=search).

Each round the attacker tries every candidate factor c on the Byzantine rows base + c·direction,
aggregates [honest rows; Byzantine rows; other attackers' rows] with the server's own rule
ctx.defense, and keeps the c whose aggregate lies farthest (L2) from the mean of the honest
rows. This mirrors the Distributed Momentum code's adaptive attacks (a negative factor there), with
a fixed grid of candidates instead of its iterative line maximisation: the grid is explicit,
reproducible and costs exactly `search_points` defense calls per round.

The search evaluates the defense on the true honest rows, so an adaptive attacker is omniscient
about the honest gradients whatever its `knowledge` (which still decides its base and direction).
Ties go to the smallest candidate; a candidate whose aggregate is NaN is never chosen.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from byzrun.attacks import options
from byzrun.attacks.base import AttackContext
from byzrun.cpu_reductions import row_mean
from byzrun.errors import ConfigError

SCALES = ("geometric", "linear")


class FactorSearch:
    def __init__(self, search_range, points, scale):
        self.raw = (search_range, points, scale)
        self.values: list[float] | None = None

    def check(self) -> list[float]:
        search_range, points, scale = self.raw
        lo, hi = options.pair("search_range", search_range)
        lo = options.number("search_range", lo, low=0.0)
        hi = options.number("search_range", hi, low=0.0)
        points = options.integer("search_points", points, low=2)
        scale = options.choice("search_scale", scale, SCALES)
        if not lo < hi:
            raise ConfigError(f"attack.search_range=[{lo}, {hi}] must be increasing; e.g. [0.1, 10]")
        if scale == "geometric" and lo == 0:
            raise ConfigError(
                "attack.search_range must start above 0 for search_scale=geometric; e.g. [0.01, 10]"
            )
        grid = np.geomspace(lo, hi, points) if scale == "geometric" else np.linspace(lo, hi, points)
        self.values = [float(v) for v in grid]
        return self.values

    @torch.no_grad()
    def __call__(self, ctx: AttackContext, base: Tensor, direction: Tensor) -> tuple[Tensor, Tensor]:
        """Returns the chosen row [d] and the chosen factor (a 0-dim tensor, no host sync)."""
        values = self.values if self.values is not None else self.check()
        h, k = ctx.honest.shape[0], ctx.m
        parts = [ctx.honest, base.expand(k, -1)]
        if ctx.others is not None:
            parts.append(ctx.others)
        G = torch.cat(parts)  # one matrix reused for every candidate; only the k rows change
        honest_mean = row_mean(ctx.honest)
        dist = []
        for c in values:
            G[h : h + k] = base + c * direction
            # the distance now: a selection rule may return a view of G, which the next c overwrites
            dist.append(torch.linalg.vector_norm(ctx.defense(G, ctx.declared_f) - honest_mean))
        dist = torch.nan_to_num(torch.stack(dist), nan=-math.inf)
        best = torch.argmax(dist)
        chosen = torch.tensor(values, dtype=torch.float64, device=base.device)[best]
        return base + chosen.to(base.dtype) * direction, chosen


class FactorLog:
    """Keeps the factors chosen each round on the device; converted to floats only when read."""

    def __init__(self):
        self.last: Tensor | None = None
        self.total: Tensor | None = None
        self.count = 0

    def record(self, factor: Tensor) -> None:
        self.last = factor
        self.total = factor if self.total is None else self.total + factor
        self.count += 1

    def last_value(self) -> float:
        return math.nan if self.last is None else float(self.last)

    def mean_value(self) -> float:
        return math.nan if self.total is None else float(self.total) / self.count
