"""MDA, SMEA, MoNNA, CAF and the clipping steps (static, ARC) against float64 references written from
their papers: brute force over every subset where the rule is a search, plain loops elsewhere. Random
inputs from n=3 to 51, ties, duplicated rows, one huge outlier, non-finite rows up to the bound; the
exhaustive rules' subset budget and the rules' own checks before training.
"""

from __future__ import annotations

import itertools
import math
import re
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
import torch

from byzrun import defenses
from byzrun.defenses.caf import caf_weights
from byzrun.defenses.distances import centered_gram
from byzrun.defenses.subsets import largest_f, subset_count
from byzrun.errors import BoundError, ConfigError
from byzrun.preaggregation.arc import AdaptiveRobustClipping, clipped_count
from byzrun.preaggregation.clipping import Clipping
from tests.test_defenses import piped, rows

MDA = defenses.MinimumDiameterAveraging
SMEA = defenses.SmallestMaxEigenvalueAveraging
MONNA = defenses.NearestNeighbourAveraging
CAF = defenses.CovarianceFilter

# ------------------------------------------------------------------------------------- references
# numpy float64, written from the papers' formulas; a subset is a sorted tuple of row indices and the
# searches keep the first best one of itertools.combinations (lexicographic order), strict "<".


def finite(A: np.ndarray) -> np.ndarray:
    return np.isfinite(A).all(1)


def ref_mda_subset(A: np.ndarray, f: int) -> tuple[int, ...]:
    """argmin over |S| = n-f of max_{i,j in S} ||x_i - x_j|| (El Mhamdi et al. 2020)."""
    n = len(A)
    dist = np.linalg.norm(A[:, None, :] - A[None, :, :], axis=-1)  # each pair's difference, directly
    best, best_value = None, math.inf
    for S in itertools.combinations(range(n), n - f):
        if not finite(A[list(S)]).all():
            continue  # infinitely wide
        diameter = dist[np.ix_(S, S)].max()
        if diameter < best_value:
            best, best_value = S, diameter
    return best


def ref_smea_subset(A: np.ndarray, f: int) -> tuple[int, ...]:
    """argmin over |S| = n-f of lambda_max((1/|S|) sum_{i in S} (x_i - xbar_S)(x_i - xbar_S)^T)."""
    n = len(A)
    best, best_value = None, math.inf
    for S in itertools.combinations(range(n), n - f):
        X = A[list(S)]
        if not finite(X).all():
            continue
        C = (X - X.mean(0)).T @ (X - X.mean(0)) / len(S)
        top = np.linalg.eigvalsh(C)[-1]
        if top < best_value:
            best, best_value = S, top
    return best


def ref_monna(A: np.ndarray, f: int, pivot: int = 0) -> np.ndarray:
    """Mean of the n-f rows nearest the pivot's, itself included (ties: lower index)."""
    n = len(A)
    order = sorted(range(n), key=lambda j: (np.linalg.norm(A[j] - A[pivot]), j))
    return A[order[: n - f]].mean(0)


def ref_caf(A: np.ndarray, f: int, tau_max_over: str = "weighted") -> np.ndarray:
    """CAF (Allouah et al. 2025) with the d x d covariance and its exact eigenpair.

    tau_max_over: "weighted" (max over rows with c_j > 0, byzrun's) | "all" (every row, ByzFL's).
    """
    n = len(A)
    c = finite(A).astype(float)
    A = np.where(finite(A)[:, None], A, 0.0)
    if f == 0:
        return A.mean(0)
    best, best_value = None, math.inf
    while c.sum() > n - 2 * f:
        mu = (c[:, None] * A).sum(0) / c.sum()
        D = A - mu
        sigma = (c[:, None, None] * D[:, :, None] * D[:, None, :]).sum(0) / c.sum()
        values, vectors = np.linalg.eigh(sigma)
        if values[-1] < best_value:
            best, best_value = mu, values[-1]
        tau = (D @ vectors[:, -1]) ** 2
        tau_max = tau[c > 0].max() if tau_max_over == "weighted" else tau.max()
        if tau_max <= 0:
            break
        c = np.where(c > 0, c * (1 - tau / tau_max), 0.0)
    return best


