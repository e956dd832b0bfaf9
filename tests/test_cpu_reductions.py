"""byzrun/cpu_reductions.py: the numpy column sum, mean and std_mean give torch's CPU bits exactly.

The committed runs reproduce only if every faster path returns the very float bits of the torch call it
replaces, so each case compares bits (NaN with NaN), over row counts that cross torch's 16-row chunks
and its 256-row level, column counts around its vector tails, both float dtypes and non-finite values.
The data spans six orders of magnitude, so a sum in another order gives other bits (checked below).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from byzrun import cpu_reductions
from byzrun.attacks import stats
from byzrun.cpu_reductions import row_mean, row_std_mean, row_sum, serial_cpu

ROWS = [
    *range(1, 35),
    47,
    48,
    49,
    51,
    63,
    64,
    65,
    100,
    127,
    128,
    129,
    255,
    256,
    257,
    300,
    4096,
    4097,
]  # 4096: torch's third level
COLUMNS = [1, 7, 8, 33, 127, 128, 129, 191, 192, 200, 333]
DTYPES = [torch.float32, torch.float64]


def spread(n: int, d: int, dtype, seed: int = 0) -> torch.Tensor:
    """Values of mixed sign over six orders of magnitude: the order of the additions shows in the bits."""
    g = torch.Generator().manual_seed(seed)
    scale = 10 ** (6 * torch.rand(n, d, generator=g, dtype=torch.float64) - 3)
    return (torch.randn(n, d, generator=g, dtype=torch.float64) * scale).to(dtype)


def with_special_values(X: torch.Tensor) -> torch.Tensor:
    """-0.0 everywhere in some columns and here and there in others; +-Inf and NaN in a few places."""
    X = X.clone()
    n, d = X.shape
    X[:, ::5] = -0.0  # columns of -0.0 only: torch's sum is +0.0 (it starts from +0.0)
    X[::3, 1::7] = -0.0
    if d > 3:
        X[n // 2, 2] = float("inf")
        X[0, 3] = float("-inf")
        X[-1, 3] = float("inf")  # inf - inf: NaN
        X[n // 3, d - 1] = float("nan")
    return X


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal dtypes and bits (the sign of zeros included), any NaN equal to any NaN."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    a, b = a.numpy(), b.numpy()
    nan = np.isnan(a)
    unsigned = f"u{a.itemsize}"
    return np.array_equal(nan, np.isnan(b)) and np.array_equal(a[~nan].view(unsigned), b[~nan].view(unsigned))


@pytest.mark.parametrize("dtype", DTYPES)
def test_row_sum_and_mean_are_torchs_bits_for_every_row_and_column_count(dtype):
    assert torch.get_num_threads() == 1  # the suite's setting (conftest), where the numpy path runs
    for n in ROWS:
        for d in COLUMNS:
            X = with_special_values(spread(n, d, dtype, seed=n * 1000 + d))
            assert serial_cpu(X)
            assert same_bits(row_sum(X), X.sum(dim=0)), (n, d)
            assert same_bits(row_mean(X), X.mean(dim=0)), (n, d)


@pytest.mark.parametrize("n", [4096, 4097])
def test_row_sum_is_torchs_bits_with_a_carry_into_torchs_third_level(n):
    X = with_special_values(spread(n, 192, torch.float32, seed=n))
    assert same_bits(row_sum(X), X.sum(dim=0)) and same_bits(row_mean(X), X.mean(dim=0))


@pytest.mark.parametrize("n", [12, 39, 51])
def test_row_mean_is_torchs_bits_at_the_benchmark_size_where_a_plain_sum_is_not(n, monkeypatch):
    X = spread(n, 79_510, torch.float32, seed=n)
    cascaded = []
    real = cpu_reductions._cascade
    monkeypatch.setattr(cpu_reductions, "_cascade", lambda A, out: cascaded.append(A.shape) or real(A, out))
    assert same_bits(row_mean(X), X.mean(dim=0))
    assert cascaded == [(n, 79_510)]  # numpy summed the rows whole; torch redid the last 150 columns
    plain = torch.from_numpy(np.add.reduce(X.numpy(), axis=0) / np.float32(n))  # rows added in order
    if n > 16:  # torch's chunks of 16 rows: the plain order rounds differently somewhere
        assert not same_bits(plain, X.mean(dim=0))


@pytest.mark.filterwarnings("ignore:std_mean")  # n=1 with correction=1: NaN, as torch says
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("correction", [0, 1])
def test_row_std_mean_is_torchs_welford_bit_for_bit(dtype, correction):
    for n in (1, 2, 3, 39, 100):
        for d in (1, 7, 33, 4097):  # 4097: across the Welford blocks of 4096 columns
            X = with_special_values(spread(n, d, dtype, seed=n + d))
            std, mean = torch.std_mean(X, dim=0, correction=correction)
            ours = row_std_mean(X, correction)
            assert same_bits(ours[0], std) and same_bits(ours[1], mean), (n, d)
            if n == 1 and correction == 0:
                assert (ours[0][torch.isfinite(X[0])] == 0).all()  # one sample: population std 0


def test_row_std_mean_at_the_benchmark_size_and_two_passes_differ():
    X = spread(39, 79_510, torch.float32)
    std, mean = torch.std_mean(X, dim=0, correction=1)
    ours = row_std_mean(X, 1)
    assert same_bits(ours[0], std) and same_bits(ours[1], mean)
    two_pass = torch.from_numpy(X.numpy().std(axis=0, ddof=1))
    assert not same_bits(two_pass, std)  # why the Welford order is kept
    mu, sigma = stats.mean_std(X, "unbiased")  # what ALIE and its family use
    assert same_bits(mu, mean) and same_bits(sigma, std)


def test_where_torch_takes_another_order_torch_itself_answers(monkeypatch):
    calls = []
    monkeypatch.setattr(cpu_reductions, "_cascade", lambda A, out: calls.append(A))
    X = spread(20, 300, torch.float32)
    strided = X.t().contiguous().t()  # the same values, column-major: torch reduces it otherwise
    assert not serial_cpu(strided) and same_bits(row_mean(strided), strided.mean(dim=0))
    assert not serial_cpu(X[:, ::2])
    assert not serial_cpu(X.to(torch.float16)) and not serial_cpu(X.clone().requires_grad_(True))
    meta = torch.empty(20, 300, device="meta")  # another device (CUDA alike): no numpy there
    assert not serial_cpu(meta) and row_mean(meta).device.type == "meta"
    assert row_std_mean(meta, 1)[0].device.type == "meta"
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)  # torch would split the columns among
    assert not serial_cpu(X) and same_bits(row_sum(X), X.sum(dim=0))  # its threads: its order, not ours
    assert calls == []


def test_row_sum_over_several_blocks_of_columns_is_torchs_bits():
    X = with_special_values(spread(20, cpu_reductions._SUM_COLUMNS + 200, torch.float32))
    assert same_bits(row_sum(X), X.sum(dim=0)) and same_bits(row_mean(X), X.mean(dim=0))


@pytest.fixture
def numpy_order():
    """reductions=numpy for one test, torch's order again after it."""
    cpu_reductions.use("numpy")
    yield
    cpu_reductions.use("torch")


