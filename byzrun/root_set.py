"""The server's clean root set, for a rule that compares the submissions with the server's own gradient
(FLTrust, Cao et al. NDSS 2021: Defense.root_size > 0).

The root set is `root_size` samples of the training set, drawn once per run from the run's seed. The
paper samples it from the clients' training data; here the workers keep sampling from the whole
training set, root samples included. Every round the server computes its gradient g0 at the current
parameters as an honest worker does (one gradient step: the paper's ModelUpdate with one local
iteration), on a batch of batch_size root samples drawn afresh (the whole root set when root_size <=
batch_size), with the workers' weight decay and clipping but no momentum and no augmentation. Its
draws come from a generator of its own, so the workers' batches are the same as without it.
"""

from __future__ import annotations

import hashlib

import torch
from torch import Tensor

from byzrun.data import Data
from byzrun.errors import ConfigError
from byzrun.flat_model import FlatModel


def _seed(seed: int) -> int:
    """A generator seed of the root set's own, derived from the run's seed."""
    digest = hashlib.blake2b(f"root set {seed}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class RootSet:
    def __init__(self, data: Data, size: int, seed: int, batch_size: int):
        total = len(data.train_y)
        if size > total:
            raise ConfigError(
                f"defense.root_size={size} exceeds the {total} training samples; lower defense.root_size"
            )
        self.data = data
        self.generator = torch.Generator().manual_seed(_seed(seed))
        self.indices = torch.randperm(total, generator=self.generator)[:size].to(data.train_y.device)
        self.batch_size = min(batch_size, size)

    def batch(self) -> Tensor:
        """This round's root samples (indices into the training set)."""
        if self.batch_size == len(self.indices):
            return self.indices
        pick = torch.randperm(len(self.indices), generator=self.generator)[: self.batch_size]
        return self.indices[pick.to(self.indices.device)]

    def gradient(self, model: FlatModel, weight_decay: float, grad_clip: float | None) -> Tensor:
        """g0 [d] at the model's current parameters."""
        idx = self.batch()
        g0 = model.worker_grads(self.data.train_x[idx][None], self.data.train_y[idx][None])[0][0]
        if weight_decay:
            g0.add_(model.theta, alpha=weight_decay)
        if grad_clip is not None:
            g0.mul_((grad_clip / g0.norm().clamp_min(1e-12)).clamp(max=1.0))
        return g0
