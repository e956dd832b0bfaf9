"""Label flipping: the Byzantine workers train honestly on wrong labels."""

from __future__ import annotations

from torch import Tensor

from byzrun.attacks.base import Attack, AttackContext


class LabelFlip(Attack):
    """Data poisoning: poison_batch() maps every label y of the Byzantine workers' batches to
    C - 1 - y (C classes), the training loop computes their gradients on those batches like any other
    worker's, and the attack sends them unchanged (ctx.own). Under worker momentum ctx.own holds
    their velocities, so the poisoned gradients accumulate like honest ones.
    """

    name = "label_flip"

    def poison_batch(self, x: Tensor, y: Tensor, data) -> tuple[Tensor, Tensor]:
        return x, (data.num_classes - 1) - y

    def __call__(self, ctx: AttackContext) -> Tensor:
        return ctx.own
