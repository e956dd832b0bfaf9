"""Non-finite vectors: a crashed, buggy or overflowing worker, to check that defenses survive them."""

from __future__ import annotations

import math

from torch import Tensor

from byzrun.attacks.base import Attack, AttackContext
from byzrun.errors import ConfigError


class NonFinite(Attack):
    """Every Byzantine row is `value` (NaN, +inf or -inf) in every coordinate. A rule that claims
    robustness (Defense.robust) must still return a finite vector; the mean does not, and the run
    records its divergence. Distances to an infinite row are inf, sums of +inf and -inf NaN."""

    name = "non_finite"

    def __init__(self, value: float = math.nan):
        self.value = value

    def validate(self, *, n: int, m: int, data=None) -> None:
        if not isinstance(self.value, float) or math.isfinite(self.value):
            raise ConfigError(f"attack.value must be nan, inf or -inf, got {self.value!r}")

    def __call__(self, ctx: AttackContext) -> Tensor:
        return ctx.own.new_full(ctx.own.shape[1:], self.value).expand(ctx.m, -1)  # one row, viewed m times
