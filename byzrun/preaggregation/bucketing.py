"""Bucketing (Karimireddy, He, Jaggi, "Byzantine-Robust Learning on Heterogeneous Datasets via
Bucketing", ICLR 2022).

A pre-aggregation step: shuffle the n vectors at random, split them into ceil(n/s) buckets of s
(the last one may be smaller), average each bucket, then run the rule on the bucket means with the
same f (each Byzantine vector spoils at most one bucket). The rule's bound is checked for
n' = ceil(n/s). Use it from the config: `defense.pre=[bucketing]` or `defense.pre=[{name:bucketing,s:3}]`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from byzrun.defenses.base import UNBOUNDED
from byzrun.defenses.draws import round_generator
from byzrun.errors import ConfigError
from byzrun.preaggregation.base import PreAggregator


class Bucketing(PreAggregator):
    """Random buckets of s vectors, averaged (Karimireddy et al. 2022).

    Options:
      s: bucket size (the paper's s; 2 in most of its experiments)
      seed: the shuffle is drawn from a torch.Generator seeded with hash(seed, sample of G), so it is
            a pure function of the round's submissions: fresh every round and the same on a re-run.
    For selections, a selected bucket stands for all of its members.
    """

    name = "bucketing"
    bound = UNBOUNDED  # each Byzantine vector spoils at most one bucket: f stays f

    def __init__(self, s: int = 2, seed: int = 0):
        if int(s) < 1:
            raise ConfigError(f"bucketing needs s >= 1, got s={s}")
        self.s = int(s)
        self.seed = int(seed)

    def out_count(self, n: int) -> int:
        return -(-n // self.s)

    def permutation(self, G: Tensor) -> Tensor:
        return torch.randperm(G.shape[0], generator=round_generator(G, self.seed))

    def apply(self, G: Tensor, f: int) -> tuple[Tensor, Tensor]:
        n = G.shape[0]
        buckets = self.out_count(n)
        bucket = torch.empty(n, dtype=torch.long)
        bucket[self.permutation(G)] = torch.arange(n) // self.s
        bucket = bucket.to(G.device)
        sums = torch.zeros(buckets, G.shape[1], dtype=G.dtype, device=G.device).index_add_(0, bucket, G)
        sizes = torch.bincount(bucket, minlength=buckets).to(G.dtype)
        members = bucket[None, :] == torch.arange(buckets, device=G.device)[:, None]
        return sums.div_(sizes[:, None]), members  # in place: no second [n/s, d] matrix
