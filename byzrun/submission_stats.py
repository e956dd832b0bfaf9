"""Statistics of what the honest workers submit (Distributed Momentum paper, Sec. 3).

variance_norm_ratio = E_i ||s_i - s̄||² / ||s̄||² over the honest submissions s_i (gradients, or
momenta under worker momentum): the quantity whose decrease lets robust rules keep up.
"""

from __future__ import annotations

import torch
from torch import Tensor


@torch.no_grad()
def submission_stats(honest: Tensor, aggregate: Tensor) -> dict[str, float]:
    mean = honest.mean(dim=0)
    mean_sq = mean.square().sum()
    spread = (honest - mean).square().sum(dim=1).mean()  # mean squared distance to the mean
    cosine = torch.nn.functional.cosine_similarity(aggregate, mean, dim=0, eps=1e-30)
    return {
        "variance_norm_ratio": (spread / mean_sq).item() if mean_sq > 0 else float("inf"),
        "honest_norm": mean_sq.sqrt().item(),
        "aggregate_norm": aggregate.norm().item(),
        "cosine": cosine.item(),
    }
