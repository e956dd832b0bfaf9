"""Mean: the plain average, called "No Defense" in the papers' tables."""

from torch import Tensor

from byzrun.defenses.base import Defense


class Mean(Defense):
    """Coordinate-wise average of all n vectors. Not robust: NaN/Inf rows propagate."""

    robust = False
    registry_name = "mean"

    def aggregate(self, G: Tensor, f: int) -> Tensor:
        return G.mean(dim=0)
