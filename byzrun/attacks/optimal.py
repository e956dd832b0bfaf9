"""ByzFL's "optimal" factor for ALIE and IPM (attack.factor=optimal): a line search that grows its
step while the aggregate keeps moving away from the honest mean, then shrinks it.

The objective is that of search.py: the L2 distance between the server's aggregate of
[honest rows; Byzantine rows; other attackers' rows] and the mean of the honest rows, with every
Byzantine row base + x·direction. ByzFL (Allouah et al., the Optimal_ALittleIsEnough and
Optimal_InnerProductManipulation attacks of byzfl 0.0.11) searches x as follows, with its defaults:

    x = START; y = distance(x); δ = DELTA; growing = True
    repeat EVALS - 1 times:
        y' = distance(x + δ)
        if y' > y:  x, y = x + δ, y'          (strictly farther; a NaN distance never wins)
        δ = 2δ if growing and it was farther, else RATIO·δ, and growing stops at the first miss

so δ doubles during the first run of improvements and shrinks by RATIO on every later step. Each
call costs EVALS defense calls; the whole search stays on the device (no host synchronisation).
The constants are not YAML options: adding keys to alie.yaml and ipm.yaml would change the config
hash of every ALIE and IPM preset, whose finished runs are found again by it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from byzrun.attacks.base import AttackContext
from byzrun.cpu_reductions import row_mean

EVALS = 20  # distance evaluations per round, ByzFL's `evals`
START = 0.0  # first factor tried, ByzFL's `start`
DELTA = 10.0  # first step, ByzFL's `delta`
RATIO = 0.8  # step shrink factor after the expansion, ByzFL's `ratio`


@torch.no_grad()
def optimal_factor(ctx: AttackContext, base: Tensor, direction: Tensor) -> tuple[Tensor, Tensor]:
    """Returns the chosen row [d] and the chosen factor (a 0-dim float64 tensor on the device)."""
    h, k = ctx.honest.shape[0], ctx.m
    parts = [ctx.honest, base.expand(k, -1)]
    if ctx.others is not None:
        parts.append(ctx.others)
    G = torch.cat(parts)  # only the k Byzantine rows change between evaluations
    honest_mean = row_mean(ctx.honest)

    def distance(x: Tensor) -> Tensor:
        G[h : h + k] = base + x.to(base.dtype) * direction
        # measured at once: a selection rule may return a view of G, which the next x overwrites
        return torch.linalg.vector_norm(ctx.defense(G, ctx.declared_f) - honest_mean)

    def scalar(value: float) -> Tensor:
        return torch.tensor(value, dtype=torch.float64, device=base.device)

    x, delta, growing = scalar(START), scalar(DELTA), torch.tensor(True, device=base.device)
    best = distance(x)
    for _ in range(EVALS - 1):
        proposal = x + delta
        y = distance(proposal)
        farther = y > best
        x = torch.where(farther, proposal, x)
        best = torch.where(farther, y, best)
        growing = growing & farther
        delta = torch.where(growing, delta * 2.0, delta * RATIO)
    return base + x.to(base.dtype) * direction, x
