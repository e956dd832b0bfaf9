"""byzrun's attacks against ByzFL's (byzfl==0.0.11, a dev dependency, test-only) wherever the two share
a definition: the same float64 inputs give the same Byzantine vectors to 1e-12 relative. The options
that make byzrun's attack ByzFL's are spelled out in each test; the README lists every difference of
definition ("Differences from ByzFL")."""

from __future__ import annotations

import math

import byzfl
import numpy as np
import pytest
import torch
from scipy import stats
from test_attacks import build

from byzrun.attacks import AttackContext
from byzrun.defenses import Krum, Mean, Median, TrimmedMean

F64 = torch.float64
SIZES = [(3, 1), (7, 2), (11, 3), (51, 12)]


def honest_rows(kind: str, h: int, d: int = 12, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(0.3, 1.0, (h, d))
    if kind == "ties":
        x = rng.integers(-2, 3, (h, d)).astype(np.float64)
    elif kind == "duplicates":
        x[h // 2 :] = x[: h - h // 2].copy()
    elif kind == "outlier":
        x[0] *= 1e6
    return x


def ours(name, x: np.ndarray, m: int, defense=None, **options) -> np.ndarray:
    honest = torch.from_numpy(x)
    n = x.shape[0] + m
    attack = build(name, n=n, m=m, **options)
    ctx = AttackContext(
        honest=honest,
        own=honest[:m].clone(),
        n=n,
        m=m,
        round=0,
        defense=defense or Mean(),
        model=None,
        lr=0.1,
    )
    out = attack(ctx).numpy()
    assert out.shape == (m, x.shape[1])
    return out


def same(a: np.ndarray, b: np.ndarray) -> None:
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12 * max(1.0, float(np.abs(b).max())))


def byzfl_rows(vector, m: int) -> np.ndarray:
    """ByzFL's attacks return one vector; its ByzantineClient sends it from all f workers."""
    return np.stack([np.asarray(vector)] * m)


def on_numpy(rule, f):
    """A byzrun rule as a ByzFL aggregator of numpy arrays, so both line searches see one objective."""
    return lambda vectors: rule(torch.from_numpy(np.asarray(vectors)), f).numpy()


KINDS = ["random", "ties", "duplicates", "outlier"]
RULES = {"mean": Mean(), "median": Median(), "trimmed_mean": TrimmedMean(), "krum": Krum()}


@pytest.mark.parametrize("n,m", SIZES)
@pytest.mark.parametrize("kind", KINDS)
def test_mimic_with_a_fixed_index_is_byzfls_mimic(n, m, kind):
    x = honest_rows(kind, n - m)
    for i in sorted({0, (n - m) // 2, n - m - 1}):
        same(ours("mimic", x, m, target=i), byzfl_rows(byzfl.Mimic(epsilon=i)(x), m))


@pytest.mark.parametrize("n,m", SIZES)
@pytest.mark.parametrize("kind", KINDS)
def test_alie_and_ipm_with_a_fixed_factor_are_byzfls(n, m, kind):
    x = honest_rows(kind, n - m)
    alie = ours("alie", x, m, z=1.5, knowledge="omniscient", std="unbiased", direction="plus")
    same(alie, byzfl_rows(byzfl.ALittleIsEnough(tau=1.5)(x), m))
    same(ours("ipm", x, m, epsilon=2.0), byzfl_rows(byzfl.InnerProductManipulation(tau=2.0)(x), m))


# every rule at every size within its bound (Krum: n >= 2m+3)
RULE_SIZES = [(rule, n, m) for rule in sorted(RULES) for n, m in SIZES if rule != "krum" or n >= 2 * m + 3]


@pytest.mark.parametrize("rule,n,m", RULE_SIZES)
@pytest.mark.parametrize("kind", KINDS)
def test_optimal_alie_and_ipm_are_byzfls_line_search(rule, n, m, kind):
    x = honest_rows(kind, n - m)
    defense = RULES[rule]
    common = {"agg": on_numpy(defense, m), "pre_agg_list": [], "f": m}
    theirs = byzfl.Optimal_ALittleIsEnough(**common)(x)
    alie = ours(
        "alie", x, m, defense, factor="optimal", knowledge="omniscient", std="unbiased", direction="plus"
    )
    same(alie, byzfl_rows(theirs, m))
    theirs = byzfl.Optimal_InnerProductManipulation(**common)(x)
    same(ours("ipm", x, m, defense, factor="optimal"), byzfl_rows(theirs, m))


@pytest.mark.parametrize("n,m", [(11, 3), (51, 12)])
def test_optimal_alie_and_ipm_against_byzfls_own_average_and_median(n, m):
    """ByzFL's aggregators in its own search against byzrun's rules in byzrun's: the mean and the
    median have one definition in both."""
    x = honest_rows("random", n - m, seed=2)
    for theirs_rule, our_rule in [(byzfl.Average(), Mean()), (byzfl.Median(), Median())]:
        common = {"agg": theirs_rule, "pre_agg_list": [], "f": m}
        alie = ours(
            "alie", x, m, our_rule, factor="optimal", knowledge="omniscient", std="unbiased", direction="plus"
        )
        same(alie, byzfl_rows(byzfl.Optimal_ALittleIsEnough(**common)(x), m))
        ipm = ours("ipm", x, m, our_rule, factor="optimal")
        same(ipm, byzfl_rows(byzfl.Optimal_InnerProductManipulation(**common)(x), m))


def test_non_finite_inf_is_byzfls_inf():
    x = honest_rows("random", 8)
    same(ours("non_finite", x, 3, value=math.inf), byzfl_rows(byzfl.Inf()(x), 3))


def test_gaussian_shared_has_byzfls_distribution():
    """One vector N(mu, sigma^2 I) sent by every Byzantine worker. The draws cannot agree (ByzFL draws
    from numpy's global generator, byzrun from torch's), so the two samples are compared as
    distributions: moments and a two-sample Kolmogorov-Smirnov test, both seeded."""
    d = 100_000
    x = honest_rows("random", 8, d=d)
    np.random.seed(0)
    theirs = byzfl_rows(byzfl.Gaussian(mu=0.5, sigma=2.0)(x), 3)
    torch.manual_seed(0)
    mine = ours("gaussian", x, 3, sigma=2.0, center=0.5, shared=True)
    assert (mine == mine[0]).all() and (theirs == theirs[0]).all()
    for sample in (mine[0], theirs[0]):
        assert abs(sample.mean() - 0.5) < 5 * 2.0 / math.sqrt(d)
        assert abs(sample.std() - 2.0) < 5 * 2.0 / math.sqrt(2 * d)
    assert stats.ks_2samp(mine[0], theirs[0]).pvalue > 1e-3
    # and a different distribution is told apart
    assert stats.ks_2samp(mine[0] * 1.05, theirs[0]).pvalue < 1e-6
