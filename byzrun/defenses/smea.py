"""Smallest maximum eigenvalue averaging, SMEA (Allouah, Guerraoui, Gupta, Pinot, Stephan, "On the
Privacy-Robustness-Utility Trilemma in Distributed Learning", ICML 2023).

    S* = argmin_{|S| = n-f} lambda_max( (1/|S|) sum_{i in S} (p_i - pbar_S)(p_i - pbar_S)^T ),
    SMEA = pbar_{S*} = (1/(n-f)) sum_{i in S*} p_i

The d x d covariance of S has the same non-zero eigenvalues as the |S| x |S| matrix (1/|S|) H K_S H
(K_S the Gram matrix of S, H = I - 11'/|S| the centring), so every subset costs one small symmetric
eigenvalue problem on the n x n Gram matrix computed once (distances.centered_gram), solved exactly
(LAPACK), never a power method. An exhaustive search over C(n, f) subsets (subsets.py). f < n/2.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from byzrun.defenses.base import MAJORITY, Defense
from byzrun.defenses.distances import centered_gram
from byzrun.defenses.subsets import SubsetAveraging, kept_rows


def top_eigenvalues(K: Tensor, f: int):
    """score(left_out [c, f]) -> lambda_max [c] of every kept subset's covariance, from the Gram matrix K.

    A subset with a non-finite row scores +inf.
    """
    n = K.shape[0]
    k = n - f
    bad = ~torch.isfinite(K.diagonal())
    K = torch.where(bad[:, None] | bad[None, :], 0.0, K)

    def score(left_out: np.ndarray) -> Tensor:
        index = torch.from_numpy(kept_rows(n, left_out))
        S = K[index[:, :, None], index[:, None, :]]
        S = S - S.mean(1, keepdim=True)
        S = S - S.mean(2, keepdim=True)  # H K_S H
        top = torch.linalg.eigvalsh(S)[:, -1] / k
        return torch.where(bad[index].any(1), math.inf, top)

    return score


class SmallestMaxEigenvalueAveraging(SubsetAveraging, Defense):
    """The mean of the n-f submissions whose covariance has the smallest top eigenvalue (Allouah et al. 2023).

    Options:
      max_subsets: refuse (before training) an n, f whose C(n, f) subsets exceed this; each costs an
                   (n-f) x (n-f) eigenvalue problem (~0.3 ms at n-f = 47), so the default 10^4
                   allows f <= 2 at n=51 (a round then takes up to ~3 s on one core)
    Ties: the subset of lowest row indices (lexicographically first).
    """

    name = "smea"
    bound = MAJORITY
    default_max_subsets = 10_000
    chunk = 512  # [512, 49, 49] float64 is 10 MB

    def scorer(self, G: Tensor, f: int):
        return top_eigenvalues(centered_gram(G), f)
