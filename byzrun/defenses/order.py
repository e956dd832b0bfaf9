"""Coordinate-wise order statistics: every coordinate's n values sorted at once.

The median, trimmed means, MeaMed, Phocas and Bulyan's last step all need, per coordinate, a few
order statistics of n values. torch.sort / topk / kthvalue along the worker dimension are slow on
CPU for n ~ 50 (many short rows: 75-120 ms at n=51, d=79,510 on 2 cores). Columns are processed in
blocks that stay in cache, and each block is sorted whole:

- CPU: numpy's in-place sort along the worker axis. NumPy >= 2.0 sorts float32 with SIMD kernels
  (x86-simd-sort on AVX2/AVX-512, Highway's VQSort on AArch64): 7.1 ms for the median of n=51,
  d=79,510 on one core of a 2-core machine, against 16.4 ms for the network below on one thread and
  10 ms on two. With several torch threads and at most 32 rows the network is used (it runs on all
  threads, numpy on one).
- CUDA (and CPU otherwise): a bitonic sorting network over all d columns together: each
  compare-exchange is an elementwise min/max of two blocks of rows, vectorised over the
  coordinates, ~21 layers of streaming min/max over [64, d].

Both are exact sorts (values are only moved), so everything built on them is exact.

Non-finite values: NaN is replaced by +inf before sorting (min/max would spread NaN), so NaN rows
end at the top like +inf rows, and -inf rows at the bottom. A rule that keeps values near the
centre of each coordinate then never picks them while at most f rows are non-finite.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

# Columns per block: 64 x 16,384 float32 values (4 MiB) per buffer was the fastest for the network on a
# 2-core CPU. The block width also fixes how torch sums a block's rows (a trimmed mean's rounding), so
# both sorts use it. numpy gathers each column at the buffer's row stride, which must not be a power
# of two (cache aliasing made it 5x slower): its buffer rows are padded by _NUMPY_PAD values.
_CPU_BLOCK = 16_384
_NUMPY_PAD = 16
_CUDA_BLOCK = 1 << 20
#: dtypes numpy sorts with its SIMD kernels; others (bfloat16, float16) take the network on CPU too
_NUMPY_SORTS = (torch.float32, torch.float64)


def _bitonic_layers(N: int) -> list[tuple[int, int]]:
    """(k, j) for every layer of the bitonic network on N = 2^p rows: merge blocks of k, distance j."""
    layers = []
    k = 2
    while k <= N:
        j = k // 2
        while j >= 1:
            layers.append((k, j))
            j //= 2
        k *= 2
    return layers


def _sort_rows(S: Tensor, T: Tensor) -> Tensor:
    """Sort each column of S [N, c] (N a power of two) ascending; T is scratch. Returns the sorted one."""
    N, c = S.shape
    for k, j in _bitonic_layers(N):
        # Row index = ((block * 2 + dir) * (k/2j) + group) * 2j + half * j + r: blocks of k rows sort
        # up (dir 0) or down (dir 1) and compare row r of the lower half-group with row r of the upper.
        blocks, dirs = (N // (2 * k), 2) if k < N else (1, 1)
        V = S.view(blocks, dirs, k // (2 * j), 2, j, c)
        W = T.view(blocks, dirs, k // (2 * j), 2, j, c)
        a, b = V[:, 0, :, 0], V[:, 0, :, 1]
        torch.minimum(a, b, out=W[:, 0, :, 0])
        torch.maximum(a, b, out=W[:, 0, :, 1])
        if dirs == 2:
            a, b = V[:, 1, :, 0], V[:, 1, :, 1]
            torch.maximum(a, b, out=W[:, 1, :, 0])
            torch.minimum(a, b, out=W[:, 1, :, 1])
        S, T = T, S
    return S


def column_map(G: Tensor, fn: Callable[[Tensor], Tensor], rows: Tensor | None = None) -> Tensor:
    """out[j] = fn(sorted column j of G), computed block by block.

    fn gets S [n, c], each column of a block sorted ascending (NaN as +inf), and returns [c].
    rows: optional row indices; only those rows of G are sorted (Bulyan's selection set).
    S is a view of a scratch buffer: fn must not keep it.
    """
    n_all, d = G.shape
    n = n_all if rows is None else len(rows)
    N = 1 << max(1, (n - 1).bit_length())
    # numpy sorts on one thread; the network on all of torch's: with several threads the network wins
    # for up to 32 rows (Bulyan's 27 selected rows: 5.8 ms against numpy's 6.3 on 2 threads)
    use_numpy = (
        G.device.type == "cpu" and G.dtype in _NUMPY_SORTS and (N > 32 or torch.get_num_threads() == 1)
    )
    block = _CUDA_BLOCK if G.device.type == "cuda" else _CPU_BLOCK
    out = torch.empty(d, dtype=G.dtype, device=G.device)
    buffers: dict[int, tuple[Tensor, Tensor]] = {}
    for start in range(0, d, block):
        c = min(block, d - start)
        if c not in buffers and use_numpy:
            S = torch.empty(n, c + _NUMPY_PAD, dtype=G.dtype, device=G.device)[:, :c]
            buffers[c] = (S, S)
        elif c not in buffers:
            S = torch.empty(N, c, dtype=G.dtype, device=G.device)
            S[n:] = math.inf  # padding rows stay at the top
            buffers[c] = (S, torch.empty_like(S))
        S, T = buffers[c]
        part = G[:, start : start + c] if rows is None else G[rows, start : start + c]
        if use_numpy:
            # numpy sorts NaN last, where +inf also ends: a plain copy, and NaN made +inf after the sort
            # (only when the last row holds one), instead of a replacing copy of every block
            S[:n].copy_(part)
            A = S[:n].numpy()
            if n > 1:
                A.sort(axis=0)  # in place, on one thread: a sweep job's thread share holds
            if np.isnan(A[-1]).any():
                np.nan_to_num(A, copy=False, nan=math.inf, posinf=math.inf, neginf=-math.inf)
        else:
            torch.nan_to_num(part, nan=math.inf, posinf=math.inf, neginf=-math.inf, out=S[:n])
        if n > 1 and not use_numpy:
            S = _sort_rows(S, T)
            # _sort_rows may return the scratch buffer; the padding rows are +inf in both after a sort
        out[start : start + c] = fn(S[:n])
        if S is not buffers[c][0]:
            buffers[c] = (S, buffers[c][0])
    return out


def median_sorted(S: Tensor, even: str = "average") -> Tensor:
    """Median of each column of sorted S [n, c]; even n: average of the two middle values, or the lower."""
    n = S.shape[0]
    if n % 2 == 1 or even == "lower":
        return S[(n - 1) // 2].clone()
    # 0.5a + 0.5b: the same rounding as (a+b)/2 but cannot overflow
    return 0.5 * S[n // 2 - 1] + 0.5 * S[n // 2]


def trimmed_sorted(S: Tensor, f: int) -> Tensor:
    """Mean of each column of sorted S [n, c] without its f smallest and f largest values.

    Outside the bound (n - 2f < 1) the middle value(s) are kept.
    """
    n = S.shape[0]
    f = max(0, min(f, (n - 1) // 2))
    return S[f : n - f].mean(0)


def nearest_mean_sorted(S: Tensor, center: Tensor, k: int) -> Tensor:
    """Mean of the k values of each column of sorted S [n, c] closest to center [c].

    The k values closest to a point are a window of k consecutive sorted values. Its start is the
    number of windows that should slide up: window s slides when the value it would gain,
    S[s+k], is strictly closer to the center than the value it would lose, S[s]. That condition
    is monotone in s, so counting it over s gives the start. Ties go to the smaller value.
    """
    n = S.shape[0]
    k = max(1, min(k, n))
    if k == n:
        return S.mean(0)
    start = ((S[k:] - center) < (center - S[: n - k])).sum(0)
    window = start + torch.arange(k, device=S.device)[:, None]
    return S.gather(0, window).mean(0)


def median(G: Tensor, even: str = "average") -> Tensor:
    """Coordinate-wise median of G [n, d] (NaN counted as +inf)."""
    return column_map(G, lambda S: median_sorted(S, even))
