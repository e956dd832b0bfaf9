"""DnC, SignGuard and FLTrust: float64 references written from the papers (plain loops over workers
and coordinates), their defining properties, duplicated rows, a huge outlier, NaN/Inf rows up to the
bound, n from 3 to 51, options rejected in one line before any data is read, the server's root set,
and a short digits run each.

Where a rule draws random coordinates, the reference takes the same draws (byzrun.defenses.draws) and
recomputes everything else; separate tests check the draws themselves.
"""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
import torch
from sklearn.cluster import MeanShift

from byzrun import defenses
from byzrun.build import build_defense
from byzrun.defenses.draws import coordinate_subset, round_generator
from byzrun.errors import ConfigError
from tests.conftest import make_cfg, run_cli

NS = [3, 4, 5, 7, 10, 11, 20, 33, 51]
# the reference's own mean shift says when it seeds from the points instead of bins, as byzrun's keeps quiet
pytestmark = pytest.mark.filterwarnings("ignore:Binning data failed:UserWarning")


def majority_f(n: int) -> int:
    return (n - 1) // 2


def plain(G: torch.Tensor) -> list[list[float]]:
    return [[float(x) for x in row] for row in G]


def is_finite(row: list[float]) -> bool:
    return all(math.isfinite(x) for x in row)


def norm(row: list[float]) -> float:
    return math.sqrt(sum(x * x for x in row)) if is_finite(row) else math.inf


def mean_of(rows: list[list[float]], d: int) -> torch.Tensor:
    if not rows:
        return torch.zeros(d, dtype=torch.float64)
    return torch.tensor([sum(r[j] for r in rows) / len(rows) for j in range(d)], dtype=torch.float64)


def gradients(n: int, d: int, seed: int) -> torch.Tensor:
    """Honest-looking rows around a common direction, the last one a far outlier."""
    g = torch.Generator().manual_seed(seed)
    G = torch.randn(d, generator=g, dtype=torch.float64) + 0.7 * torch.randn(
        n, d, generator=g, dtype=torch.float64
    )
    G[-1] = 20 * torch.randn(d, generator=g, dtype=torch.float64)
    return G


# ------------------------------------------------------------------------------------------- DnC


def ref_dnc_good(G: torch.Tensor, f: int, subsets: list[list[int]], c: float) -> list[int]:
    """Shejwalkar and Houmansadr, Algorithm 2: per subset r, centre the subsampled rows, take the top
    right singular vector v, score (<g_i - mu, v>)^2, keep the n - c*f lowest (ties: lower index);
    the good set is the intersection (or, when empty, the rows kept most often). Non-finite rows are
    never good and do not enter mu and v."""
    rows = plain(G)
    n = len(rows)
    finite = [i for i in range(n) if is_finite(rows[i])]
    keep = max(1, math.floor(n - c * f + 1e-9))
    votes = [0] * n
    for r in subsets:
        sub = np.array([[rows[i][j] for j in r] for i in finite], dtype=np.float64)
        mu = sub.mean(0)
        v = np.linalg.svd(sub - mu, full_matrices=False)[2][0]
        scores = [math.inf] * n
        for k, i in enumerate(finite):
            scores[i] = float(np.dot(sub[k] - mu, v)) ** 2
        for i in sorted(range(n), key=lambda i: (scores[i], i))[:keep]:
            votes[i] += 1
    most = max(votes[i] for i in finite)
    return [i for i in finite if votes[i] == most]


def dnc_subsets(G: torch.Tensor, rule: defenses.DnC) -> list[list[int]]:
    generator = round_generator(G, rule.seed)
    return [coordinate_subset(G.shape[1], rule.b, generator).tolist() for _ in range(rule.iterations)]


@pytest.mark.parametrize("n", NS)
@pytest.mark.parametrize(
    "d, b, iterations, c", [(6, 100, 1, 1.0), (40, 9, 3, 1.0), (40, 15, 5, 1.5), (25, 4, 2, 0.5)]
)
def test_dnc_agrees_with_the_papers_algorithm(n, d, b, iterations, c):
    G = gradients(n, d, seed=n * d + b)
    f = majority_f(n)
    rule = defenses.DnC(iterations=iterations, b=b, c=c, seed=3)
    good = ref_dnc_good(G, f, dnc_subsets(G, rule), c)
    assert rule.select(G, f).tolist() == good
    assert torch.allclose(rule(G, f), mean_of([plain(G)[i] for i in good], d), rtol=1e-12, atol=1e-12)
    if f:
        assert n - 1 not in good  # the far outlier is filtered out