def ref_clip(A: np.ndarray, c: float) -> np.ndarray:
    out = A.copy()
    for i, row in enumerate(A):
        norm = np.linalg.norm(row)
        if np.isfinite(norm) and norm > c:
            out[i] = row * (c / norm)
    return out


def ref_arc(A: np.ndarray, f: int) -> np.ndarray:
    """Clip the floor(2 (f/n) (n-f)) largest-norm rows to the largest remaining norm (Allouah et al. 2024)."""
    n = len(A)
    k = math.floor(Fraction(2 * f, n) * (n - f))
    if k == 0:
        return A.copy()
    norms = [np.linalg.norm(row) if finite(row[None])[0] else math.inf for row in A]
    return ref_clip(A, sorted(norms)[n - k - 1])


def as_np(G: torch.Tensor) -> np.ndarray:
    return G.double().numpy()


def random_A(n: int, d: int, seed: int) -> np.ndarray:
    g = np.random.default_rng(seed)
    A = g.standard_normal((n, d))
    A[-1] *= 5  # a far row, so the searches have something to leave out
    return A


def subset_of(rule, G: torch.Tensor, f: int) -> tuple[int, ...]:
    return tuple(sorted(rule.select(G, f).tolist()))


# ------------------------------------------------------------------------------ hand-computed cases


def test_mda_and_smea_hand_computed_with_ties():
    # one coordinate 0, 1, 2, 3, 4, f = 1: {0,1,2,3} and {1,2,3,4} tie (diameter 3, variance 1.25);
    # the lexicographically first wins
    G = rows([0.0], [1.0], [2.0], [3.0], [4.0])
    assert subset_of(MDA(), G, 1) == (0, 1, 2, 3) == ref_mda_subset(as_np(G), 1)
    assert subset_of(SMEA(), G, 1) == (0, 1, 2, 3) == ref_smea_subset(as_np(G), 1)
    assert MDA()(G, 1).item() == 1.5
    # 0, 1, 2, 10, 11: MDA keeps the tightest three {0,1,2}; SMEA too (variance 2/3 against 1/6 * ...)
    G = rows([0.0], [1.0], [2.0], [10.0], [10.5])
    assert subset_of(MDA(), G, 2) == (0, 1, 2)
    assert subset_of(MDA(), G, 3) == (3, 4)  # the closest pair
    assert subset_of(SMEA(), G, 3) == (3, 4)


def test_monna_hand_computed_ties_go_to_the_lower_index():
    # pivot 0 at 0; rows 1 and 2 at distance 1 both, row 3 at 5: n-f = 2 keeps the pivot and row 1
    G = rows([0.0, 0.0], [1.0, 0.0], [0.0, -1.0], [3.0, 4.0])
    assert MONNA()(G, 2).tolist() == [0.5, 0.0]
    assert MONNA(pivot=3)(G, 2).tolist() == [2.0, 2.0]  # row 3 and its nearest, row 1 (dist^2 18 < 26)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("block_bytes", [1, 4096, 1 << 20])
def test_monna_distances_in_blocks_of_rows_are_the_one_matrix_bits(monkeypatch, dtype, block_bytes):
    """On a CPU MoNNA's distances to the pivot are taken a few rows at a time (no second [n, d] matrix):
    byte for byte those of one vector_norm over G - G[pivot], NaN, infinities and -0.0 included."""
    from byzrun.defenses import monna

    monkeypatch.setattr(monna, "_BLOCK_BYTES", block_bytes)
    g = torch.Generator().manual_seed(3)
    for n, d in [(3, 5), (7, 1000), (51, 20011)]:
        scale = torch.rand(n, 1, generator=g, dtype=torch.float64) * 10
        G = (torch.randn(n, d, generator=g, dtype=torch.float64) * scale).to(dtype)
        G[1, :3] = torch.tensor([math.nan, math.inf, -0.0], dtype=dtype)
        G[2] = G[0]
        for pivot in (0, n - 1):
            ours = monna.distances_to(G, pivot)
            assert ours.numpy().tobytes() == torch.linalg.vector_norm(G - G[pivot], dim=1).numpy().tobytes()


