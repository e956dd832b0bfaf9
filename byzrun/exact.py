"""Exact numbers: accuracies as correct/total in float64, and the fingerprint of a dataset."""

from __future__ import annotations

import hashlib

import numpy as np
from torch import Tensor


def percent(hits: Tensor) -> float:
    """The share of True in `hits` in percent, as the correctly rounded float64 of 100*correct/total
    (9,740 of 10,000 gives exactly 97.4, not float32's 97.39999771118164); NaN when empty."""
    total = hits.numel()
    return 100.0 * int(hits.sum().item()) / total if total else float("nan")


def fingerprint(name: str, *arrays: np.ndarray) -> str:
    """A short hash of a dataset's content (every array's shape and bytes, in order): runs on two
    different copies of a dataset get different fingerprints."""
    digest = hashlib.sha1(name.encode())
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()[:12]