@pytest.mark.filterwarnings("ignore:Degrees of freedom")  # n=1 with ddof=1: NaN, as numpy says
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("threads", [1, 2])
def test_numpy_order_gives_numpys_mean_and_std_bit_for_bit_whatever_torchs_threads(
    dtype, threads, numpy_order, monkeypatch
):
    """reductions=numpy: np.sum, np.mean and np.std(ddof) exactly, at any torch thread count (numpy
    reduces on one thread), across the two-pass blocks (a small block size forces many)."""
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    monkeypatch.setattr(cpu_reductions, "_TWO_PASS_BYTES", 4096)
    for n in (1, 2, 3, 16, 17, 39, 51, 300):
        for d in (1, 7, 64, 129, 1000):
            X = with_special_values(spread(n, d, dtype, seed=7 * n + d))
            x = X.numpy()
            with np.errstate(all="ignore"):
                assert same_bits(row_sum(X), torch.from_numpy(np.sum(x, axis=0))), (n, d)
                assert same_bits(row_mean(X), torch.from_numpy(np.mean(x, axis=0))), (n, d)
                for ddof in (0, 1):
                    std, mean = row_std_mean(X, ddof)
                    assert same_bits(std, torch.from_numpy(np.std(x, axis=0, ddof=ddof))), (n, d, ddof)
                    assert same_bits(mean, torch.from_numpy(np.mean(x, axis=0))), (n, d)


def test_numpy_order_differs_from_torchs_and_use_refuses_an_unknown_order(numpy_order):
    """The option changes results (so it is hashed): at the benchmark size the bits differ from torch's."""
    X = spread(39, 79_510, torch.float32)
    assert not same_bits(row_mean(X), X.mean(dim=0))
    assert not same_bits(row_std_mean(X, 1)[0], torch.std_mean(X, dim=0, correction=1)[0])
    with pytest.raises(ValueError, match="unknown reduction order 'fast'"):
        cpu_reductions.use("fast")
    cpu_reductions.use("torch")
    assert same_bits(row_mean(X), X.mean(dim=0))  # and back


def test_alie_in_numpy_order_sends_byzfls_vector_bit_for_bit(numpy_order):
    """ByzFL's ALittleIsEnough on a float32 numpy array is mean + tau * sqrt(var(ddof=1)) in numpy's
    order: byzrun's ALIE with reductions=numpy and ByzFL's options sends the same float32 bits."""
    byzfl = pytest.importorskip("byzfl")
    from byzrun.attacks import ALIE, AttackContext

    G = spread(51, 4_000, torch.float32, seed=3)
    attack = ALIE(factor=1.5, knowledge="omniscient", std="unbiased", direction="plus")
    attack.validate(n=51, m=12)
    ctx = AttackContext(honest=G[:39], own=G[39:], n=51, m=12, round=0, defense=None, model=None, lr=0.1)
    theirs = byzfl.ALittleIsEnough(tau=1.5)(G[:39].numpy().copy())
    assert same_bits(attack(ctx)[0].contiguous(), torch.from_numpy(theirs))