def test_caf_hand_computed_one_coordinate():
    # 0, 1, 2, 9 with f = 1: step 1 mean 3, variance 12.5, tau = 9, 4, 1, 36 -> row 3 weight 0 and the
    # others 1 - tau/36 = 3/4, 8/9, 35/36: total 2.61 > n - 2f = 2, so a step 2 with mu_c =
    # (0*27 + 1*32 + 2*35)/94 (weights in 36ths) and a smaller variance: its mu_c is returned
    G = rows([0.0], [1.0], [2.0], [9.0])
    assert CAF()(G, 1).item() == pytest.approx((32 + 70) / 94)
    assert CAF()(G, 1).item() == pytest.approx(ref_caf(as_np(G), 1)[0], rel=1e-12)


def test_clipping_and_arc_hand_computed():
    G = rows([3.0, 4.0], [0.6, 0.8], [0.0, 2.0], [6.0, 8.0], [1.0, 0.0])  # norms 5, 1, 2, 10, 1
    clipped = rows([1.2, 1.6], [0.6, 0.8], [0.0, 2.0], [1.2, 1.6], [1.0, 0.0])
    assert torch.allclose(Clipping(c=2.0)(G, 0), clipped, rtol=1e-15, atol=0)
    # n = 5, f = 1: k = floor(2 * 1/5 * 4) = 1: the norm-10 row is clipped to the next norm, 5
    assert AdaptiveRobustClipping()(G, 1).tolist() == [[3, 4], [0.6, 0.8], [0, 2], [3, 4], [1, 0]]
    # f = 2: k = floor(2 * 2/5 * 3) = 2: rows of norm 10 and 5 are clipped to 2
    assert torch.allclose(AdaptiveRobustClipping()(G, 2), clipped, rtol=1e-15, atol=0)


def test_ties_in_norm_and_in_tau():
    # ARC, n = 5, f = 2: k = 2 of the norms 1, 2, 2, 2, 3 are clipped to the largest other norm, 2:
    # which of the tied rows counts as clipped does not matter
    G = rows([1.0, 0.0], [0.0, 2.0], [2.0, 0.0], [0.0, -2.0], [3.0, 0.0])
    expected = rows([1.0, 0.0], [0.0, 2.0], [2.0, 0.0], [0.0, -2.0], [2.0, 0.0])
    assert torch.equal(AdaptiveRobustClipping()(G, 2), expected)
    assert np.allclose(ref_arc(as_np(G), 2), expected.numpy(), rtol=1e-15, atol=0)
    # CAF on -3..3 with f = 2: the two ends tie for the largest tau and both drop to weight 0 (up to
    # the Gram's rounding); the second step's smaller variance makes its weights the answer
    G = rows(*([float(v)] for v in range(-3, 4)))
    w = caf_weights(centered_gram(G), 2)
    assert float(w[0]) < 1e-15 and float(w[6]) < 1e-15 and torch.allclose(w, w.flip(0), atol=1e-15)
    assert abs(CAF()(G, 2).item()) < 1e-15 and abs(ref_caf(as_np(G), 2)[0]) < 1e-15


def test_arc_count_is_the_exact_floor():
    # integer arithmetic: floor(2 (f/n) (n-f)) exactly, for every n up to 60 and every f < n
    for n in range(1, 61):
        for f in range(n):
            assert clipped_count(n, f) == math.floor(Fraction(2 * f * (n - f), n)), (n, f)


# -------------------------------------------------------------------- brute-force agreement

# (n, d, f): the exhaustive rules at small n and one n=51 with few subsets
SEARCH_SHAPES = [(3, 2, 1), (5, 3, 2), (7, 4, 1), (8, 3, 3), (9, 5, 4), (10, 6, 2), (12, 4, 5), (51, 3, 2)]
SHAPES = [(3, 2, 1), (4, 1, 1), (7, 4, 3), (11, 8, 5), (20, 6, 4), (33, 5, 16), (51, 7, 12), (51, 3, 25)]