def test_dnc_with_duplicated_rows_and_tied_scores():
    # all coordinates (b >= d) so every iteration is the same; rows 0-3 identical, tied at the cut
    G = gradients(11, 8, seed=1)
    G[1:4] = G[0]
    G[4] = 2 * G[0] - G[5]  # mirror images around G[0] score alike
    rule = defenses.DnC(iterations=3, b=100)
    good = ref_dnc_good(G, 3, dnc_subsets(G, rule), 1.0)
    assert torch.allclose(rule(G, 3), mean_of([plain(G)[i] for i in good], 8), rtol=1e-12, atol=1e-12)


def test_dnc_removes_one_huge_outlier():
    G = gradients(15, 30, seed=2)
    G[-1] = 1e12
    rule = defenses.DnC(b=10)
    kept = rule.select(G, 1).tolist()
    assert 14 not in kept and len(kept) >= 1
    good = ref_dnc_good(G, 1, dnc_subsets(G, rule), 1.0)
    assert kept == good and torch.allclose(rule(G, 1), mean_of([plain(G)[i] for i in good], 30))


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("n", NS)
def test_dnc_non_finite_rows_up_to_the_bound(n, value):
    f = defenses.DnC.bound.max_f(n)
    G = gradients(n, 12, seed=n)
    G[n - f :] = value
    if f:
        G[n - f, 0] = 1.0  # a row with a single non-finite value is as bad
    rule = defenses.DnC(b=5, iterations=2)
    out = rule(G, f)
    assert bool(torch.isfinite(out).all())
    good = ref_dnc_good(G, f, dnc_subsets(G, rule), 1.0)
    assert torch.allclose(out, mean_of([plain(G)[i] for i in good], 12), rtol=1e-12, atol=1e-12)


def test_dnc_draws_fresh_coordinates_every_round_and_the_same_on_a_rerun():
    G = gradients(11, 500, seed=4)
    rule = defenses.DnC(iterations=3, b=50)
    subsets = dnc_subsets(G, rule)
    assert all(len(s) == len(set(s)) == 50 and s == sorted(s) for s in subsets)
    assert len({tuple(s) for s in subsets}) == 3  # each iteration its own coordinates
    assert dnc_subsets(G.clone(), rule) == subsets  # a pure function of the submissions
    assert dnc_subsets(G + 1e-3, rule) != subsets  # another round, other coordinates
    assert dnc_subsets(G, defenses.DnC(iterations=3, b=50, seed=1)) != subsets


# ------------------------------------------------------------------------------------- SignGuard


