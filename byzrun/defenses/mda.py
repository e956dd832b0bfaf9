"""Minimum-diameter averaging, MDA (El Mhamdi, Guerraoui, Guirguis, Hoang, Rouault, "Genuinely
Distributed Byzantine Machine Learning", PODC 2020; Rousseeuw's minimum volume idea).

    S* = argmin_{S subset of [n], |S| = n-f} max_{i,j in S} ||p_i - p_j||,   MDA = (1/(n-f)) sum_{i in S*} p_i

An exhaustive search over the C(n, f) subsets (byzrun/defenses/subsets.py), each scored from the
n x n distances computed once. For an honest majority, f < n/2.
"""

from __future__ import annotations

import numpy as np
from torch import Tensor

from byzrun.defenses.base import MAJORITY, Defense
from byzrun.defenses.distances import pairwise_sq_distances
from byzrun.defenses.subsets import SubsetAveraging


def diameters(D: Tensor, f: int):
    """score(left_out [c, f]) -> the squared diameter [c] of every subset, from squared distances D.

    The diameter is the largest distance whose two ends are both kept. Leaving out f rows removes at
    most f(n-1) - f(f-1)/2 pairs, so that largest one is among that many + 1 largest pairs overall:
    only those are looked at. Rows are bits of 64-bit words, so "pair p touches a left-out row" is one
    AND per word (c x ~f*n integer operations per chunk, no gathers).
    """
    n = D.shape[0]
    i, j = np.triu_indices(n, k=1)
    values = D.numpy()[i, j]
    look = min(len(values), f * (n - 1) - f * (f - 1) // 2 + 1)
    order = np.argsort(-values, kind="stable")[:look]
    i, j, values = i[order], j[order], values[order]
    words = (n + 63) // 64
    one = np.uint64(1)
    pair_bits = np.zeros((words, look), dtype=np.uint64)
    for ends in (i, j):
        np.bitwise_or.at(pair_bits, (ends // 64, np.arange(look)), one << (ends % 64).astype(np.uint64))

    def score(left_out: np.ndarray) -> np.ndarray:
        if look == 0:
            return np.zeros(len(left_out))
        bits = one << (left_out % 64).astype(np.uint64)
        touched = np.zeros((len(left_out), look), dtype=bool)
        for w in range(words):
            # distinct rows are distinct bits: their sum is their OR
            out_bits = np.where(left_out // 64 == w, bits, np.uint64(0)).sum(1, dtype=np.uint64)
            touched |= (out_bits[:, None] & pair_bits[w][None, :]) != 0
        first = np.argmin(touched, axis=1)  # the largest pair with both ends kept
        inside = ~touched[np.arange(len(left_out)), first]
        return np.where(inside, values[first], 0.0)  # no pair inside (one row kept): diameter 0

    return score


class MinimumDiameterAveraging(SubsetAveraging, Defense):
    """The mean of the n-f submissions whose largest pairwise distance is smallest (El Mhamdi et al. 2020).

    Options:
      max_subsets: refuse (before training) an n, f whose C(n, f) subsets exceed this; at n=51 the
                   default 10^6 allows f <= 4 (C(51,4) = 249,900 subsets: ~1.2 s a round on one core)
    Ties: the subset of lowest row indices (lexicographically first). A row with a non-finite value is
    at distance +inf from every other, so a subset without it always wins while one exists.
    """

    name = "mda"
    bound = MAJORITY
    default_max_subsets = 1_000_000

    def scorer(self, G: Tensor, f: int):
        return diameters(pairwise_sq_distances(G), f)
