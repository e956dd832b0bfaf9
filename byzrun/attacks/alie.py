"""A Little Is Enough, convergence prevention (Baruch, Baruch & Goldberg, NeurIPS 2019, Algorithm 3)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from byzrun.attacks import options, stats
from byzrun.attacks.base import Attack, AttackContext
from byzrun.attacks.optimal import optimal_factor
from byzrun.attacks.search import FactorLog, FactorSearch

MODES = ("auto", "search", "optimal")
ADAPTIVE = ("search", "optimal")  # factor modes that choose z each round


class ALIE(Attack):
    """Every Byzantine worker sends the same vector  p_mal = μ - z·σ  (coordinate-wise).

    μ, σ: mean and standard deviation over the gradients the attacker sees (see stats.py:
    `knowledge` corrupted = the paper's non-omniscient attacker, omniscient = all honest rows;
    `std` population as the ALIE code, or unbiased as the Distributed Momentum code's "little").

    factor (alias z, the paper's symbol; z wins when both are given):
        a number >= 0   fixed z; the paper's tables use 1.5
        auto            z_max of Algorithm 3: s = floor(n/2 + 1) - m, z_max = Φ⁻¹((n-m-s)/(n-m)).
                        n=50, m=24 gives 1.43 (the paper's example); the tables' n=51, m=12 gives
                        only 0.36, which is why their z = 1.5 is a separate number.
        search          adaptive attacker: each round the z in the search grid that pushes the
                        server's aggregate farthest from the honest mean (search.py).
        optimal         adaptive attacker with ByzFL's line search instead of the grid (optimal.py);
                        with knowledge=omniscient, std=unbiased, direction=plus it is ByzFL's
                        Optimal_ALittleIsEnough.
    direction: minus (μ - zσ, the paper) or plus (μ + zσ).
    """

    name = "alie"

    def __init__(
        self,
        factor: Any = 1.5,
        z: Any = None,
        knowledge: str = "corrupted",
        std: str = "population",
        direction: str = "minus",
        search_range: Any = (0.1, 10.0),
        search_points: int = 12,
        search_scale: str = "geometric",
    ):
        self.option = "factor" if z is None else "z"
        self.factor = factor if z is None else z
        self.knowledge, self.std, self.direction = knowledge, std, direction
        self.search = FactorSearch(search_range, search_points, search_scale)
        self.log = FactorLog()
        self.mode = "fixed"
        self.z: float | None = None  # resolved; None until validate() or the first round

    def validate(self, *, n: int, m: int, data=None) -> None:
        value = options.factor(self.option, self.factor, MODES, "the paper's tables use 1.5")
        stats.check(self.knowledge, self.std, n=n, m=m)
        options.choice("direction", self.direction, stats.DIRECTION)
        if value == "auto":
            self.mode, self.z = "auto", stats.checked_z_max(n, m, self.option)
        elif value == "search":
            self.mode, self.z = "search", None
            self.search.check()
        elif value == "optimal":
            self.mode, self.z = "optimal", None
        else:
            self.mode, self.z = "fixed", value

    def __call__(self, ctx: AttackContext) -> Tensor:
        if self.z is None and self.mode not in ADAPTIVE:
            self.validate(n=ctx.n, m=ctx.m)
        mu, sigma = stats.mean_std(stats.observed(ctx, self.knowledge), self.std)
        step = -sigma if self.direction == "minus" else sigma
        if self.mode in ADAPTIVE:
            search = self.search if self.mode == "search" else optimal_factor
            row, chosen = search(ctx, mu, step)
            self.log.record(chosen)
        else:
            row = mu + self.z * step
        return row.expand(ctx.m, -1)  # a view: the round copies it into the matrix once

    def eval_metrics(self, model=None) -> dict[str, Any]:
        return {"factor": self.log.last_value()} if self.mode in ADAPTIVE else {}

    def summary_fields(self) -> dict[str, Any]:
        z = self.log.mean_value() if self.mode in ADAPTIVE else self.z
        return {"z": z, "z_mode": self.mode}
