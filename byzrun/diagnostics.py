"""Per-evaluation measurements of a round's submissions, for metrics.csv.

- flip_share_z<z>: ALIE paper Figure 2, the share (0..1) of coordinates j where |μ_j| < z·σ_j,
  μ and σ the mean and population standard deviation of the honest rows: the coordinates whose
  sign an attacker shifting by z·σ can flip. One column per z in sign_flip_z, named with the
  shortest form of z (flip_share_z0.5, flip_share_z1, flip_share_z2).
- agg_dist: L2 distance of the aggregate from the mean of the honest rows.
- byz_selected: for selection rules (defense.selection not None), how many of the selected rows
  are Byzantine (indices >= n - m, counted with multiplicity); NaN for other rules, so that every
  defense gives the same columns.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


@torch.no_grad()
def round_metrics(
    honest: Tensor, G: Tensor, aggregate: Tensor, m: int, defense, sign_flip_z: list[float] | None
) -> dict[str, float]:
    zs = [float(z) for z in sign_flip_z] if sign_flip_z else []
    sigma, mu = torch.std_mean(honest, dim=0, correction=0)
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
