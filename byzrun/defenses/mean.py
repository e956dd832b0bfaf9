"""Mean: the plain average, called "No Defense" in the papers' tables."""

from torch import Tensor

from byzrun.defenses.base import UNBOUNDED, Defense


class Mean(Defense):
    """Coordinate-wise average of all n vectors. Not robust: NaN/Inf rows propagate."""

    robust = False
    name = "mean"
    bound = UNBOUNDED

    def __call__(self, G: Tensor, f: int) -> Tensor:
        return G.mean(dim=0)
