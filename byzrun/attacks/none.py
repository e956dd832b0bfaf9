"""No attack: the Byzantine workers behave honestly (all n workers are correct)."""

from torch import Tensor

from byzrun.attacks.base import Attack, AttackContext


class NoAttack(Attack):
    """The Byzantine rows are what those workers would honestly send (ctx.own)."""

    name = "none"
    needs_byzantine = False

    def __call__(self, ctx: AttackContext) -> Tensor:
        return ctx.own
