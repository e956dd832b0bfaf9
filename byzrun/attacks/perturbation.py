"""What min-max and min-sum share (Shejwalkar & Houmansadr, "Manipulating the Byzantine: Optimizing
Model Poisoning Attacks and Defenses for Federated Learning", NDSS 2021, Sec. IV): the perturbation
directions and the binary search of the scale γ (their Algorithm 1).

The malicious vector is  x_m = μ + γ·p,  μ the mean of the honest vectors the attacker sees, p one of
    unit_vec   -μ/||μ||           (the inverse unit vector; 0 when μ = 0)
    std        -σ                  (the inverse coordinate-wise standard deviation, unbiased as their code)
    sign       -sign(μ)            (the inverse sign)
and γ the largest value that keeps a constraint O(γ) on the distances to the honest vectors.

Algorithm 1 (γ_init, τ): γ = γ_init, s = γ_init, γ_succ = 0;
    while |γ_succ - γ| > τ:  if O(γ): γ_succ = γ, γ += s/2  else: γ -= s/2;  then s /= 2
returns γ_succ. The loop keeps γ - γ_succ = s, so it runs exactly as many times as s takes to fall
to τ by halving: a fixed count, known before the search. Each constraint is a convex quadratic in γ
that holds at γ = 0, so the feasible γ form an interval [0, γ*] and the search returns γ* to within τ
(capped at 2·γ_init).

The squared distances ||x_m - x_i||² = a_i - 2γ·b_i + γ²·c, with a_i = ||x_i - μ||², b_i = <x_i - μ, p>,
c = ||p||², need one pass over the [h, d] vectors; every step of the search is then O(h), in float64
on the CPU. The honest pairwise distances come from byzrun.defenses.distances (a centred Gram matrix).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from byzrun.attacks.base import AttackContext
from byzrun.attacks.options import choice, number
from byzrun.attacks.stats import KNOWLEDGE, observed
from byzrun.defenses.distances import pairwise_sq_distances
from byzrun.errors import ConfigError

DIRECTIONS = ("unit_vec", "std", "sign")


def check(direction: str, gamma_init, tau, knowledge: str, *, n: int, m: int) -> None:
    """The options min-max and min-sum share, each failure one ConfigError line."""
    choice("direction", direction, DIRECTIONS)
    choice("knowledge", knowledge, KNOWLEDGE)
    if number("gamma_init", gamma_init, low=0.0) == 0:
        raise ConfigError("attack.gamma_init must be > 0; the paper's code starts at 10")
    if number("tau", tau, low=0.0) == 0:
        raise ConfigError("attack.tau must be > 0; the paper's code stops at 1e-5")
    seen = m if knowledge == "corrupted" else n - m
    if seen < 2:
        raise ConfigError(
            f"attack.knowledge={knowledge} sees {seen} vector(s), too few for distances between "
            "honest vectors; use attack.knowledge=omniscient or raise m"
        )


def perturbed_row(
    ctx: AttackContext,
    kind: str,
    gamma_init: float,
    tau: float,
    knowledge: str,
    limit: Callable[[Tensor], Tensor],
    spread: Callable[[Tensor], Tensor],
) -> tuple[Tensor, float]:
    """x_m = μ + γp [d] and γ, the largest γ (Algorithm 1) with spread(d(γ)) <= limit(D): d(γ) [h]
    the squared distances from x_m to the honest vectors seen, D [h, h] theirs to each other."""
    seen = observed(ctx, knowledge)
    mu = seen.mean(dim=0)
    X = seen - mu
    sq = X.square()  # one pass serves σ and the a_i
    p = direction(mu, sq, kind)
    # ||μ + γp - x_i||² = a_i - 2γ b_i + γ² c, the terms in float64 on the CPU (2h+1 numbers)
    a, b, c = (t.to("cpu", torch.float64) for t in (sq.sum(dim=1), X @ p, p.square().sum()))
    most = limit(pairwise_sq_distances(seen))
    gamma = largest_gamma(lambda g: spread(a - 2 * g * b + g * g * c) <= most, float(gamma_init), float(tau))
    return mu + gamma * p, gamma


def direction(mu: Tensor, sq: Tensor, kind: str) -> Tensor:
    """The perturbation p [d] (it already carries the minus sign), from the mean μ and the squared
    deviations sq [h, d] of the honest vectors seen."""
    if kind == "unit_vec":
        norm = torch.linalg.vector_norm(mu)
        return torch.where(norm > 0, -mu / norm, torch.zeros_like(mu))
    if kind == "std":  # unbiased, as their code's torch.std; summed directly (torch.std over dim 0 is slow)
        return -(sq.sum(dim=0) / (sq.shape[0] - 1)).sqrt()
    return -torch.sign(mu)


def search_steps(gamma_init: float, tau: float) -> int:
    """How many times Algorithm 1's loop runs: s = γ_init, γ_init/2, ... while s > τ."""
    steps, s = 0, gamma_init
    while s > tau:
        steps, s = steps + 1, s / 2
    return steps


def largest_gamma(feasible: Callable[[Tensor], Tensor], gamma_init: float, tau: float) -> float:
    """Algorithm 1: γ_succ for a constraint feasible(γ) evaluated on float64 scalars."""
    gamma, step, succ = gamma_init, gamma_init, 0.0
    for _ in range(search_steps(gamma_init, tau)):
        if bool(feasible(torch.tensor(gamma, dtype=torch.float64))):
            succ, gamma = gamma, gamma + step / 2
        else:
            gamma = gamma - step / 2
        step /= 2
    return succ


class PerturbationSearch:
    """The options and the round of min-max and min-sum, which differ only in their constraint:
    `reduce_crafted` maps the crafted vector's squared distances to the honest ones [h] to one number,
    `reduce_honest` the honest pairwise squared distances [h, h] to its bound. A mixin, not an Attack,
    so that the registry finds the two attacks, not this (minmax.py, minsum.py)."""

    reduce_crafted: Callable[[Tensor], Tensor]
    reduce_honest: Callable[[Tensor], Tensor]

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
        check(self.direction, self.gamma_init, self.tau, self.knowledge, n=n, m=m)

    def __call__(self, ctx: AttackContext) -> Tensor:
        row, self.gamma = perturbed_row(
            ctx,
            self.direction,
            self.gamma_init,
            self.tau,
            self.knowledge,
            self.reduce_honest,
            self.reduce_crafted,
        )
        return row.expand(ctx.m, -1)  # one row for every Byzantine worker, copied once by the round

    def summary_fields(self) -> dict[str, Any]:
        return {"gamma": self.gamma}
