"""torch's CPU reductions over the rows of a matrix, redone in numpy in torch's own order: the same
float bits, faster.

Why: the committed runs (results/) must reproduce bit for bit, so a faster mean or standard deviation
may not add in another order. torch's kernels are slow here for reasons that have nothing to do with
the arithmetic: its column sum walks all n rows in steps of 32 columns (n memory streams), and its
std_mean updates one element at a time. numpy runs the very same additions a whole row at a time.

- row_sum / row_mean: torch's cascade sum of an outer reduction (aten/src/ATen/native/cpu/SumKernel.cpp,
  multi_row_sum): per column, rows are added in order into a first accumulator, which every 2^p rows
  (p = max(4, ceil(log2 n) // 4)) is added into the next level; at the end the levels are added
  into the first, and the result into the zero-filled output. torch.mean on a CPU is that sum divided
  by n. The last 64 to 127 columns take another path in torch (its vector tail: rows in groups of 4)
  and are left to torch itself, on a view that starts at the same column alignment.
- row_std_mean: torch's Welford update (WelfordOps in aten/src/ATen/native/SharedReduceOps.h) in
  float64, one row at a time: delta = x - mean, mean += delta / k, m2 += delta * (x - mean);
  var = m2 / max(k - correction, 0), std = sqrt(var), each cast to the input's dtype at the end.

Each falls back to torch where torch would take another order: not a CPU tensor, not a C-contiguous
float32/float64 matrix, autograd, or more than one torch thread (torch then splits the columns among
its threads, and its split moves the vector tails). tests/test_cpu_reductions.py checks the bits.

`reductions=numpy` (a run option, hashed; `use` sets it for the run) trades those bits for numpy's own
order, the one ByzFL and most numpy code get: per column the rows added one after the other (np.mean),
and the standard deviation in two passes (np.var: the squared deviations from that mean, added the same
way). Fewer passes than torch's order (one read of the matrix for the mean, a cached second for the
deviations, where torch's Welford takes six float64 operations a row), and the same bits whatever torch's
thread count; other float32 bits than torch's, so a run with it is a different run.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

#: a multiple of every CPU's column block (4 vectors of 8 or 16 float32, of 4 or 8 float64): the
#: columns before the last whole block or two are summed here, the rest by torch, aligned as in torch
_BLOCK = 64
#: columns per block of the column sum (wider matrices): its accumulators stay in the L2 cache
_SUM_COLUMNS = 131072
#: columns per Welford block: its four float64 arrays stay in the core's L2 cache
_WELFORD_COLUMNS = 4096
#: bytes of a two-pass block ([n, columns] of deviations): few numpy calls, the block still cached for
#: its second pass (1 MiB was the fastest of 32 KiB to 4 MiB at n=39, d=79,510 on the project's EPYC)
_TWO_PASS_BYTES = 1 << 20

#: the values of the run option `reductions`: torch's order (the default) or numpy's
ORDERS = ("torch", "numpy")
_order = "torch"
#: the dtypes reduced here (numpy's names for float32 and float64)
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def use(order: str) -> None:
    """Reduce in `order` (one of ORDERS) from now on in this process: each run sets its own."""
    global _order
    if order not in ORDERS:
        raise ValueError(f"unknown reduction order {order!r}; choose one of {ORDERS}")
    _order = order


def _cpu_matrix(X: Tensor) -> np.ndarray | None:
    """X's memory as a numpy array when X is a C-contiguous float32/float64 CPU matrix outside autograd,
    else None. One `numpy()` call and numpy's flags instead of six tensor attribute reads: each of
    those costs many times its warm cost once a round's [n, d] data has pushed torch's code out of the
    caches, a visible share of the calls under a millisecond (make bench)."""
    try:
        x = X.numpy()  # refused off the CPU, under autograd, and for dtypes numpy lacks
    except (TypeError, RuntimeError):
        return None
    if x.ndim == 2 and x.dtype in _FLOATS and x.flags.c_contiguous:
        return x
    return None


def _numpy_order(X: Tensor) -> np.ndarray | None:
    """X as a numpy array when it is reduced in numpy's order (chosen, and readable in place), else None."""
    if _order != "numpy":
        return None
    x = _cpu_matrix(X)
    return x if x is not None and len(x) > 0 else None


def _numpy_mean(x: np.ndarray) -> np.ndarray:
    """np.mean(x, axis=0), bit for bit: the rows added in order, then divided by their count."""
    out = np.add.reduce(x, axis=0)
    return np.divide(out, len(x), out=out)


def _serial_view(X: Tensor) -> np.ndarray | None:
    """X as a numpy array when torch reduces its rows on one CPU thread, in the order reproduced here."""
    return _cpu_matrix(X) if torch.get_num_threads() == 1 else None


def serial_cpu(X: Tensor) -> bool:
    """Whether torch reduces X's rows on one CPU thread, in the order reproduced here."""
    return _serial_view(X) is not None


def _ceil_log2(x: int) -> int:
    """utils::CeilLog2 of ATen: 1 for x <= 2."""
    return 1 if x <= 2 else (x - 1).bit_length()


