"""Inner-product manipulation, "Fall of Empires" (Xie, Koyejo & Gupta, UAI 2019; PMLR 115, 2020)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from byzrun.attacks import options, stats
from byzrun.attacks.base import Attack, AttackContext
from byzrun.attacks.optimal import optimal_factor
from byzrun.attacks.search import FactorLog, FactorSearch
from byzrun.cpu_reductions import row_mean

ADAPTIVE = ("search", "optimal")


class IPM(Attack):
    """Every Byzantine worker sends  -ε · mean(honest),  so that for small ε a rule that picks
    something near the Byzantine rows turns the inner product with the true gradient negative.

    The paper's ε form. The Distributed Momentum code ("empire") writes the same vector as
    mean + factor·(-mean) = (1 - factor)·mean, so its factor = 1 + ε: its 1.1 is ε = 0.1 here.

    factor (alias epsilon; epsilon wins when both are given): ε >= 0, `search` for the adaptive
        attacker that picks ε per round from the search grid (search.py), or `optimal` for ByzFL's
        line search (optimal.py; with knowledge=omniscient it is ByzFL's
        Optimal_InnerProductManipulation, whose τ is ε).
    knowledge: omniscient (the paper: the mean of all honest rows) or corrupted (the mean of the
        corrupted workers' own honest gradients).
    """

    name = "ipm"

    def __init__(
        self,
        factor: Any = 0.1,
        epsilon: Any = None,
        knowledge: str = "omniscient",
        search_range: Any = (0.01, 100.0),
        search_points: int = 12,
        search_scale: str = "geometric",
    ):
        self.option = "factor" if epsilon is None else "epsilon"
        self.factor = factor if epsilon is None else epsilon
        self.knowledge = knowledge
        self.search = FactorSearch(search_range, search_points, search_scale)
        self.log = FactorLog()
        self.epsilon: float | str | None = None

    def validate(self, *, n: int, m: int, data=None) -> None:
        self.epsilon = options.factor(self.option, self.factor, ADAPTIVE, "Xie et al. use 0.1 against Krum")
        options.choice("knowledge", self.knowledge, stats.KNOWLEDGE)
        if self.epsilon == "search":
            self.search.check()

    def __call__(self, ctx: AttackContext) -> Tensor:
        if self.epsilon is None:
            self.validate(n=ctx.n, m=ctx.m)
        mean = row_mean(stats.observed(ctx, self.knowledge))
        if self.epsilon in ADAPTIVE:
            step = mean.neg_()
            search = self.search if self.epsilon == "search" else optimal_factor
            row, chosen = search(ctx, step.new_zeros(()).expand_as(step), step)
            self.log.record(chosen)
        else:
            row = mean.mul_(-float(self.epsilon))  # = epsilon * (-mean), bit for bit, in one pass
        return row.expand(ctx.m, -1)  # a view: the round copies it into the matrix once

    def eval_metrics(self, model=None) -> dict[str, Any]:
        return {"factor": self.log.last_value()} if self.epsilon in ADAPTIVE else {}

    def summary_fields(self) -> dict[str, Any]:
        if self.epsilon in ADAPTIVE:
            return {"epsilon": self.log.mean_value(), "epsilon_mode": self.epsilon}
        return {"epsilon": self.epsilon, "epsilon_mode": "fixed"}
