"""FLTrust (Cao, Fang, Liu, Gong, "FLTrust: Byzantine-robust Federated Learning via Trust
Bootstrapping", NDSS 2021).

The server holds a small clean root dataset and computes its own gradient g0 on it every round, at
the current parameters. Each submission earns a trust score and is rescaled to g0's norm:
    TS_i = ReLU(cos(p_i, g0)),    p_i' = p_i ||g0|| / ||p_i||,
    aggregate = sum_i TS_i p_i' / sum_i TS_i    (the zero vector when every TS_i is 0).
A submission with a zero norm or a non-finite value scores 0 (its cosine is undefined). The paper
claims robustness against any number of Byzantine workers, so the bound is f <= n-1.
How the server gets g0 (the root set, its batches) is byzrun/root_set.py.
"""

from __future__ import annotations

import torch
from torch import Tensor

from byzrun.defenses.base import UNBOUNDED, Defense
from byzrun.defenses.distances import finite_rows
from byzrun.errors import ConfigError


def trust_scores(G: Tensor, g0: Tensor) -> Tensor:
    """[n] float64 TS_i = ReLU(cos(p_i, g0)); 0 where the cosine is undefined: a zero or non-finite p_i
    (or one whose norm overflows), a zero g0. Products and norms in G's dtype (no float64 copy of G)."""
    ok = finite_rows(G)
    clean = G if bool(ok.all()) else torch.where(ok[:, None], G, 0.0)
    dots = (clean @ g0.to(G.dtype)).double()
    norms = torch.linalg.vector_norm(clean, dim=1).double() * torch.linalg.vector_norm(g0).double()
    cosine = torch.where(norms > 0, dots / norms.clamp_min(1e-300), 0.0).nan_to_num(nan=0.0)
    return torch.where(ok, cosine.clamp(0.0, 1.0), 0.0)


class FLTrust(Defense):
    """FLTrust (Cao et al. 2021): submissions weighted by their cosine with the server's own gradient.

    Options:
      root_size: samples in the server's clean root set (the paper: 100)
    The server gives the rule its gradient in begin_round() every round (Defense.root_size > 0).
    """

    name = "fltrust"
    bound = UNBOUNDED

    def __init__(self, root_size: int = 100):
        if isinstance(root_size, bool) or not isinstance(root_size, int) or root_size < 1:
            raise ConfigError(f"defense.root_size must be an integer >= 1 (root samples), got {root_size!r}")
        self.root_size = root_size
        self.server_gradient: Tensor | None = None

    def reset(self) -> None:
        self.server_gradient = None

    def begin_round(self, server_gradient: Tensor | None) -> None:
        self.server_gradient = server_gradient

    def __call__(self, G: Tensor, f: int) -> Tensor:
        g0 = self.server_gradient
        if g0 is None:
            raise RuntimeError("fltrust needs the server's gradient: call begin_round(g0) before the rule")
        scores = trust_scores(G, g0)
        total = scores.sum()
        if not total > 0:
            return torch.zeros_like(G[0])
        norms = torch.linalg.vector_norm(G, dim=1).double()
        rescale = torch.linalg.vector_norm(g0).double() / norms  # p_i' = p_i ||g0|| / ||p_i||
        used = scores > 0
        weights = (scores * torch.where(used, rescale, 0.0) / total)[used]
        return weights.to(G.dtype) @ G[used]