@pytest.mark.parametrize("n, d, f", SEARCH_SHAPES)
def test_mda_and_smea_agree_with_brute_force(n, d, f):
    A = random_A(n, d, seed=n * d + f)
    G = torch.from_numpy(A)
    expected = ref_mda_subset(A, f)
    assert subset_of(MDA(), G, f) == expected
    assert np.allclose(MDA()(G, f).numpy(), A[list(expected)].mean(0), rtol=1e-12, atol=0)
    if n <= 12 or f <= 2:
        expected = ref_smea_subset(A, f)
        assert subset_of(SMEA(), G, f) == expected
        assert np.allclose(SMEA()(G, f).numpy(), A[list(expected)].mean(0), rtol=1e-12, atol=0)
    # float32 inputs: the same subsets (the scores are far apart on these inputs)
    G32 = G.float()
    assert subset_of(MDA(), G32, f) == ref_mda_subset(as_np(G32), f)
    if n <= 12:
        assert subset_of(SMEA(), G32, f) == ref_smea_subset(as_np(G32), f)


@pytest.mark.parametrize("n, d, f", SHAPES)
def test_monna_caf_and_clipping_agree_with_references(n, d, f):
    A = random_A(n, d, seed=3 * n + d)
    G = torch.from_numpy(A)
    for pivot in {0, n - f - 1}:
        assert np.allclose(MONNA(pivot=pivot)(G, f).numpy(), ref_monna(A, f, pivot), rtol=1e-12, atol=1e-15)
        A32 = as_np(G.float())
        assert np.allclose(MONNA(pivot=pivot)(G.float(), f).numpy(), ref_monna(A32, f, pivot), atol=1e-6)
    # filtering down to a total weight of n-2f = 1 ends on weights near 0, which amplify rounding
    tol = 1e-7 if n - 2 * f == 1 else 1e-12
    assert np.allclose(CAF()(G, f).numpy(), ref_caf(A, f), rtol=tol, atol=0)
    if n - 2 * f > 1:  # float32 inputs: the Gram in float32, the filter in float64
        assert np.allclose(CAF()(G.float(), f).double().numpy(), ref_caf(A.astype(np.float32), f), atol=1e-5)
    assert np.allclose(AdaptiveRobustClipping()(G, f).numpy(), ref_arc(A, f), rtol=1e-14, atol=0)
    assert np.allclose(Clipping(c=1.5)(G, f).numpy(), ref_clip(A, 1.5), rtol=1e-14, atol=0)


@pytest.mark.parametrize("rule", [MDA, SMEA])
def test_duplicated_rows_tie_exactly_and_go_to_the_lowest_indices(rule):
    A = random_A(8, 4, seed=1)
    A[3] = A[1]
    A[5] = A[1]  # three copies: subsets that swap copies tie exactly
    A[6] = A[2]
    G = torch.from_numpy(A)
    ref = ref_mda_subset if rule is MDA else ref_smea_subset
    for f in (1, 2, 3):
        assert subset_of(rule(), G, f) == ref(A, f), f


def test_duplicated_rows_monna_caf_arc():
    A = random_A(9, 3, seed=2)
    A[4:7] = A[0]
    G = torch.from_numpy(A)
    assert np.allclose(MONNA(pivot=1)(G, 4).numpy(), ref_monna(A, 4, 1), rtol=1e-12)
    assert np.allclose(CAF()(G, 4).numpy(), ref_caf(A, 4), rtol=1e-9)
    assert np.allclose(AdaptiveRobustClipping()(G, 4).numpy(), ref_arc(A, 4), rtol=1e-14, atol=0)
    assert np.allclose(Clipping(c=0.5)(G, 4).numpy(), ref_clip(A, 0.5), rtol=1e-14, atol=0)


def test_one_huge_outlier_is_left_out():
    n, f = 9, 2
    A = random_A(n, 4, seed=3)
    A[4] = 1e30  # 1e30 times the others' norms
    G = torch.from_numpy(A)
    for rule, ref in ((MDA(), ref_mda_subset), (SMEA(), ref_smea_subset)):
        picked = subset_of(rule, G, f)
        assert 4 not in picked and picked == ref(A, f)
    assert 4 not in MONNA().select(G, f).tolist()
    caf = CAF()(G, f).numpy()
    assert np.abs(caf).max() < 10 and np.allclose(caf, ref_caf(A, f), rtol=1e-9)
    arc = AdaptiveRobustClipping()(G, f)  # k = 3: the outlier is clipped to the 4th largest norm
    assert np.array_equal(arc.numpy(), ref_arc(A, f)) and float(arc.norm(dim=1).max()) < 50
    clipped = Clipping(c=1.0)(G, f)  # the outlier scaled to norm 1, along itself: (0.5, 0.5, 0.5, 0.5)
    assert torch.allclose(clipped[4], torch.full((4,), 0.5, dtype=torch.float64), rtol=1e-15, atol=0)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("n", [3, 7, 12])
