"""Differential test against ByzFL 0.0.11 (`byzfl`, a test-only dependency: the [dev] extra).

For every rule and step both have, the same float64 inputs give the same outputs (relative 1e-12)
once byzrun's options are set to ByzFL's definition. ByzFL runs in float64 only on numpy arrays (it
turns torch tensors into float32), so it gets numpy arrays, copied: its clipping steps write into
their input. Where the definitions differ (README, "Differences from ByzFL"), a test shows the
difference; where ByzFL is wrong (float32 Krum distances, MeaMed ties by row order), byzrun matches
the exact float64 answer.
"""

from __future__ import annotations

import math

import byzfl
import numpy as np
import pytest
import torch

from byzrun import defenses
from byzrun.preaggregation.arc import AdaptiveRobustClipping
from byzrun.preaggregation.bucketing import Bucketing
from byzrun.preaggregation.clipping import Clipping
from byzrun.preaggregation.nnm import NearestNeighborMixing

# (n, d, f), f < n/2 as ByzFL requires for its rules
SHAPES = [(5, 3, 1), (9, 6, 2), (12, 4, 5), (21, 17, 6), (51, 30, 12)]


def inputs(n: int, d: int, seed: int) -> np.ndarray:
    g = np.random.default_rng(seed)
    A = g.standard_normal((n, d))
    A[-1] *= 8  # a far row
    return A


def ours(rule, A: np.ndarray, f: int) -> np.ndarray:
    return rule(torch.from_numpy(A.copy()), f).numpy()


def theirs(rule, A: np.ndarray) -> np.ndarray:
    return np.asarray(rule(A.copy()), dtype=np.float64)


