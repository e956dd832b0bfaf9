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


def clip_rows(
    G: Tensor, threshold: Tensor | float, overwrite: bool = False, norms: Tensor | None = None
) -> Tensor:
    """Every row of G scaled to an L2 norm of at most `threshold`; rows with a non-finite value unchanged
    (scaling would turn Inf into NaN; the rule after the step deals with them). overwrite=True scales
    the clipped rows of G in place and returns G: the same bits, since the others' scale is 1.
    `norms`: the rows' L2 norms when the caller has them already (ARC): one pass over G fewer."""
    if norms is None:
        norms = torch.linalg.vector_norm(G, dim=1)
    scale = (threshold / norms).clamp(max=1.0)
    finite = torch.isfinite(norms)  # a finite norm is a finite row: one pass over G saved
    if not bool(finite.all()):  # a non-finite norm: a NaN/Inf row, or a finite one whose norm overflows
        finite = finite_rows(G)
    clipped = finite & (norms > threshold)
    scale = torch.where(clipped, scale, 1.0).to(G.dtype)
    if not overwrite:
        return G * scale[:, None]
    rows = clipped.nonzero().flatten().tolist() if G.device.type == "cpu" else None  # no host sync on GPUs
    if rows is None or 2 * len(rows) > len(G):
        return G.mul_(scale[:, None])  # one pass; the unclipped rows' scale 1 changes no bit
    for i in rows:  # a few rows (ARC): only those
        G[i].mul_(scale[i])
    return G


class Clipping(PreAggregator):
    """Clip every vector to an L2 norm of at most c.

    Options:
      c: the clipping threshold (> 0); ByzFL's default is 2.0
    """

    name = "clipping"
    bound = UNBOUNDED
    can_overwrite = True

    def __init__(self, c: float = 2.0):
        if not float(c) > 0:
            raise ConfigError(f"clipping needs c > 0, got c={c}")
        self.c = float(c)

    def apply(self, G: Tensor, f: int, overwrite: bool = False) -> tuple[Tensor, Tensor]:
        return clip_rows(G, self.c, overwrite), torch.eye(G.shape[0], dtype=torch.bool, device=G.device)
