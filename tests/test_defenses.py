"""The aggregation rules: hand-computed cases, brute-force references, defining properties, bounds,
non-finite inputs and composition from the config.

The references below are written plainly (Python loops over workers and coordinates, float64) so
that they can be read against the papers; byzrun's rules must agree with them.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from byzrun import defenses
from byzrun.build import build_defense, build_steps
from byzrun.defenses import distances
from byzrun.errors import BoundError, ConfigError
from byzrun.preaggregation import Pipeline
from byzrun.preaggregation.bucketing import Bucketing
from byzrun.preaggregation.nnm import NearestNeighborMixing
from tests.conftest import CONF_DIR, make_cfg, run_cli

DEFENSE_NAMES = sorted(p.stem for p in (Path(CONF_DIR) / "defense").glob("*.yaml"))


def rows(*values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def piped(rule, pre=(), **options) -> Pipeline:
    """The rule behind the pre-aggregation steps `pre` (names or dicts, as in defense.pre)."""
    return Pipeline(rule, build_steps(list(pre)), **options)


# ------------------------------------------------------------------------------------- references


def ref_median(column: list[float], even: str = "average") -> float:
    s = sorted(column)
    n = len(s)
    if n % 2 == 1:
        return s[n // 2]
    return (s[n // 2 - 1] + s[n // 2]) / 2 if even == "average" else s[n // 2 - 1]


def ref_nearest_mean(column: list[float], center: float, k: int) -> float:
    """Mean of the k values nearest the center; ties go to the smaller value."""
    chosen = sorted(column, key=lambda v: (abs(v - center), v))[:k]
    return sum(chosen) / k


def ref_trim_extremes(column: list[float], f: int) -> float:
    s = sorted(column)
    kept = s[f : len(s) - f]
    return sum(kept) / len(kept)


def per_coordinate(G: torch.Tensor, fn) -> torch.Tensor:
    n, d = G.shape
    return torch.tensor([fn([float(G[i, j]) for i in range(n)]) for j in range(d)], dtype=torch.float64)


def ref_trimmed_mean(G, f, variant="nearest_n-2f"):
    n = len(G)
    if variant == "trim_extremes":
        return per_coordinate(G, lambda c: ref_trim_extremes(c, f))
    k = {"nearest_n-2f": n - 2 * f, "nearest_n-f": n - f, "alie_code": n - f - 1}[variant]
    return per_coordinate(G, lambda c: ref_nearest_mean(c, ref_median(c), k))


def ref_phocas(G, f):
    return per_coordinate(G, lambda c: ref_nearest_mean(c, ref_trim_extremes(c, f), len(c) - f))


def ref_sq_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    return sum((float(x) - float(y)) ** 2 for x, y in zip(a, b))


def ref_krum_scores(G, f, among=None, distances="squared", neighbours="paper") -> dict[int, float]:
    """Krum score of each row in `among` (default all), neighbours taken within `among`."""
    among = list(range(len(G))) if among is None else among
    r = len(among)
    k = max(1, min(r - f - {"paper": 2, "dm_code": 1, "alie_code": 0}[neighbours], r - 1))
    scores = {}
    for i in among:
        ds = [ref_sq_distance(G[i], G[j]) for j in among if j != i]
        if distances == "plain":
            ds = [math.sqrt(x) for x in ds]
        scores[i] = sum(sorted(ds)[:k])
    return scores


def ref_lowest(scores: dict[int, float], k: int) -> list[int]:
    return sorted(scores, key=lambda i: (scores[i], i))[:k]


def ref_bulyan_selection(G, f, neighbours="paper") -> list[int]:
    """ALIE paper Algorithm 2 with A = Krum: re-run Krum on the rows not yet selected, theta times."""
    remaining, selection = list(range(len(G))), []
    while len(selection) < len(G) - 2 * f:
        best = ref_lowest(ref_krum_scores(G, f, among=remaining, neighbours=neighbours), 1)[0]
        selection.append(best)
        remaining.remove(best)
    return selection


def ref_bulyan(G, f):
    S = G[ref_bulyan_selection(G, f)]
    beta = len(S) - 2 * f
    return per_coordinate(S, lambda c: ref_nearest_mean(c, ref_median(c), beta))


def ref_nnm(G, f):
    n = len(G)
    out = []
    for i in range(n):
        order = sorted(range(n), key=lambda j: (ref_sq_distance(G[i], G[j]), j))[: n - f]
        out.append(G[order].mean(0))
    return torch.stack(out)


def geometric_median_objective(G: np.ndarray, v: np.ndarray) -> float:
    return float(np.linalg.norm(G - v, axis=1).sum())


# ------------------------------------------------------------------------------ hand-computed cases

# One coordinate, n = 5, f = 1: median 2. Nearest the median: 2, 1, 0, 6, 10 (distances 0, 1, 2, 4, 8).
COLUMN = rows([0.0], [1.0], [2.0], [6.0], [10.0])


@pytest.mark.parametrize(
    "rule, expected",
    [
        (defenses.Mean(), 19 / 5),
        (defenses.Median(), 2.0),
        (defenses.TrimmedMean(variant="nearest_n-2f"), (2 + 1 + 0) / 3),  # the 3 nearest 2
        (defenses.TrimmedMean(variant="nearest_n-f"), (2 + 1 + 0 + 6) / 4),  # the 4 nearest 2
        (defenses.TrimmedMean(variant="trim_extremes"), (1 + 2 + 6) / 3),  # without 0 and 10
        (defenses.TrimmedMean(variant="alie_code"), (2 + 1 + 0) / 3),  # n-f-1 = 3 nearest
        (defenses.MeaMed(), (2 + 1 + 0 + 6) / 4),
        # the trimmed mean is 3; the 4 values nearest 3 are 2, 1, 0 and 6 (0 and 6 both at 3)
        (defenses.Phocas(), (2 + 1 + 0 + 6) / 4),
        # Krum, n-f-2 = 2 nearest, squared: scores 0:1+4, 1:1+1, 2:1+4, 6:16+25, 10:16+64 -> row 1
        (defenses.Krum(), 1.0),
        # Multi-Krum k = n-f = 4 lowest scores: rows 1, 0, 2 and 6 (41 < 80)
        (defenses.MultiKrum(), (1 + 0 + 2 + 6) / 4),
        (defenses.MultiKrum(k=2), (1 + 0) / 2),
    ],
    ids=lambda x: getattr(x, "name", None) or str(x),
)
def test_hand_computed_single_coordinate(rule, expected):
    assert float(rule(COLUMN, 1)[0]) == pytest.approx(expected)


def test_even_median_average_or_lower():
    G = rows([0.0, 5.0], [1.0, 7.0], [3.0, 8.0], [10.0, 20.0])
    assert defenses.Median()(G, 1).tolist() == [2.0, 7.5]
    assert defenses.Median(even="lower")(G, 1).tolist() == [1.0, 7.0]
    # MeaMed around the lower median 1: the 3 nearest values 1, 0, 3
    assert defenses.MeaMed(even="lower")(G, 1)[0].item() == pytest.approx(4 / 3)


def test_krum_squared_and_plain_distances_pick_different_rows():
    # n = 7, f = 1: scores sum the 4 nearest others. The row at 13 has distances 3, 4, 4, 5
    # (squared 66, plain 16); the row at 17 has 1, 2, 4, 7 (squared 70, plain 14); the others score more.
    G = rows(*([float(v)] for v in (0, 9, 10, 13, 17, 18, 19)))
    assert defenses.Krum()(G, 1).item() == 13.0
    assert defenses.Krum(distances="plain")(G, 1).item() == 17.0


def test_krum_alie_code_neighbour_count():
    # n - f = 4 nearest others (all of them) instead of n - f - 2 = 2 on 0, 1, 2, 6, 10:
    # scores 141, 108, 85, 93, 261 -> the row at 2, where the paper's count picks the row at 1
    assert defenses.Krum(neighbours="alie_code")(COLUMN, 1).item() == 2.0


def test_krum_dm_code_neighbour_count():
    # n - f - 1 = 3 nearest others, squared: scores 41, 27, 21, 57, 161 -> the row at 2
    assert defenses.Krum(neighbours="dm_code")(COLUMN, 1).item() == 2.0
    assert defenses.Krum(neighbours="paper")(COLUMN, 1).item() == 1.0


def test_bulyan_hand_computed_selection_order_and_output():
    # n = 7, f = 1: theta = 5, beta = 3. Iterated Krum (r-f-2 nearest others, squared distances) on
    # the values 0, 1, 3, 4, 4.5, 7, 100 (coordinate 2 is the negative of coordinate 1, doubling scores):
    #   r=7, 4 nearest: 3 scores 9+1+2.25+4 = 16.25, 4: 19.25, 4.5: 21 ...           -> 3
    #   r=6, 3 nearest: 4 scores 0.25+9+9 = 18.25, 4.5: 18.75, 1: 22.25 ...          -> 4
    #   r=5, 2 nearest: 1 scores 1+12.25 = 13.25, 4.5: 18.5, 0: 21.25 ...            -> 1
    #   r=4, 1 nearest: 4.5 and 7 tie at 2.5^2 (each other's nearest), lower index   -> 4.5
    #   r=3, 1 nearest: 0 and 7 tie at 49, lower index                               -> 0
    # Selection {0, 1, 3, 4, 4.5}: median 3, the beta = 3 values nearest it are 3, 4, 4.5.
    G = rows(*([float(v), -float(v)] for v in (0, 1, 3, 4, 4.5, 7, 100)))
    bulyan = defenses.Bulyan()
    assert bulyan.select(G, 1).tolist() == [2, 3, 1, 4, 0]
    assert bulyan(G, 1).tolist() == pytest.approx([11.5 / 3, -11.5 / 3])


def test_geometric_median_of_a_square_is_its_centre():
    G = rows([0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0], [1.0, 1.0])
    assert defenses.GeometricMedian()(G, 1).tolist() == pytest.approx([1.0, 1.0], abs=1e-6)


def test_centered_clipping_hand_computed():
    G = rows([3.0, 4.0], [0.5, 0.0])
    # from v0 = 0 with tau = 1: (3,4) is clipped to (0.6, 0.8); (0.5, 0) is kept; divided by n = 2
    rule = defenses.CenteredClipping(tau=1.0, center="zero")
    assert rule(G, 0).tolist() == pytest.approx([0.55, 0.4])
    # two steps move on from the first: v1 = (0.55, 0.4); (3,4)-v1 has norm > 1, (0.5,0)-v1 < 1
    v1 = torch.tensor([0.55, 0.4], dtype=torch.float64)
    a, b = G[0] - v1, G[1] - v1
    v2 = v1 + (a / a.norm() + b) / 2
    two = defenses.CenteredClipping(tau=1.0, iterations=2, center="zero")
    assert two(G, 0).tolist() == pytest.approx(v2.tolist())


def test_nnm_hand_computed():
    # n = 3, f = 1: each vector becomes the mean of its 2 nearest (itself included)
    G = rows([0.0], [1.0], [10.0])
    mixed = NearestNeighborMixing()(G, 1)
    assert mixed.flatten().tolist() == [0.5, 0.5, 5.5]
    assert piped(defenses.Mean(), ["nnm"])(G, 1).item() == pytest.approx(6.5 / 3)


def test_bucketing_averages_buckets_of_s():
    G = torch.randn(7, 4, dtype=torch.float64)
    step = Bucketing(s=2, seed=3)
    B, members = step.apply(G, 1)
    assert B.shape == (4, 4) and members.shape == (4, 7)
    assert members.sum(1).tolist() == [2, 2, 2, 1] and bool((members.sum(0) == 1).all())
    for b in range(4):
        assert torch.allclose(B[b], G[members[b]].mean(0))
    # the buckets are a pure function of the round's submissions: the same again, new for new inputs
    assert torch.equal(step.apply(G, 1)[1], members)
    assert not all(torch.equal(step.apply(G + i, 1)[1], members) for i in range(1, 6))


# -------------------------------------------------------------------- brute-force agreement


SHAPES = [(7, 1, 1), (8, 5, 1), (11, 33, 2), (12, 17, 2), (15, 9, 3), (16, 6, 3)]  # (n, d, f)


def random_G(n, d, seed):
    g = torch.Generator().manual_seed(seed)
    G = torch.randn(n, d, generator=g, dtype=torch.float64)
    G[-1] *= 10  # an outlier, so selections have something to leave out
    return G


@pytest.fixture(params=["numpy", "network"])
def column_sort(request, monkeypatch):
    """Both ways byzrun.defenses.order sorts columns on a CPU, in blocks of 7 columns."""
    from byzrun.defenses import order

    monkeypatch.setattr(order, "_CPU_BLOCK", 7)
    if request.param == "network":
        monkeypatch.setattr(order, "_NUMPY_SORTS", ())
    return request.param


@pytest.mark.parametrize("n", [2, 5, 27, 33, 51])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_column_sorts_agree_with_torch_sort_with_non_finite_values(n, dtype, column_sort):
    from byzrun.defenses.order import column_map

    G = torch.randn(n, 30, dtype=dtype)
    G[0, :6], G[-1, 4:12], G[n // 2, 10:20] = math.nan, math.inf, -math.inf
    expected = torch.nan_to_num(G, nan=math.inf, posinf=math.inf, neginf=-math.inf).sort(0).values
    for k in range(n):
        assert torch.equal(column_map(G, lambda S, k=k: S[k].clone()), expected[k]), k


@pytest.mark.parametrize("n, d, f", SHAPES)
def test_coordinate_wise_rules_agree_with_brute_force(n, d, f, column_sort):
    G = random_G(n, d, seed=n * d)
    for even in ("average", "lower"):
        expected = per_coordinate(G, lambda c, even=even: ref_median(c, even))
        assert torch.allclose(defenses.Median(even=even)(G, f), expected)
    for variant in ("nearest_n-2f", "nearest_n-f", "trim_extremes", "alie_code"):
        got = defenses.TrimmedMean(variant=variant)(G, f)
        assert torch.allclose(got, ref_trimmed_mean(G, f, variant)), variant
    meamed = per_coordinate(G, lambda c: ref_nearest_mean(c, ref_median(c), n - f))
    assert torch.allclose(defenses.MeaMed()(G, f), meamed)
    assert torch.allclose(defenses.Phocas()(G, f), ref_phocas(G, f))


def same_scores(scores: dict[int, float], picked: list[int], expected: list[int]) -> bool:
    """The picked rows are the expected ones, or rows whose scores tie with them: in one dimension
    sums of plain distances tie exactly, and then rounding decides which of the tied rows wins."""
    if sorted(picked) == sorted(expected):
        return True
    ours, ref = sorted(scores[i] for i in picked), sorted(scores[i] for i in expected)
    return len(picked) == len(expected) and all(math.isclose(a, b, rel_tol=1e-9) for a, b in zip(ours, ref))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n, d, f", SHAPES)
def test_selection_rules_agree_with_brute_force(n, d, f, dtype):
    G = random_G(n, d, seed=7 * n + d).to(dtype)
    G64 = G.double()
    for dist in ("squared", "plain"):
        for neighbours in ("paper", "dm_code", "alie_code"):
            scores = ref_krum_scores(G64, f, distances=dist, neighbours=neighbours)
            krum = defenses.Krum(distances=dist, neighbours=neighbours)
            (pick,) = krum.select(G, f).tolist()
            assert same_scores(scores, [pick], ref_lowest(scores, 1))
            assert torch.equal(krum(G, f), G[pick])  # exactly one input row
            multi = defenses.MultiKrum(distances=dist, neighbours=neighbours)
            assert same_scores(scores, multi.select(G, f).tolist(), ref_lowest(scores, n - f))
    if n >= 4 * f + 3:
        bulyan = defenses.Bulyan()
        assert bulyan.select(G, f).tolist() == ref_bulyan_selection(G64, f)
        assert torch.allclose(bulyan(G, f).double(), ref_bulyan(G64, f), atol=1e-5)
        once = defenses.Bulyan(inner="krum_once").select(G, f).tolist()
        assert sorted(once) == sorted(ref_lowest(ref_krum_scores(G64, f), n - 2 * f))


@pytest.mark.parametrize("n, d, f", SHAPES)
def test_nnm_agrees_with_brute_force(n, d, f):
    G = random_G(n, d, seed=3 * n + d)
    assert torch.allclose(NearestNeighborMixing()(G, f), ref_nnm(G, f))


@pytest.mark.parametrize("n, d", [(5, 2), (10, 7), (11, 30)])
def test_geometric_median_minimises_the_sum_of_distances(n, d):
    G = random_G(n, d, seed=n + d)
    got = defenses.GeometricMedian(iterations=1000, tol=1e-12, nu=1e-12)(G, 1).numpy()
    A = G.numpy()
    best = minimize(
        lambda v: geometric_median_objective(A, v), A.mean(0), method="Nelder-Mead" if d <= 2 else "BFGS"
    )
    assert geometric_median_objective(A, got) <= best.fun + 1e-7 * abs(best.fun)
    assert np.allclose(got, best.x, atol=1e-3)


def test_pairwise_distances_match_a_float64_brute_force():
    G = torch.randn(9, 13, dtype=torch.float64)
    expected = torch.tensor([[ref_sq_distance(a, b) for b in G] for a in G], dtype=torch.float64)
    assert torch.allclose(distances.pairwise_sq_distances(G), expected)


@pytest.mark.parametrize("offset", [0.0, 1e4])
def test_distances_of_large_close_float32_vectors_are_accurate(offset):
    # |p_i| ~ 100 * sqrt(d) while |p_i - p_j| ~ 1e-3 * sqrt(d): the plain Gram trick loses everything
    g = torch.Generator().manual_seed(0)
    d = 100_000
    base = 100.0 + torch.randn(d, generator=g)
    G = (base + 1e-3 * torch.randn(11, d, generator=g)).float()
    G[-1] += offset  # a far Byzantine row drags the mean away from the others
    G64 = G.double()
    expected = ((G64[:, None, :] - G64[None, :, :]) ** 2).sum(-1)
    got = distances.pairwise_sq_distances(G)
    assert torch.allclose(got, expected, rtol=1e-4)
    naive = (G.norm(dim=1)[:, None] ** 2 + G.norm(dim=1)[None, :] ** 2 - 2 * G @ G.T).double()
    assert not torch.allclose(naive[:10, :10], expected[:10, :10], rtol=1e-2)  # the test can fail


def test_bulyan_computes_the_distances_once(monkeypatch):
    calls = []
    original = distances.pairwise_sq_distances

    def counting(G):
        calls.append(1)
        return original(G)

    monkeypatch.setattr("byzrun.defenses.bulyan.pairwise_sq_distances", counting)
    defenses.Bulyan()(torch.randn(51, 100), 12)
    assert len(calls) == 1


# ------------------------------------------------------------------------------------ properties

ROBUST_RULES = {
    "median": lambda: defenses.Median(),
    "trimmed_mean": lambda: defenses.TrimmedMean(),
    "trimmed_mean/nearest_n-f": lambda: defenses.TrimmedMean(variant="nearest_n-f"),
    "trimmed_mean/trim_extremes": lambda: defenses.TrimmedMean(variant="trim_extremes"),
    "meamed": lambda: defenses.MeaMed(),
    "phocas": lambda: defenses.Phocas(),
    "krum": lambda: defenses.Krum(),
    "multi_krum": lambda: defenses.MultiKrum(),
    "bulyan": lambda: defenses.Bulyan(),
    "geometric_median": lambda: defenses.GeometricMedian(),
    "centered_clipping": lambda: defenses.CenteredClipping(tau=1.0),
    "nnm+krum": lambda: piped(defenses.Krum(), ["nnm"]),
    "bucketing+median": lambda: piped(defenses.Median(), [{"name": "bucketing", "s": 2}]),
}
ALL_RULES = {"mean": lambda: defenses.Mean(), **ROBUST_RULES}


@pytest.mark.parametrize("name", ALL_RULES)
def test_output_shape_dtype_and_device(name):
    for dtype in (torch.float32, torch.float64):
        G = torch.randn(23, 40, dtype=dtype)
        out = ALL_RULES[name]()(G, 3)
        assert out.shape == (40,) and out.dtype == dtype and out.device == G.device


@pytest.mark.parametrize("name", [n for n in ALL_RULES if not n.startswith("bucketing")])
def test_permutation_invariance(name):
    # bucketing is left out: it shuffles at random by design
    G = random_G(23, 31, seed=5)
    perm = torch.randperm(23, generator=torch.Generator().manual_seed(1))
    rule = ALL_RULES[name]()
    assert torch.allclose(rule(G[perm], 5), rule(G, 5), atol=1e-8)


@pytest.mark.parametrize(
    "name", ["median", "trimmed_mean/trim_extremes", "trimmed_mean", "meamed", "phocas", "krum", "multi_krum"]
)
def test_far_outliers_cannot_pull_the_output_out_of_the_honest_range(name):
    n, f = 23, 5
    honest = torch.randn(n - f, 50, dtype=torch.float64)
    byzantine = torch.where(torch.rand(f, 50) < 0.5, -1e6, 1e6).double()
    out = ALL_RULES[name]()(torch.cat([honest, byzantine]), f)
    assert bool(((out >= honest.min(0).values) & (out <= honest.max(0).values)).all())


def test_median_and_trimmed_extremes_stay_in_the_honest_range_whatever_the_byzantine_rows():
    g = torch.Generator().manual_seed(2)
    for _ in range(20):
        n, f = 13, 6
        honest = torch.randn(n - f, 20, generator=g, dtype=torch.float64)
        byzantine = 3 * torch.randn(f, 20, generator=g, dtype=torch.float64)
        G = torch.cat([honest, byzantine])[torch.randperm(n, generator=g)]
        low, high = honest.min(0).values, honest.max(0).values
        for rule in (defenses.Median(), defenses.TrimmedMean(variant="trim_extremes")):
            out = rule(G, f)
            assert bool(((out >= low) & (out <= high)).all())


def test_selection_sizes():
    G = torch.randn(51, 20)
    assert len(piped(defenses.Krum()).selection(G, 12)) == 1
    assert len(piped(defenses.MultiKrum()).selection(G, 12)) == 51 - 12
    assert len(piped(defenses.MultiKrum(k="n-f-2")).selection(G, 12)) == 51 - 12 - 2
    assert len(set(piped(defenses.Bulyan()).selection(G, 12).tolist())) == 51 - 2 * 12
    assert piped(defenses.Median()).selection(G, 12) is None
    # with a pre-aggregation step the selection names workers: NNM vector i stands for worker i
    assert len(piped(defenses.Krum(), ["nnm"]).selection(G, 12)) == 1
    bucket = piped(defenses.Krum(), [{"name": "bucketing", "s": 3}]).selection(G, 4)
    assert len(bucket) == 3  # the selected bucket's members


# ------------------------------------------------------------------------------- non-finite rows


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("name", ROBUST_RULES)
def test_robust_rules_stay_finite_under_non_finite_rows(name, value):
    n, f = 23, 3
    G = torch.randn(n, 40)
    G[-f:] = value
    G[0, 5] = value  # and one bad coordinate in an otherwise honest-looking row: f + 1 bad rows
    assert bool(torch.isfinite(ROBUST_RULES[name]()(G, f + 1)).all()), name


def test_finite_rows_without_a_float64_pass():
    """finite_rows: a finite row whose float32 sum overflows is still finite; NaN, +-Inf, and +Inf next
    to -Inf (a sum that could cancel) are not."""
    from byzrun.defenses.distances import finite_rows

    G = torch.randn(6, 50)
    G[1, :4] = 3e38  # finite, but its float32 sum is +inf
    G[2, 7] = math.nan
    G[3, 0] = math.inf
    G[4, 0], G[4, 1] = math.inf, -math.inf
    G[5, 9] = -math.inf
    assert finite_rows(G).tolist() == [True, True, False, False, False, False]
    assert finite_rows(G[:2]).tolist() == [True, True]


def test_mean_propagates_non_finite_rows():
    G = torch.randn(5, 3)
    G[-1] = math.nan
    assert bool(defenses.Mean()(G, 1).isnan().all())


def test_a_non_finite_attack_on_the_mean_is_recorded_as_divergence(digits_cfg):
    from byzrun.train import run

    summary = run(digits_cfg("m=2", "attack=non_finite", "defense=mean"))
    assert bool(summary["diverged"]) and summary["diverged_round"] == 1
    robust = run(digits_cfg("m=2", "attack=non_finite", "defense=median"))
    assert not bool(robust["diverged"]) and robust["max_test_acc"] > 50


# ------------------------------------------------------------------------------------- bounds


@pytest.mark.parametrize(
    "rule, bound",
    [
        (defenses.Krum(), lambda n: (n - 3) // 2),  # n >= 2f+3
        (defenses.MultiKrum(), lambda n: (n - 3) // 2),
        (defenses.Bulyan(), lambda n: (n - 3) // 4),  # n >= 4f+3
        (defenses.Median(), lambda n: math.ceil(n / 2) - 1),
        (defenses.TrimmedMean(), lambda n: math.ceil(n / 2) - 1),
        (defenses.TrimmedMean(variant="trim_extremes"), lambda n: math.ceil(n / 2) - 1),
        (defenses.MeaMed(), lambda n: math.ceil(n / 2) - 1),
        (defenses.Phocas(), lambda n: math.ceil(n / 2) - 1),
        (defenses.GeometricMedian(), lambda n: math.ceil(n / 2) - 1),
        (defenses.CenteredClipping(), lambda n: n // 10),
        (defenses.Mean(), lambda n: n - 1),
    ],
    ids=lambda x: getattr(x, "name", ""),
)
def test_each_rule_declares_its_papers_bound(rule, bound):
    for n in (3, 7, 10, 11, 25, 50, 51):
        assert rule.bound.max_f(n) == bound(n), n
        piped(rule).check(n, bound(n))
        if rule.robust:
            with pytest.raises(BoundError, match=re.escape(rule.bound.text)):
                piped(rule).check(n, bound(n) + 1)


def test_the_bound_error_names_the_fix_and_the_escape_hatch():
    with pytest.raises(BoundError) as err:
        piped(defenses.Bulyan()).check(51, 13)
    message = str(err.value)
    assert "at most f=12" in message and "n >= 4f+3" in message and "allow_out_of_bound=true" in message


def test_allow_out_of_bound_runs_with_a_warning():
    rule = piped(defenses.Krum(), allow_out_of_bound=True)
    with pytest.warns(UserWarning, match="running anyway"):
        rule.check(51, 25)
    assert torch.isfinite(rule(torch.randn(51, 10), 25)).all()


def test_pre_aggregation_bounds_are_checked_on_the_vectors_the_rule_sees():
    rule = piped(defenses.Median(), [{"name": "bucketing", "s": 2}])
    rule.check(51, 12)  # 26 buckets, the median tolerates 12 of them
    with pytest.raises(BoundError, match="at most f=6 .* with n=13 vectors after pre-aggregation of n=51"):
        piped(defenses.Median(), [{"name": "bucketing", "s": 4}]).check(51, 12)  # 13 buckets
    with pytest.raises(BoundError, match=r"pre-aggregation nnm tolerates at most f=5 with n=11 \(f < n/2\)"):
        piped(defenses.Mean(), ["nnm"]).check(11, 6)


def test_a_config_outside_the_bound_fails_before_training(digits_cfg):
    from byzrun.train import prepare

    with pytest.raises(BoundError, match="krum tolerates at most f=4"):
        prepare(digits_cfg("defense=krum", "m=5", "attack=alie"))


# ------------------------------------------------------------------------------------- the config


@pytest.mark.parametrize("name", DEFENSE_NAMES)
def test_every_defense_yaml_builds_and_aggregates(name):
    rule = build_defense(make_cfg(f"defense={name}").defense)
    assert isinstance(rule, Pipeline) and isinstance(rule.rule, defenses.Defense) and rule.name == name
    rule.begin_round(torch.randn(30))  # the server's own gradient (used by FLTrust only)
    assert rule(torch.randn(51, 30), min(2, rule.rule.bound.max_f(51))).shape == (30,)


def test_pre_aggregation_composes_from_the_command_line():
    rule = build_defense(make_cfg("defense=krum", "defense.pre=[nnm]").defense)
    assert rule.name == "nnm+krum"
    G = torch.randn(15, 8, dtype=torch.float64)
    assert torch.equal(rule(G, 3), defenses.Krum()(NearestNeighborMixing()(G, 3), 3))
    rule = build_defense(make_cfg("defense=median", "defense.pre=[{name:bucketing,s:3}]").defense)
    assert rule.name == "bucketing+median" and rule.steps[0].s == 3
    target = "{_target_:byzrun.preaggregation.Bucketing,s:4}"
    rule = build_defense(make_cfg("defense=krum", f"defense.pre=[nnm,{target}]", "defense.name=mine").defense)
    assert [type(step) for step in rule.steps] == [NearestNeighborMixing, Bucketing] and rule.name == "mine"
    with pytest.raises(ConfigError, match="unknown pre-aggregation 'nmm'"):
        build_defense(make_cfg("defense=krum", "defense.pre=[nmm]").defense)


@pytest.mark.parametrize(
    "override, message",
    [
        ("defense=trimmed_mean defense.variant=nearest", "defense.variant must be one of"),
        ("defense=krum defense.distances=cosine", "defense.distances must be one of"),
        ("defense=bulyan defense.inner=median", "defense.inner must be one of"),
        ("defense=median defense.even=upper", "defense.even must be one of"),
        ("defense=multi_krum defense.k=n-2f", "defense.k must be"),
        ("defense=krum +defense.f=3", "defense has no option 'f'"),
    ],
)
def test_unknown_options_are_rejected(override, message):
    with pytest.raises(ConfigError, match=message):
        build_defense(make_cfg(*override.split()).defense)


def test_the_cli_reports_a_bad_defense_option_in_one_line(tmp_path, monkeypatch, capsys):
    args = ["dataset=digits", "defense=bulyan", "defense.inner=median", f"results_dir={tmp_path}"]
    assert run_cli(monkeypatch, *args) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "byzrun: error: defense.inner must be one of ('krum', 'krum_once'), got 'median'"
    ]
    assert not (tmp_path / "runs").exists()  # nothing started


@pytest.mark.parametrize("name", ["trimmed_mean", "median", "krum", "bulyan"])
def test_the_benchmarks_naive_references_compute_the_same_rules(name):
    from byzrun.bench.aggregation import NAIVE, _matrix, rules

    G = _matrix(51, 12, 300, "cpu").double()
    assert torch.allclose(NAIVE[name](G, 12), rules()[name]()(G, 12))
