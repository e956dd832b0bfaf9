"""Sign flipping: the Byzantine workers send their own honest gradients reversed."""

from __future__ import annotations

from torch import Tensor

from byzrun.attacks import options
from byzrun.attacks.base import Attack, AttackContext
from byzrun.errors import ConfigError


class SignFlip(Attack):
    """Byzantine row i = -scale · g_i, with g_i the corrupted worker's own honest gradient (ctx.own).

    A standard baseline of the Byzantine-SGD literature (e.g. RSA, Li et al., AAAI 2019); it needs no
    knowledge beyond the worker's own data. scale > 0 (1 by default).
    """

    name = "sign_flip"

    def __init__(self, scale: float = 1.0):
        self.scale = scale

    def validate(self, *, n: int, m: int, data=None) -> None:
        if options.number("scale", self.scale, low=0.0) == 0:
            raise ConfigError("attack.scale must be > 0 (0 would send zero vectors); e.g. 1")

    def __call__(self, ctx: AttackContext) -> Tensor:
        return ctx.own * -float(self.scale)

    def summary_fields(self) -> dict:
        return {"scale": float(self.scale)}