def test_non_finite_rows_up_to_the_bound(n, value):
    f = (n - 1) // 2
    A = random_A(n, 3, seed=n)
    A[n - f :] = value  # f whole rows
    if f > 1:
        A[1, 2] = value  # and one bad coordinate in another: f bad rows in all
        A[n - f] = 0.5
    G = torch.from_numpy(A)
    bad = ~finite(A)
    good = list(np.flatnonzero(~bad))
    for rule in (MDA(), SMEA()):
        assert subset_of(rule, G, f) == tuple(good[: n - f])
        assert bool(torch.isfinite(rule(G, f)).all())
    assert np.allclose(MONNA()(G, f).numpy(), ref_monna(np.where(bad[:, None], 1e100, A), f), rtol=1e-12)
    caf = CAF()(G, f)
    assert bool(torch.isfinite(caf).all()) and np.allclose(caf.numpy(), ref_caf(A, f), rtol=1e-9)
    for step in (AdaptiveRobustClipping(), Clipping()):
        out = step(G, f)
        assert torch.equal(torch.isfinite(out).all(1), torch.from_numpy(~bad))
        assert bool(torch.isfinite(piped(defenses.Median(), [step.name])(G, f)).all())
    assert np.allclose(
        AdaptiveRobustClipping()(G, f)[~torch.from_numpy(bad)].numpy(),
        ref_arc(A, f)[~bad],
        rtol=1e-14,
        atol=0,
    )


@pytest.mark.parametrize("rule", [MDA(), SMEA(), MONNA(), CAF()], ids=lambda r: r.name)
def test_permutation_invariance(rule):
    A = random_A(9, 5, seed=4)
    G = torch.from_numpy(A)
    perm = torch.randperm(9, generator=torch.Generator().manual_seed(0))
    if rule.name == "monna":  # the pivot is a row: keep it first
        perm = torch.cat([torch.tensor([0]), perm[perm != 0]])
    assert torch.allclose(rule(G[perm], 3), rule(G, 3), rtol=1e-12)


def test_output_shape_dtype():
    for dtype in (torch.float32, torch.float64):
        G = torch.randn(10, 6, dtype=dtype)
        for rule in (MDA(), SMEA(), MONNA(), CAF()):
            out = rule(G, 3)
            assert out.shape == (6,) and out.dtype == dtype, rule.name
        for step in (AdaptiveRobustClipping(), Clipping()):
            out, members = step.apply(G, 3)
            assert (
                out.shape == G.shape
                and out.dtype == dtype
                and torch.equal(members, torch.eye(10, dtype=bool))
            )


# ------------------------------------------------------------------------------- bounds and budgets


@pytest.mark.parametrize("rule", [MDA(), SMEA(), MONNA(), CAF()], ids=lambda r: r.name)
def test_new_rules_declare_an_honest_majority(rule):
    for n in (3, 10, 11, 51):
        assert rule.bound.max_f(n) == math.ceil(n / 2) - 1
    assert AdaptiveRobustClipping.bound.max_f(51) == 25 and Clipping.bound.max_f(51) == 50