def _cascade(X: np.ndarray, out: np.ndarray) -> None:
    """Column sums of X [n, c] into out [c], in the order of torch's multi_row_sum (module docstring).

    out is the first accumulator. A chunk's rows are added by one np.add.reduce, which starts from the
    chunk's first row where torch starts from +0.0: the two differ only when the chunk is all -0.0, and
    the next addition, always into an accumulator that started from +0.0, makes that +0.0 in both."""
    n = X.shape[0]
    power = max(4, _ceil_log2(n) // 4)
    step, mask = 1 << power, (1 << power) - 1
    above = np.zeros((3, X.shape[1]), X.dtype)  # the accumulators of levels 1 to 3
    top = 1  # the highest level that received a carry (level 1 is added at the end in any case)
    i = 0
    while i + step <= n:
        np.add.reduce(X[i : i + step], axis=0, out=out)
        i += step
        below = out
        for level in range(1, 4):
            np.add(above[level - 1], below, out=above[level - 1])
            top = max(top, level)
            if level > 1:
                below[...] = 0  # level 0 (out) is overwritten by the next chunk instead
            if i & (mask << (level * power)):
                break
            below = above[level - 1]
    if i < n:
        np.add.reduce(X[i:], axis=0, out=out)
    else:
        out[...] = 0
    # torch then adds the untouched levels (+0.0) and puts the sum into its zero-filled output: once
    # level 1 is added the sum is never -0.0, so these additions of +0.0 change no bit and are left out
    for level in range(1, top + 1):
        np.add(out, above[level - 1], out=out)


def row_sum(X: Tensor) -> Tensor:
    """X.sum(dim=0), bit for bit."""
    x = _numpy_order(X)
    if x is not None:
        return torch.from_numpy(np.add.reduce(x, axis=0))
    return _torch_order_sum(X, _serial_view(X))


def _torch_order_sum(X: Tensor, x: np.ndarray | None) -> Tensor:
    """X.sum(dim=0) in torch's order, given x = _serial_view(X)."""
    if x is None or x.shape[0] == 0 or x.shape[1] < 2 * _BLOCK:
        return X.sum(dim=0)
    d = x.shape[1]
    mine = _BLOCK * (d // _BLOCK - 1)  # leaves torch one whole block before its tail, as in its own call
    o = np.empty(d, x.dtype)
    with np.errstate(all="ignore"):
        # whole rows (numpy is fastest on contiguous chunks of rows), the tail too, redone by torch below
        for start in range(0, d, _SUM_COLUMNS):  # each column's additions are its own: any blocks do
            _cascade(x[:, start : start + _SUM_COLUMNS], o[start : start + _SUM_COLUMNS])
    out = torch.from_numpy(o)
    out[mine:] = X[:, mine:].sum(dim=0)
    return out


def row_mean(X: Tensor) -> Tensor:
    """X.mean(dim=0), bit for bit: torch's CPU mean is the sum divided by the row count."""
    x = _numpy_order(X)
    if x is not None:
        with np.errstate(all="ignore"):
            return torch.from_numpy(_numpy_mean(x))
    x = _serial_view(X)
    if x is None or len(x) == 0:
        return X.mean(dim=0)
    return _torch_order_sum(X, x).div_(len(x))


def row_std_mean(X: Tensor, correction: int) -> tuple[Tensor, Tensor]:
    """torch.std_mean(X, dim=0, correction=correction), bit for bit: (std, mean)."""
    x = _numpy_order(X)
    if x is not None and x.shape[1] > 0:
        return _two_pass_std_mean(x, correction)
    x = _serial_view(X)
    if x is None or 0 in x.shape:
        return torch.std_mean(X, dim=0, correction=correction)
    n, d = x.shape
    mean, std = np.empty(d, x.dtype), np.empty(d, x.dtype)
    width = min(d, _WELFORD_COLUMNS)
    mu, m2, delta, t = (np.empty(width) for _ in range(4))
    divisor = float(max(n - correction, 0))
    with np.errstate(all="ignore"):  # Inf and NaN rows give NaN, as in torch
        for start in range(0, d, width):
            stop = min(start + width, d)
            c = stop - start
            mu_, m2_, delta_, t_ = mu[:c], m2[:c], delta[:c], t[:c]
            mu_.fill(0.0)
            m2_.fill(0.0)
            for k in range(n):
                row = x[k, start:stop]
                np.subtract(row, mu_, out=delta_)
                np.divide(delta_, float(k + 1), out=t_)
                np.add(mu_, t_, out=mu_)
                np.subtract(row, mu_, out=t_)
                np.multiply(delta_, t_, out=t_)
                np.add(m2_, t_, out=m2_)
            mean[start:stop] = mu_
            np.divide(m2_, divisor, out=t_)
            np.sqrt(t_, out=t_)
            std[start:stop] = t_
    return torch.from_numpy(std), torch.from_numpy(mean)


def _two_pass_std_mean(x: np.ndarray, correction: int) -> tuple[Tensor, Tensor]:
    """(np.std(x, axis=0, ddof=correction), np.mean(x, axis=0)), bit for bit, without np.var's [n, d]
    temporary: block by block of columns, the block's mean, then its squared deviations added in row
    order (each column's additions are its own, so blocks change no bit)."""
    n, d = x.shape
    mean, std = np.empty(d, x.dtype), np.empty(d, x.dtype)
    width = max(_BLOCK, _TWO_PASS_BYTES // (n * x.itemsize))
    deviations = np.empty((n, min(width, d)), x.dtype)
    with np.errstate(all="ignore"):  # Inf and NaN rows give NaN, as in numpy
        for start in range(0, d, width):
            block, stop = x[:, start : start + width], min(start + width, d)
            dev = deviations[:, : stop - start]
            mu = np.add.reduce(block, axis=0, out=mean[start:stop])
            np.divide(mu, n, out=mu)
            np.subtract(block, mu, out=dev)
            np.multiply(dev, dev, out=dev)
            var = np.add.reduce(dev, axis=0, out=std[start:stop])
            np.divide(var, max(n - correction, 0), out=var)
            np.sqrt(var, out=var)
    return torch.from_numpy(std), torch.from_numpy(mean)