def ref_bandwidth(features: np.ndarray) -> float:
    """Mean over the points of the distance to their max(2, floor(n/2))-th nearest point, the point
    itself counted first (scikit-learn's estimate_bandwidth at quantile 0.5, at least one other point)."""
    n = len(features)
    k = max(2, n // 2)
    total = 0.0
    for a in features:
        distances = sorted(math.dist(a, b) for b in features)
        total += distances[k - 1]
    return max(total / n, 1e-12)


def ref_signguard(
    G: torch.Tensor, columns: list[int], lower: float = 0.1, upper: float = 3.0
) -> torch.Tensor:
    """Xu et al. (ICDCS 2022): the norm filter around the median norm, the largest mean-shift cluster of
    the sign statistics, then the mean of the kept rows clipped to the median norm."""
    rows = plain(G)
    n, d = len(rows), len(rows[0])
    norms = [norm(r) for r in rows]
    M = statistics.median(norms)
    by_norm = {i for i in range(n) if math.isfinite(norms[i]) and lower * M <= norms[i] <= upper * M}
    features = np.array(
        [
            [
                sum(r[j] > 0 for j in columns) / len(columns),
                sum(r[j] == 0 for j in columns) / len(columns),
                sum(r[j] < 0 for j in columns) / len(columns),
            ]
            for r in rows
        ]
    )
    labels = (
        MeanShift(bandwidth=ref_bandwidth(features), bin_seeding=True, cluster_all=False)
        .fit(features)
        .labels_
    )
    counts = {label: int((labels == label).sum()) for label in set(labels.tolist()) if label >= 0}
    largest = min(counts, key=lambda label: (-counts[label], label))
    kept = sorted(by_norm & {i for i in range(n) if labels[i] == largest})
    clipped = [[x * min(1.0, M / norms[i]) if norms[i] > 0 else x for x in rows[i]] for i in kept]
    return mean_of(clipped, d)


def signed_gradients(n: int, d: int, seed: int) -> torch.Tensor:
    """Rows whose coordinates are mostly positive, with varied norms; the last row a far outlier."""
    g = torch.Generator().manual_seed(seed)
    G = (0.6 + torch.randn(n, d, generator=g, dtype=torch.float64)) * (1 + torch.rand(n, 1, generator=g))
    G[-1] *= 30
    return G


@pytest.mark.parametrize("n", NS)
@pytest.mark.parametrize("d", [8, 60])
def test_signguard_agrees_with_the_papers_algorithm(n, d):
    G = signed_gradients(n, d, seed=n + d)
    G[0, :3] = 0.0  # some zeros to count
    rule = defenses.SignGuard(fraction=1.0)
    assert torch.allclose(rule(G, majority_f(n)), ref_signguard(G, list(range(d))), rtol=1e-12, atol=1e-12)


def test_signguard_counts_signs_on_its_random_coordinates():
    G = signed_gradients(21, 200, seed=5)
    G[3:8] = -G[3:8]
    rule = defenses.SignGuard(fraction=0.25, lower=0.2, upper=2.5, seed=4)
    columns = coordinate_subset(200, 50, round_generator(G, 4)).tolist()
    assert len(set(columns)) == 50
    assert torch.allclose(rule(G, 10), ref_signguard(G, columns, 0.2, 2.5), rtol=1e-12, atol=1e-12)


def test_signguard_duplicated_rows_and_ties():
    G = signed_gradients(12, 20, seed=6)
    G[1:7] = G[0]  # half the rows identical: their statistics coincide (a zero bandwidth is avoided)
    rule = defenses.SignGuard(fraction=1.0)
    assert torch.allclose(rule(G, 5), ref_signguard(G, list(range(20))), rtol=1e-12, atol=1e-12)
    same = G[:1].repeat(9, 1)  # every row the same: one cluster, all kept, none clipped
    assert torch.allclose(rule(same, 4), same[0])


@pytest.mark.parametrize("n", NS)
def test_signguard_drops_sign_flipped_rows(n):
    f = majority_f(n)
    g = torch.Generator().manual_seed(n)
    honest = (1.0 + 0.5 * torch.randn(n - f, 1000, generator=g)) * (1 + torch.rand(n - f, 1, generator=g))
    flipped = -honest[:f]  # the same norms: only their signs give them away
    kept = defenses.SignGuard().select(torch.cat([honest, flipped]), f).tolist()
    assert kept and max(kept) < n - f


def test_signguard_drops_one_huge_outlier_and_clips_to_the_median_norm():
    G = signed_gradients(15, 40, seed=7)
    G[-1] = 1e12
    rule = defenses.SignGuard(fraction=1.0)
    assert 14 not in rule.select(G, 1).tolist()
    out = rule(G, 1)
    assert float(out.norm()) <= statistics.median(norm(r) for r in plain(G)) + 1e-9
    assert torch.allclose(out, ref_signguard(G, list(range(40))), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("n", NS)
def test_signguard_non_finite_rows_up_to_the_bound(n, value):
    f = defenses.SignGuard.bound.max_f(n)
    G = signed_gradients(n, 30, seed=n + 1)
    G[-1] /= 30
    G[n - f :] = value
    if f:
        G[n - f, 1:] = 1.0  # one non-finite value is enough
    out = defenses.SignGuard(fraction=1.0)(G, f)
    assert bool(torch.isfinite(out).all())
    assert torch.allclose(out, ref_signguard(G, list(range(30))), rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------------------- FLTrust


def ref_fltrust(G: torch.Tensor, g0: torch.Tensor) -> torch.Tensor:
    """Cao et al. (NDSS 2021): TS_i = ReLU(cos(g_i, g0)), g_i rescaled to ||g0||, the TS-weighted mean
    (zero when every score is 0); an undefined cosine (zero or non-finite g_i) scores 0."""
    rows, reference = plain(G), [float(x) for x in g0]
    d = len(reference)
    n0 = norm(reference)
    total, acc = 0.0, [0.0] * d
    for r in rows:
        nr = norm(r)
        if not math.isfinite(nr) or nr == 0 or n0 == 0:
            continue
        trust = max(0.0, sum(x * y for x, y in zip(r, reference)) / (nr * n0))
        total += trust
        acc = [a + trust * x * n0 / nr for a, x in zip(acc, r)]
    return (
        torch.zeros(d, dtype=torch.float64) if total == 0 else torch.tensor(acc, dtype=torch.float64) / total
    )


def fltrust(g0: torch.Tensor) -> defenses.FLTrust:
    rule = defenses.FLTrust()
    rule.begin_round(g0)
    return rule


@pytest.mark.parametrize("n", NS)
def test_fltrust_agrees_with_the_papers_formula(n):
    G = gradients(n, 17, seed=n)
    g0 = G[: max(1, n - 1)].mean(0) + 0.1
    G[0] = -3 * g0  # opposite: trust 0
    G[1 % n] = G[2 % n]  # duplicated rows
    assert torch.allclose(fltrust(g0)(G, majority_f(n)), ref_fltrust(G, g0), rtol=1e-12, atol=1e-12)


def test_fltrust_scores_zero_for_vectors_opposite_the_server_gradient():
    g = torch.Generator().manual_seed(8)
    g0 = torch.randn(20, generator=g, dtype=torch.float64)
    honest = g0 + 0.5 * torch.randn(6, 20, generator=g, dtype=torch.float64)
    opposite = -torch.rand(4, 1, generator=g, dtype=torch.float64) * 10 * g0
    from byzrun.defenses.fltrust import trust_scores

    assert trust_scores(opposite, g0).tolist() == [0.0] * 4
    rule = fltrust(g0)
    assert torch.equal(rule(opposite, 4), torch.zeros(20, dtype=torch.float64))  # no trusted row: no step
    assert torch.allclose(rule(torch.cat([honest, opposite]), 4), rule(honest, 0))
    # each row is rescaled to ||g0||: scaling a submission changes nothing; the output is no longer than g0
    scaled = honest * torch.tensor([1.0, 1e6, 1e-6, 3.0, 1.0, 7.0], dtype=torch.float64)[:, None]
    assert torch.allclose(rule(scaled, 0), rule(honest, 0))
    assert float(rule(honest, 0).norm()) <= float(g0.norm()) * (1 + 1e-12)
    assert torch.allclose(rule(g0.repeat(3, 1) * 5, 0), g0)


def test_fltrust_one_huge_outlier_is_rescaled_to_the_server_norm():
    G = gradients(11, 9, seed=9)
    g0 = G[:10].mean(0)
    G[-1] = g0 * 1e12  # aligned but huge: it counts with the norm of g0, no more
    out = fltrust(g0)(G, 1)
    assert torch.allclose(out, ref_fltrust(G, g0), rtol=1e-12, atol=1e-12)
    assert float(out.norm()) <= float(g0.norm()) * (1 + 1e-12)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("n", NS)
def test_fltrust_non_finite_rows_up_to_its_bound(n, value):
    f = defenses.FLTrust.bound.max_f(n)  # any minority or majority: n-1
    assert f == n - 1
    G = gradients(n, 10, seed=n + 2)
    g0 = G[0] + 0.1
    G[n - f :] = value
    out = fltrust(g0)(G, f)
    assert bool(torch.isfinite(out).all())
    assert torch.allclose(out, ref_fltrust(G, g0), rtol=1e-12, atol=1e-12)


def test_fltrust_without_the_server_gradient_is_a_programming_error():
    with pytest.raises(RuntimeError, match="begin_round"):
        defenses.FLTrust()(torch.randn(5, 3), 1)


# ---------------------------------------------------------------------------------- the root set


def test_the_root_set_is_drawn_once_per_seed_and_the_server_gradient_is_its_loss_gradient(digits_cfg):
    from byzrun.root_set import RootSet
    from byzrun.train import prepare

    setup = prepare(
        digits_cfg("defense=fltrust", "defense.root_size=50", "weight_decay=0.01", "grad_clip=0.5")
    )
    root, model, data = setup.root, setup.model, setup.data
    assert len(root.indices) == len(set(root.indices.tolist())) == 50
    assert torch.equal(RootSet(data, 50, 0, 16).indices, root.indices)  # the run's seed fixes it
    assert not torch.equal(RootSet(data, 50, 1, 16).indices, root.indices)
    batches = [root.batch() for _ in range(3)]  # batch_size=16 of the 50, fresh each round
    assert all(len(set(b.tolist())) == 16 and set(b.tolist()) <= set(root.indices.tolist()) for b in batches)
    assert not torch.equal(batches[0], batches[1])
    whole = RootSet(data, 50, 0, 128)  # root_size <= batch_size: the whole root set every round
    assert torch.equal(whole.batch(), whole.indices)
    theta = model.theta.detach().clone().requires_grad_()
    loss = model.loss(theta, data.train_x[whole.indices], data.train_y[whole.indices])
    (expected,) = torch.autograd.grad(loss, theta)
    expected = expected + 0.01 * model.theta
    expected = expected * min(1.0, 0.5 / float(expected.norm()))
    torch.testing.assert_close(whole.gradient(model, 0.01, 0.5), expected, rtol=1e-4, atol=1e-6)


def test_a_root_set_larger_than_the_training_set_is_one_line(digits_cfg):
    from byzrun.train import prepare

    with pytest.raises(ConfigError, match=r"^defense.root_size=100000 exceeds the \d+ training samples"):
        prepare(digits_cfg("defense=fltrust", "defense.root_size=100000"))


# ------------------------------------------------------------------------------ options and runs


@pytest.mark.parametrize(
    "override, message",
    [
        ("defense=dnc defense.b=0", "defense.b must be an integer >= 1"),
        ("defense=dnc defense.iterations=0", "defense.iterations must be an integer >= 1"),
        ("defense=dnc defense.c=-1", "defense.c must be a number >= 0"),
        ("defense=dnc defense.seed=abc", "defense.seed must be an integer"),
        ("defense=signguard defense.lower=2", "need 0 <= lower <= 1 <= upper"),
        ("defense=signguard defense.upper=0.5", "need 0 <= lower <= 1 <= upper"),
        ("defense=signguard defense.fraction=0", r"defense.fraction must be in \(0, 1\]"),
        ("defense=signguard defense.fraction=abc", "defense.fraction must be a number"),
        ("defense=fltrust defense.root_size=0", "defense.root_size must be an integer >= 1"),
        ("defense=fltrust defense.root_size=1.5", "defense.root_size must be an integer >= 1"),
    ],
)
def test_bad_options_are_one_line_errors(override, message):
    with pytest.raises(ConfigError, match=message) as err:
        build_defense(make_cfg(*override.split()).defense)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("override", ["defense=dnc defense.b=0", "defense=fltrust defense.root_size=0"])
def test_bad_options_stop_the_cli_before_any_data_is_read(override, monkeypatch, capsys, tmp_path):
    import byzrun.train

    def no_data(*args, **kwargs):
        raise AssertionError("data was read")

    monkeypatch.setattr(byzrun.train, "load_data", no_data)
    assert run_cli(monkeypatch, "dataset=digits", *override.split(), f"results_dir={tmp_path}") == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("byzrun: error: defense.")


@pytest.mark.parametrize("name", ["dnc", "signguard", "fltrust"])
def test_a_short_digits_run_learns_under_a_sign_flip_attack(name, digits_cfg):
    from byzrun.train import run

    summary = run(digits_cfg(f"defense={name}", "m=3", "attack=sign_flip", "attack.scale=5.0", "rounds=30"))
    assert summary["defense"] == name and not bool(summary["diverged"])
    assert summary["max_test_acc"] > 80.0  # measured: dnc 90.0, signguard 95.3, fltrust 91.9


def test_the_sign_flip_attack_of_the_runs_above_defeats_the_mean(digits_cfg):
    from byzrun.train import run

    summary = run(digits_cfg("defense=mean", "m=3", "attack=sign_flip", "attack.scale=5.0", "rounds=30"))
    assert summary["max_test_acc"] < 50.0  # measured: 11.7