def same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and np.allclose(a, b, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("n, d, f", SHAPES)
def test_rules_with_the_same_definition_give_the_same_output(n, d, f):
    A = inputs(n, d, seed=n + d)
    pairs = {
        "mean": (defenses.Mean(), byzfl.Average()),
        "median": (defenses.Median(), byzfl.Median()),  # np.median: the average of the middle two
        "trimmed_mean": (defenses.TrimmedMean(variant="trim_extremes"), byzfl.TrMean(f)),
        "meamed": (defenses.MeaMed(), byzfl.Meamed(f)),
        # ByzFL's Krum score: the mean of the squared distances to the n-f-1 nearest others
        "krum": (defenses.Krum(neighbours="dm_code"), byzfl.Krum(f)),
        "multi_krum": (defenses.MultiKrum(neighbours="dm_code"), byzfl.MultiKrum(f)),
        # ByzFL's CC starts at 0 on its first call
        "centered_clipping": (
            defenses.CenteredClipping(tau=2.0, iterations=3, center="zero"),
            byzfl.CenteredClipping(tau=2.0, L=3),
        ),
        "mda": (defenses.MinimumDiameterAveraging(max_subsets=10**9), byzfl.MDA(f)),
        "monna": (defenses.NearestNeighbourAveraging(pivot=1), byzfl.MoNNA(f, idx=1)),
    }
    if math.comb(n, f) > 10**4:
        del pairs["mda"]  # ByzFL's plain loop over C(n, f) subsets: too slow for a test
    for name, (rule, theirs_rule) in pairs.items():
        assert same(ours(rule, A, f), theirs(theirs_rule, A)), name


@pytest.mark.parametrize("n, d, f", SHAPES)
def test_pre_aggregation_steps_with_the_same_definition(n, d, f):
    A = inputs(n, d, seed=2 * n + d)
    assert same(ours(NearestNeighborMixing(), A, f), theirs(byzfl.NNM(f), A))
    assert same(ours(Clipping(c=2.0), A, f), theirs(byzfl.Clipping(c=2.0), A))
    assert same(ours(AdaptiveRobustClipping(), A, f), theirs(byzfl.ARC(f), A))


def test_arc_counts_the_same_clipped_vectors():
    # ByzFL: int((2f/n)(n-f)) in floating point; byzrun: 2f(n-f) // n in integers; equal for n < 200
    from byzrun.preaggregation.arc import clipped_count

    for n in range(2, 200):
        for f in range((n + 1) // 2):
            assert clipped_count(n, f) == int((2 * f / n) * (n - f)), (n, f)


@pytest.mark.parametrize("s", [1, 2, 3, 4])
def test_bucketing_with_the_same_shuffle(monkeypatch, s):
    """ByzFL shuffles with numpy's global generator, byzrun with its own (a pure function of the round):
    given ByzFL's permutation, the buckets and their means are the same (the last one smaller)."""
    A = inputs(11, 5, seed=s)
    np.random.seed(s)
    expected = theirs(byzfl.Bucketing(s=s), A)
    np.random.seed(s)
    perm = torch.from_numpy(np.random.permutation(11))  # the same draw as ByzFL's shuffle of 11 rows
    monkeypatch.setattr(Bucketing, "permutation", lambda self, G: perm)
    assert same(ours(Bucketing(s=s), A, 2), expected)


# ------------------------------------------------------------------ differences of definition


def test_krum_neighbour_count_differs_from_the_papers():
    # on 0, 1, 2, 6, 10 (n=5, f=1): ByzFL sums n-f-1 = 3 neighbours (row at 2), Blanchard et al. n-f-2 = 2
    A = np.array([[0.0], [1.0], [2.0], [6.0], [10.0]])
    assert theirs(byzfl.Krum(1), A).item() == 2.0 == ours(defenses.Krum(neighbours="dm_code"), A, 1).item()
    assert ours(defenses.Krum(), A, 1).item() == 1.0


def test_centered_clipping_keeps_its_output_as_the_next_start():
    """ByzFL's CC is stateful: each call starts at the previous call's output (the paper's momentum
    start); byzrun's is stateless, and center=zero starts every call at 0."""
    A = inputs(9, 4, seed=1)
    cc = byzfl.CenteredClipping(tau=1.0, L=1)
    first, second = theirs(cc, A), theirs(cc, A)
    rule = defenses.CenteredClipping(tau=1.0, iterations=1, center="zero")
    assert same(ours(rule, A, 2), first) and not np.allclose(first, second)
    assert same(ours(rule, A, 2), ours(rule, A, 2))
    # the second call is one more step from the first's output: two steps from 0
    assert same(ours(defenses.CenteredClipping(tau=1.0, iterations=2, center="zero"), A, 2), second)


def test_geometric_median_start_and_stop_differ_but_the_minimiser_is_the_same():
    """ByzFL: Weiszfeld from 0, exactly T steps (default 3, nu=0.1); byzrun: from the mean, until
    the objective stops moving (tol) or `iterations`. Run long enough, both reach the same point."""
    A = inputs(11, 5, seed=3)
    few = theirs(byzfl.GeometricMedian(nu=1e-6, T=3), A)
    assert not np.allclose(few, ours(defenses.GeometricMedian(iterations=3, tol=0.0, nu=1e-6), A, 2))
    # ByzFL's first step from 0: weights 1/max(nu, ||p_i||)
    w = 1 / np.maximum(1e-6, np.linalg.norm(A, axis=1))
    assert same(theirs(byzfl.GeometricMedian(nu=1e-6, T=1), A), (w[:, None] * A).sum(0) / w.sum())
    long = theirs(byzfl.GeometricMedian(nu=1e-6, T=2000), A)
    assert np.allclose(
        ours(defenses.GeometricMedian(iterations=2000, tol=0.0, nu=1e-6), A, 2), long, rtol=1e-9
    )


def test_caf_and_smea_in_one_dimension_where_one_power_step_is_exact():
    """ByzFL finds the top eigenpair with one power-method step from a random vector: exact when d = 1.
    SMEA then agrees. CAF differs by definition: ByzFL's tau_max runs over every row, including those
    already at weight 0; byzrun's over the rows still weighted (the reference shows both)."""
    from tests.test_defenses_new import ref_caf

    for n, f in [(5, 1), (7, 2), (9, 3), (10, 4)]:
        A = inputs(n, 1, seed=n)
        smea = defenses.SmallestMaxEigenvalueAveraging()
        assert same(ours(smea, A, f), theirs(byzfl.SMEA(f), A)), n
        assert same(theirs(byzfl.CAF(f), A), ref_caf(A, f, tau_max_over="all")), n
        assert np.allclose(ours(defenses.CovarianceFilter(), A, f), ref_caf(A, f), rtol=1e-12), n
    A = inputs(9, 1, seed=9)
    assert not np.allclose(ref_caf(A, 3), ref_caf(A, 3, tau_max_over="all"))  # the definitions differ here


def test_caf_and_smea_in_several_dimensions_depend_on_byzfls_random_start():
    """With d > 1 ByzFL's single power step is not the top eigenvector: its answer changes with numpy's
    seed; byzrun's (exact eigenpairs) is the brute force's, whatever the seed."""
    from tests.test_defenses_new import ref_smea_subset

    A = inputs(8, 6, seed=5)
    outputs = set()
    for seed in range(6):
        np.random.seed(seed)
        outputs.add(tuple(np.round(theirs(byzfl.SMEA(3), A), 12)))
    assert len(outputs) > 1
    S = ref_smea_subset(A, 3)
    assert same(ours(defenses.SmallestMaxEigenvalueAveraging(), A, 3), A[list(S)].mean(0))


def test_caf_with_f_zero():
    A = inputs(6, 3, seed=0)
    assert byzfl.CAF(0)(A.copy()) is None  # its loop never runs
    assert same(ours(defenses.CovarianceFilter(), A, 0), A.mean(0))


# ------------------------------------------------------------------------------ where ByzFL is wrong


def exact_krum_winner(G64: torch.Tensor, f: int) -> int:
    """Brute force: squared distances from the differences in float64, n-f-1 nearest others summed."""
    n = len(G64)
    D = ((G64[:, None, :] - G64[None, :, :]) ** 2).sum(-1)
    D.fill_diagonal_(math.inf)
    return int(torch.argmin(D.topk(n - f - 1, largest=False).values.sum(1)))


def test_krum_on_close_float32_vectors_matches_the_exact_winner():
    """ByzFL turns torch inputs into float32 and torch.cdist (a Gram product beyond 25 rows) loses the
    small distances between large vectors; byzrun's centred Gram keeps them (distances.py)."""
    n, f, d = 27, 5, 1000
    byzfl_wrong = []
    for seed in range(27):
        g = torch.Generator().manual_seed(seed)
        G = (2.0 + torch.randn(d, generator=g) + 1e-2 * torch.randn(n, d, generator=g)).float()
        exact = exact_krum_winner(G.double(), f)
        assert int(defenses.Krum(neighbours="dm_code").select(G, f)[0]) == exact, seed
        winner = byzfl.Krum(f)(G.clone())
        if int((G == winner).all(1).nonzero()[0]) != exact:
            byzfl_wrong.append(seed)
    # seeds 15 and 19 on this project's CPU (2 of 27); which ones depends on the float32 rounding
    assert byzfl_wrong


def test_meamed_ties_do_not_depend_on_the_row_order():
    """Per coordinate, values at equal distance from the median: ByzFL keeps whichever argpartition
    meets first (the row order decides); byzrun keeps the smaller, so any order gives the same output."""
    # n=4, f=1, median 1: the values 0 and 2 tie at distance 1 for the last of the n-f = 3 places
    A = np.array([[0.0], [1.0], [1.0], [2.0]])
    expected = (1 + 1 + 0) / 3  # ties to the smaller value
    answers = {theirs(byzfl.Meamed(1), A[list(p)]).item() for p in ([0, 1, 2, 3], [3, 1, 2, 0])}
    assert len(answers) == 2  # ByzFL: 1 or 4/3 by row order
    for p in ([0, 1, 2, 3], [3, 1, 2, 0], [1, 3, 0, 2]):
        assert ours(defenses.MeaMed(), A[p], 1).item() == pytest.approx(expected, rel=1e-15)