def test_subset_counts_and_the_largest_f_that_fits():
    assert subset_count(51, 4) == math.comb(51, 47) == 249_900
    assert largest_f(51, 10**6) == 4 and largest_f(51, 10**4) == 2 and largest_f(7, 10**6) == 3
    for n in range(3, 40):
        f = largest_f(n, 5000)
        assert math.comb(n, f) <= 5000 and (f == (n - 1) // 2 or math.comb(n, f + 1) > 5000)


def test_exhaustive_rules_refuse_beyond_their_budget_before_training(digits_cfg):
    from byzrun.train import prepare

    message = re.escape("defense mda with n=51, f=12 would examine C(51,39)=158,753,389,900 subsets")
    with pytest.raises(BoundError, match=message + ".*the largest f that fits at n=51 is 4"):
        piped(MDA()).check(51, 12)
    piped(MDA()).check(51, 4)
    with pytest.raises(BoundError, match="the largest f that fits at n=51 is 2"):
        piped(SMEA()).check(51, 3)
    piped(SMEA(max_subsets=30_000)).check(51, 3)
    # allow_out_of_bound lets f pass the bound, never the budget
    with pytest.raises(BoundError, match="defense.max_subsets=1,000,000"), pytest.warns(UserWarning):
        piped(MDA(), allow_out_of_bound=True).check(51, 30)
    with pytest.raises(BoundError, match=r"C\(11,7\)=330 subsets, more than defense.max_subsets=100"):
        prepare(digits_cfg("defense=mda", "defense.max_subsets=100", "m=4", "attack=alie"))


def test_the_rules_own_check_sees_the_vectors_after_pre_aggregation():
    # bucketing by 2 leaves 26 vectors: C(26, 12) = 9,657,700 subsets
    with pytest.raises(BoundError, match=r"n=26, f=12 would examine C\(26,14\)=9,657,700 subsets"):
        piped(MDA(), [{"name": "bucketing", "s": 2}]).check(51, 12)
    piped(MDA(), [{"name": "bucketing", "s": 17}]).check(51, 1)  # 3 buckets, 3 subsets


def test_monna_refuses_a_byzantine_pivot():
    piped(MONNA(pivot=38)).check(51, 12)
    with pytest.raises(ConfigError, match=r"defense.pivot=39 is not an honest worker .* below 39"):
        piped(MONNA(pivot=39)).check(51, 12)
    with pytest.raises(ConfigError, match="defense.pivot must be an integer >= 0"):
        MONNA(pivot=-1)


def test_bad_options_are_one_line_errors():
    with pytest.raises(ConfigError, match="max_subsets must be >= 1"):
        MDA(max_subsets=0)
    with pytest.raises(ConfigError, match="clipping needs c > 0"):
        Clipping(c=0.0)


def test_pre_steps_compose_from_the_command_line():
    from byzrun.build import build_defense
    from tests.conftest import make_cfg

    rule = build_defense(make_cfg("defense=caf", "defense.pre=[arc,{name:clipping,c:3.0}]").defense)
    assert rule.name == "arc+clipping+caf" and rule.steps[1].c == 3.0
    G = torch.randn(11, 5, dtype=torch.float64) * 4
    expected = CAF()(Clipping(c=3.0)(AdaptiveRobustClipping()(G, 3), 3), 3)
    assert torch.equal(rule(G, 3), expected)


def test_f_zero_keeps_every_row():
    G = torch.randn(7, 4, dtype=torch.float64)
    for rule in (MDA(), SMEA(), CAF(), MONNA(pivot=3)):
        assert torch.allclose(rule(G, 0), G.mean(0), rtol=1e-14), rule.name
    for step in (AdaptiveRobustClipping(), Clipping(c=1e9)):
        assert torch.equal(step(G, 0), G)


def test_clip_rows_reads_finiteness_from_the_norms_and_falls_back_on_a_non_finite_norm():
    """The norms tell finite rows apart (one pass over G fewer); a non-finite norm, from a NaN/Inf row
    or from a finite row whose float32 norm overflows, sends every row through the full check: the same
    result as checking every row, bit for bit."""
    from byzrun.defenses.distances import finite_rows
    from byzrun.preaggregation.clipping import clip_rows

    def checked_every_row(G, threshold):
        norms = torch.linalg.vector_norm(G, dim=1)
        scale = torch.where(finite_rows(G) & (norms > threshold), (threshold / norms).clamp(max=1.0), 1.0)
        return G * scale[:, None]

    g = torch.Generator().manual_seed(0)
    G = torch.randn(6, 50, generator=g)
    for special in (None, math.nan, math.inf, 1e30):  # 1e30: finite, its squared norm overflows
        H = G.clone()
        if special is not None:
            H[2] = special
        assert torch.equal(clip_rows(H, 2.0).nan_to_num(7.0), checked_every_row(H, 2.0).nan_to_num(7.0))
    H = G.clone()
    H[2] = 1e30
    assert torch.equal(clip_rows(H, 2.0)[2], torch.zeros(50))  # clipped: scale 2/inf = 0, as before


# --------------------------------------------------------------- pre-aggregation writing into G


def _with_awkward_rows(n: int = 12, d: int = 300) -> torch.Tensor:
    """Rows above and below the clipping thresholds, a NaN row, an Inf row and a zero row."""
    g = torch.Generator().manual_seed(1)
    G = torch.randn(n, d, generator=g) * (10 ** torch.linspace(-2, 2, n))[:, None]
    G[3], G[7], G[9] = math.nan, math.inf, 0.0
    return G


@pytest.mark.parametrize("step", [Clipping(c=2.0), Clipping(c=1e9), AdaptiveRobustClipping()])
def test_a_step_writes_into_g_only_when_the_caller_gives_it_up_and_with_the_same_bits(step):
    """The contract of byzrun/preaggregation/base.py: without overwrite the caller's G is left as it was;
    with overwrite=True the step returns G itself, holding exactly the bits of the new matrix."""
    G = _with_awkward_rows()
    kept = G.clone()
    new = step(G, 3)
    assert torch.equal(G.nan_to_num(7.0), kept.nan_to_num(7.0)) and new.data_ptr() != G.data_ptr()
    given = G.clone()
    out = step(given, 3, overwrite=True)
    assert out.data_ptr() == given.data_ptr()
    assert torch.equal(out.view(torch.int32), new.view(torch.int32))  # bits, NaN payloads and -0.0 too


def test_every_step_leaves_the_callers_matrix_as_it_was_by_default():
    from byzrun.build import build_steps

    G = _with_awkward_rows()
    kept = G.clone()
    for step in build_steps(["nnm", "bucketing", "clipping", "arc"]):
        step(G, 3)
        assert torch.equal(G.nan_to_num(7.0), kept.nan_to_num(7.0)), step.name


def test_the_pipeline_lets_only_its_first_step_write_into_the_callers_matrix(monkeypatch):
    seen = []
    real = Clipping.apply

    def spy(self, G, f, overwrite=False):
        seen.append(overwrite)
        return real(self, G, f, overwrite)

    monkeypatch.setattr(Clipping, "apply", spy)
    pipeline = piped(defenses.Mean(), pre=["clipping", "clipping"])
    G = _with_awkward_rows()
    fresh = pipeline(G.clone(), 3, overwrite=True)
    assert torch.equal(fresh.nan_to_num(7.0), pipeline(G, 3).nan_to_num(7.0))
    assert seen == [True, False, False, False]


def test_a_run_that_clips_in_place_between_statistics_rounds_gives_the_same_model(digits_cfg):
    """Rounds without statistics let ARC write into the round's matrix; with statistics every round it
    never does: the evaluations agree bit for bit."""
    from byzrun.train import prepare, train

    def evaluations(every):
        cfg = digits_cfg(
            "defense.pre=[arc]", "defense=median", "attack=ipm", "m=2", f"diagnostics.every={every}"
        )
        with pytest.MonkeyPatch.context() as patch:
            seen = []
            real = AdaptiveRobustClipping.apply
            patch.setattr(
                AdaptiveRobustClipping,
                "apply",
                lambda self, G, f, overwrite=False: seen.append(overwrite) or real(self, G, f, overwrite),
            )
            setup = prepare(cfg)
            train(setup)
        metrics = pd.read_csv(setup.out / "metrics.csv")
        return metrics.dropna(subset=["test_acc"])[["round", "test_acc", "test_loss", "train_loss"]], seen

    every_round, never = evaluations(1)
    rarely, sometimes = evaluations("null")
    assert not any(never) and sum(sometimes) == 18  # 20 rounds, 2 evaluations
    pd.testing.assert_frame_equal(
        every_round.reset_index(drop=True), rarely.reset_index(drop=True), check_exact=True
    )
