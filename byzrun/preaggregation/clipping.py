"""Static clipping: every vector scaled to an L2 norm of at most c,

    Clip_c(p_i) = min(1, c / ||p_i||) p_i,

the fixed-threshold pre-aggregation clipping that Allouah et al. ("The Vital Role of Gradient
Clipping in Byzantine-Resilient Distributed Learning", 2024) compare their adaptive ARC with (arc.py).
A pre-aggregation step: `defense.pre=[{name: clipping, c: 2.0}]`. It does not depend on f: unbounded.
"""

from __future__ import annotations

import torch
from torch import Tensor

from byzrun.defenses.base import UNBOUNDED
from byzrun.defenses.distances import finite_rows
from byzrun.errors import ConfigError
from byzrun.preaggregation.base import PreAggregator


def clip_rows(G: Tensor, threshold: Tensor | float) -> Tensor:
    """Every row of G scaled to an L2 norm of at most `threshold`; rows with a non-finite value unchanged
    (scaling would turn Inf into NaN; the rule after the step deals with them)."""
    norms = torch.linalg.vector_norm(G, dim=1)
    scale = (threshold / norms).clamp(max=1.0)
    finite = torch.isfinite(norms)  # a finite norm is a finite row: one pass over G saved
    if not bool(finite.all()):  # a non-finite norm: a NaN/Inf row, or a finite one whose norm overflows
        finite = finite_rows(G)
    scale = torch.where(finite & (norms > threshold), scale, 1.0)
    return G * scale[:, None].to(G.dtype)


class Clipping(PreAggregator):
    """Clip every vector to an L2 norm of at most c.

    Options:
      c: the clipping threshold (> 0); ByzFL's default is 2.0
    """

    name = "clipping"
    bound = UNBOUNDED

    def __init__(self, c: float = 2.0):
        if not float(c) > 0:
            raise ConfigError(f"clipping needs c > 0, got c={c}")
        self.c = float(c)

    def apply(self, G: Tensor, f: int) -> tuple[Tensor, Tensor]:
        return clip_rows(G, self.c), torch.eye(G.shape[0], dtype=torch.bool, device=G.device)
