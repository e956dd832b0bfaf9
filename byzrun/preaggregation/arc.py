"""Adaptive robust clipping, ARC (Allouah, Guerraoui, Gupta, Jellouli, Rizk, Stephan, "The Vital Role
of Gradient Clipping in Byzantine-Resilient Distributed Learning", 2024, arXiv:2405.14432).

With k = floor(2 (f/n) (n-f)), the k vectors of largest norm are clipped to the largest norm among
the other n-k:

    ARC(p_i) = min(1, ||p_(n-k)|| / ||p_i||) p_i,   ||p_(1)|| <= ... <= ||p_(n)|| the sorted norms.

A pre-aggregation step in front of a robust rule: `defense.pre=[arc]`. The paper's guarantee (ARC
keeps the rule's robustness) is for f < n/2. Ties in norm do not matter: a vector at the threshold's
norm is left as it is either way.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from byzrun.defenses.base import MAJORITY
from byzrun.preaggregation.base import PreAggregator
from byzrun.preaggregation.clipping import clip_rows


def clipped_count(n: int, f: int) -> int:
    """k = floor(2 (f/n) (n-f)), in integers (2f(n-f) // n) so that no rounding moves the floor."""
    return max(0, 2 * f * (n - f) // n)


class AdaptiveRobustClipping(PreAggregator):
    """Clip the floor(2(f/n)(n-f)) largest-norm vectors to the largest remaining norm (ARC).

    A row with a non-finite value counts as the largest and is left as it is (the rule after the step
    deals with it); it never sets the threshold while at most k rows are non-finite.
    """

    name = "arc"
    bound = MAJORITY
    can_overwrite = True

    def apply(self, G: Tensor, f: int, overwrite: bool = False) -> tuple[Tensor, Tensor]:
        n = G.shape[0]
        k = clipped_count(n, f)
        members = torch.eye(n, dtype=torch.bool, device=G.device)
        if k == 0:
            return G, members
        norms = torch.linalg.vector_norm(G, dim=1)
        threshold = torch.sort(torch.nan_to_num(norms, nan=math.inf)).values[n - k - 1]  # largest not clipped
        return clip_rows(G, threshold, overwrite, norms), members
