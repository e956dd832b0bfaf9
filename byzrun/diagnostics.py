"""The statistics of a round that metrics.csv records at every evaluation (and every
`diagnostics.every` rounds), all computed here.

What the honest workers submit (Distributed Momentum paper, "Distributed Momentum for
Byzantine-resilient Stochastic Gradient Descent", El Mhamdi, Guerraoui, Rouault, ICLR 2021, Sec. 3):
- variance_norm_ratio = E_i ||s_i - s̄||² / ||s̄||² over the honest submissions s_i (gradients, or
  velocities under worker momentum): the quantity whose decrease lets robust rules keep up;
- honest_norm ||s̄||, aggregate_norm, and cosine, the cosine of the aggregate with s̄.

What the attack achieves:
- agg_dist: L2 distance of the aggregate from the mean of the honest rows.
- flip_share_z<z>: ALIE paper ("A Little Is Enough", Baruch, Baruch, Goldberg, NeurIPS 2019)
  Figure 2, the share (0..1) of coordinates j where |μ_j| < z·σ_j, μ and σ the mean and population
  standard deviation of the honest rows: the coordinates whose sign an attacker shifting by z·σ can
  flip. One column per z in sign_flip_z, named with the shortest form of z (flip_share_z0.5,
  flip_share_z1, flip_share_z2).
- byz_selected: for selection rules (defense.selection not None), how many of the selected rows
  are Byzantine (indices >= n - m, counted with multiplicity); NaN for other rules, so that every
  defense gives the same columns.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from byzrun.cpu_reductions import row_mean, row_std_mean


def round_statistics(
    honest: Tensor, G: Tensor, aggregate: Tensor, m: int, defense, sign_flip_z: list[float] | None
) -> dict[str, float]:
    """Every statistic above: the honest rows [h, d], all submitted rows G [n, d], the aggregate [d]."""
    return {
        **submission_stats(honest, aggregate),
        **round_metrics(honest, G, aggregate, m, defense, sign_flip_z),
    }


@torch.no_grad()
def submission_stats(honest: Tensor, aggregate: Tensor) -> dict[str, float]:
    mean = row_mean(honest)
    mean_sq = mean.square().sum()
    spread = (honest - mean).square().sum(dim=1).mean()  # mean squared distance to the mean
    cosine = torch.nn.functional.cosine_similarity(aggregate, mean, dim=0, eps=1e-30)
    return {
        "variance_norm_ratio": (spread / mean_sq).item() if mean_sq > 0 else float("inf"),
        "honest_norm": mean_sq.sqrt().item(),
        "aggregate_norm": aggregate.norm().item(),
        "cosine": cosine.item(),
    }


@torch.no_grad()
def round_metrics(
    honest: Tensor, G: Tensor, aggregate: Tensor, m: int, defense, sign_flip_z: list[float] | None
) -> dict[str, float]:
    zs = [float(z) for z in sign_flip_z] if sign_flip_z else []
    sigma, mu = row_std_mean(honest, correction=0)
    values = [torch.linalg.vector_norm(aggregate - mu)]
    if zs:
        z = torch.tensor(zs, dtype=honest.dtype, device=honest.device)
        values.append((mu.abs() < z[:, None] * sigma).to(honest.dtype).mean(dim=1))
    selected = defense.selection(G, m) if defense is not None else None
    if selected is not None:
        selected = torch.as_tensor(selected, device=G.device)
        if selected.dtype == torch.bool:  # a mask over the rows
            selected = selected.nonzero().flatten()
        values.append((selected >= G.shape[0] - m).sum().to(honest.dtype))
    # one transfer to the host for all the numbers
    flat = torch.cat([v.reshape(-1).to(torch.float64) for v in values]).tolist()
    out = {"agg_dist": flat[0]}
    out.update({f"flip_share_z{z:g}": share for z, share in zip(zs, flat[1 : 1 + len(zs)])})
    out["byz_selected"] = flat[-1] if selected is not None else math.nan
    return out
