"""Random draws of a rule or pre-aggregation step that are a pure function of the round's submissions.

A torch.Generator seeded with hash(seed, a strided sample of G): fresh every round (G changes), the
same on a re-run, different across runs whose seeds differ (their submissions do), and untouched by
the extra calls an attack or the diagnostics make in a round (nothing is consumed from a shared
stream). Bucketing's shuffle, DnC's and SignGuard's coordinate subsets draw from it.
"""

from __future__ import annotations

import hashlib

import torch
from torch import Tensor


def fingerprint(G: Tensor, seed: int) -> int:
    """A 63-bit seed from `seed` and a strided sample of G (about 1024 columns)."""
    step = max(1, G.shape[1] // 1024)
    sample = G[:, ::step].detach().to("cpu", torch.float32).contiguous().numpy()
    h = hashlib.blake2b(sample.tobytes(), digest_size=8, key=str(seed).encode())
    return int.from_bytes(h.digest(), "little") >> 1


def round_generator(G: Tensor, seed: int) -> torch.Generator:
    """A CPU generator seeded from `seed` and the submissions G [n, d]."""
    return torch.Generator().manual_seed(fingerprint(G, seed))


def coordinate_subset(d: int, size: int, generator: torch.Generator) -> Tensor:
    """`size` distinct indices of range(d), sorted (all of them when size >= d, drawing nothing)."""
    if size >= d:
        return torch.arange(d)
    return torch.randperm(d, generator=generator)[:size].sort().values
