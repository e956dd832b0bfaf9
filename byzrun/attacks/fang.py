"""Fang et al.'s full-knowledge attacks ("Local Model Poisoning Attacks to Byzantine-Robust Federated
Learning", USENIX Security 2020, Sec. 3), on the submitted vectors.

The paper crafts local models; here the Byzantine workers submit gradients, and the global model
moves by -lr·mean, so the paper's "changing direction" s_j of parameter j is -sign(μ_j) (μ the mean
of the honest vectors, known to the full-knowledge attacker), and each rule below is the paper's
written for the vectors the server aggregates.

variant=krum (Sec. 3.2, attacking Krum): every Byzantine worker sends  x' = -λ·sign(μ),  i.e. the
    paper's w'_1 = w_Re - λ·s, with λ started at the paper's upper bound

        λ_max = 1/((n - 2m - 1)·√d) · min_i Σ_{l ∈ Γ_i} ||x_l - x_i||  +  1/√d · max_i ||x_i||

    (i, l over the honest vectors, Γ_i the n-m-2 honest vectors nearest x_i; ||x_i|| is the paper's
    D(w_i, w_Re) in gradient units) and halved until the server's selection keeps a Byzantine row,
    or until λ < threshold (the paper: 1e-5), when the last λ is sent anyway. Selection: the
    server's own (defense.selection: Krum, Multi-Krum, Bulyan, with any pre-aggregation); for a rule
    that selects nothing, Krum as Blanchard et al. define it (squared distances, n-f-2 neighbours).
variant=trim (Sec. 3.2, attacking trimmed mean, also the paper's attack on the median): per
    coordinate, values just outside the honest range on the side opposite the honest update,
    with x_max,j / x_min,j the honest maximum / minimum and b > 1 (the paper: 2):
        μ_j > 0 (the parameter decreases):  below the minimum, in [x_min,j/b, x_min,j] if x_min,j > 0,
                                             else in [b·x_min,j, x_min,j]
        μ_j <= 0:                            above the maximum, in [x_max,j, b·x_max,j] if x_max,j > 0,
                                             else in [x_max,j, x_max,j/b]
    each value drawn uniformly, independently per worker, coordinate and round, from torch's global
    generator on the device (fixed by the run's seed).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from byzrun.attacks import options
from byzrun.attacks.base import Attack, AttackContext
from byzrun.defenses.distances import pairwise_sq_distances
from byzrun.defenses.krum import Krum
from byzrun.errors import ConfigError

VARIANTS = ("krum", "trim")


def krum_lambda_bound(honest: Tensor, n: int, m: int) -> float:
    """The paper's upper bound λ_max for the Krum variant (module docstring)."""
    h, d = honest.shape
    dist = pairwise_sq_distances(honest).sqrt()
    dist.fill_diagonal_(math.inf)  # a vector is not its own neighbour
    k = n - m - 2
    neighbours = dist.topk(k, dim=1, largest=False).values.sum(dim=1).min() if k > 0 else dist.new_zeros(())
    farthest = torch.linalg.vector_norm(honest.to(torch.float64), dim=1).max().cpu()
    return float(neighbours / ((n - 2 * m - 1) * math.sqrt(d)) + farthest / math.sqrt(d))


def selects_byzantine(ctx: AttackContext, G: Tensor, rows: slice) -> bool:
    """Whether the server's selection (or the paper's Krum) keeps a row of G[rows]."""
    selection = getattr(ctx.defense, "selection", None) or getattr(ctx.defense, "select", None)
    chosen = selection(G, ctx.declared_f) if selection is not None else None
    if chosen is None:
        chosen = Krum().select(G, ctx.declared_f)
    chosen = torch.as_tensor(chosen, device=G.device)
    if chosen.dtype == torch.bool:
        chosen = chosen.nonzero().flatten()
    return bool(((chosen >= rows.start) & (chosen < rows.stop)).any())


def trim_rows(honest: Tensor, k: int, b: float) -> Tensor:
    """k rows of the trimmed-mean variant (module docstring)."""
    mu = honest.mean(dim=0)
    high, low = honest.amax(dim=0), honest.amin(dim=0)
    # [lo, hi] per coordinate: below the minimum where μ > 0, above the maximum elsewhere
    below_lo = torch.where(low > 0, low / b, low * b)
    above_hi = torch.where(high > 0, high * b, high / b)
    down = mu > 0
    lo = torch.where(down, below_lo, high)
    hi = torch.where(down, low, above_hi)
    u = torch.rand((k, honest.shape[1]), dtype=honest.dtype, device=honest.device)
    return lo + u * (hi - lo)


class Fang(Attack):
    """Fang et al.'s full-knowledge attack against Krum (variant=krum) or against the trimmed mean and
    the median (variant=trim); see the module docstring for the formulas."""

    name = "fang"

    def __init__(self, variant: str = "krum", b: float = 2.0, threshold: float = 1e-5):
        self.variant, self.b, self.threshold = variant, b, threshold
        self.lam: float | None = None  # the last λ sent (variant=krum)

    def validate(self, *, n: int, m: int, data=None) -> None:
        options.choice("variant", self.variant, VARIANTS)
        if options.number("b", self.b, low=1.0) == 1.0:
            raise ConfigError(
                "attack.b must be > 1 (1 leaves the values on the honest range); the paper uses 2"
            )
        if options.number("threshold", self.threshold, low=0.0) == 0:
            raise ConfigError("attack.threshold must be > 0; the paper stops halving lambda below 1e-5")
        if self.variant == "krum" and n - 2 * m - 1 < 1:
            raise ConfigError(
                f"attack.variant=krum needs n >= 2m+2 for the paper's lambda bound (1/(n-2m-1)), got n={n}, "
                f"m={m}; lower m or use attack.variant=trim"
            )

    def __call__(self, ctx: AttackContext) -> Tensor:
        honest, k = ctx.honest, ctx.m
        if self.variant == "trim":
            return trim_rows(honest, k, float(self.b))
        direction = -torch.sign(honest.mean(dim=0))
        parts = [honest, direction.expand(k, -1)]
        if ctx.others is not None:
            parts.append(ctx.others)
        G = torch.cat(parts)
        h = honest.shape[0]
        lam = krum_lambda_bound(honest, ctx.n, ctx.declared_f)
        while True:
            G[h : h + k] = lam * direction
            if lam < float(self.threshold) or selects_byzantine(ctx, G, slice(h, h + k)):
                break
            lam /= 2
        self.lam = lam
        return (lam * direction).expand(k, -1).contiguous()

    def summary_fields(self) -> dict[str, Any]:
        return (
            {"variant": self.variant, "lambda": self.lam} if self.variant == "krum" else {"variant": "trim"}
        )
