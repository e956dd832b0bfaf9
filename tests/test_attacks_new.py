"""Min-max, min-sum, Fang, Mimic, the optimal factor of ALIE and IPM, and Gaussian's new options, each
against a float64 reference written from its paper (plain loops, brute force where it is a search),
on random inputs, ties, duplicated rows and one huge outlier, n from 3 to 51."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from test_attacks import CoordMedian, MeanRule, Rule, build

from byzrun.attacks import AttackContext
from byzrun.defenses import Krum, Median
from byzrun.errors import ConfigError
from byzrun.train import run
from tests.conftest import run_cli

F64 = torch.float64
KINDS = ["random", "ties", "duplicates", "outlier"]
# (n, m): the smallest n a Krum-like bound allows up to the paper tables' n
SIZES = [(3, 1), (7, 2), (11, 3), (51, 12)]


def honest_rows(kind: str, h: int, d: int = 9, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(h, d, generator=g, dtype=F64) + 0.4
    if kind == "ties":  # few distinct values: equal coordinates and equal distances
        x = torch.randint(-2, 3, (h, d), generator=g).to(F64)
    elif kind == "duplicates":
        x[h // 2 :] = x[: h - h // 2].clone()
    elif kind == "outlier":
        x[0] *= 1e6
    return x


def ctx_for(honest, m, defense=None, own=None):
    own = honest[:m].clone() if own is None else own
    n = honest.shape[0] + m
    return AttackContext(
        honest=honest, own=own, n=n, m=m, round=0, defense=defense or MeanRule(), model=None, lr=0.1
    )


# ---------------------------------------------------------------------------- min-max, min-sum


def paper_direction(x, kind):
    mu = x.mean(0)
    if kind == "unit_vec":
        return -mu / math.sqrt(sum(float(v) ** 2 for v in mu)) if bool(mu.any()) else torch.zeros_like(mu)
    if kind == "std":
        return -torch.tensor([float(np.std(x[:, j].numpy(), ddof=1)) for j in range(x.shape[1])], dtype=F64)
    return -torch.sign(mu)


def sq_dist(a, b):
    return float(((a - b) ** 2).sum())


def paper_constraint(x, rule):
    """The paper's O(γ) for min-max or min-sum as (left side of v, right side), every distance direct."""
    h = x.shape[0]
    pairs = [[sq_dist(x[i], x[j]) for j in range(h)] for i in range(h)]
    if rule == "minmax":
        return (lambda v: max(sq_dist(v, x[i]) for i in range(h))), max(max(row) for row in pairs)
    return (lambda v: sum(sq_dist(v, x[i]) for i in range(h))), max(sum(row) for row in pairs)


def paper_algorithm_1(x, rule, kind, gamma_init=10.0, tau=1e-5):
    mu, p = x.mean(0), paper_direction(x, kind)
    spread, limit = paper_constraint(x, rule)
    gamma, step, succ = gamma_init, gamma_init, 0.0
    while abs(succ - gamma) > tau:
        if spread(mu + gamma * p) <= limit:
            succ, gamma = gamma, gamma + step / 2
        else:
            gamma = gamma - step / 2
        step /= 2
    return succ, mu + succ * p


@pytest.mark.parametrize("rule", ["minmax", "minsum"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n,m", SIZES)
@pytest.mark.parametrize("direction", ["std", "unit_vec", "sign"])
def test_min_max_and_min_sum_follow_algorithm_1(rule, kind, n, m, direction):
    x = honest_rows(kind, n - m)
    attack = build(rule, n=n, m=m, direction=direction)
    out = attack(ctx_for(x, m))
    gamma, expected = paper_algorithm_1(x, rule, direction)
    assert attack.summary_fields()["gamma"] == pytest.approx(gamma, rel=1e-12, abs=1e-12)
    torch.testing.assert_close(out, expected.expand(m, -1), rtol=1e-12, atol=1e-12 * float(x.abs().max()))


@pytest.mark.parametrize("rule", ["minmax", "minsum"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n,m", SIZES)
def test_min_max_and_min_sum_gamma_is_the_largest_feasible_on_a_dense_grid(rule, kind, n, m):
    """The constraint holds at the returned γ, which lies within the search's tolerance (4τ: the last
    step is at most 2τ) below the largest γ of a fine grid where it holds (the feasible γ form an
    interval from 0), and a little more breaks it unless γ is capped at 2·gamma_init."""
    x = honest_rows(kind, n - m)
    tau = 1e-4
    attack = build(rule, n=n, m=m, tau=tau)
    out = attack(ctx_for(x, m))[0]
    gamma = attack.summary_fields()["gamma"]
    mu, p = x.mean(0), paper_direction(x, "std")
    spread, limit = paper_constraint(x, rule)
    assert spread(out) <= limit * (1 + 1e-12)
    grid = torch.linspace(0, 20, 2001, dtype=F64)
    V = mu + grid[:, None] * p  # every candidate vector, its distances to every honest vector directly
    d2 = ((V[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    lhs = d2.amax(1) if rule == "minmax" else d2.sum(1)
    feasible = grid[lhs <= limit].tolist()
    assert feasible[0] == 0.0 and feasible == grid[: len(feasible)].tolist()
    assert max(feasible) - 4 * tau <= gamma <= max(feasible) + 0.01
    if gamma < 20 - 4 * tau:
        assert spread(mu + (gamma + 4 * tau) * p) > limit


def test_min_max_keeps_its_distance_within_the_honest_maximum_and_min_sum_its_sum():
    x = honest_rows("random", 20, d=30, seed=3)
    D = torch.cdist(x, x) ** 2
    v = build("minmax", n=25, m=5)(ctx_for(x, 5))[0]
    assert float(((x - v) ** 2).sum(1).max()) <= float(D.max()) * (1 + 1e-12)
    w = build("minsum", n=25, m=5)(ctx_for(x, 5))[0]
    assert float(((x - w) ** 2).sum()) <= float(D.sum(1).max()) * (1 + 1e-12)
    # both move against the honest mean's std: far beyond a random honest vector, yet admissible
    assert float(torch.linalg.vector_norm(v - x.mean(0))) > float(x.std(0).norm())


def test_min_max_corrupted_knowledge_uses_only_the_corrupted_workers_gradients():
    x = honest_rows("random", 8)
    own = honest_rows("random", 4, seed=9)
    attack = build("minmax", n=12, m=4, knowledge="corrupted", direction="sign")
    out = attack(ctx_for(x, 4, own=own))
    _, expected = paper_algorithm_1(own, "minmax", "sign")
    torch.testing.assert_close(out[0], expected, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------- Fang, trimmed mean


def paper_trim_rows(x, u, b):
    """Fang et al.'s full-knowledge trimmed-mean attack, coordinate by coordinate."""
    k, d = u.shape
    out = torch.empty(k, d, dtype=F64)
    for j in range(d):
        col = x[:, j].tolist()
        lo_h, hi_h, mean = min(col), max(col), sum(col) / len(col)
        if mean > 0:  # the parameter decreases: values below the honest minimum
            lo, hi = (lo_h / b, lo_h) if lo_h > 0 else (b * lo_h, lo_h)
        else:  # values above the honest maximum
            lo, hi = (hi_h, b * hi_h) if hi_h > 0 else (hi_h, hi_h / b)
        for i in range(k):
            out[i, j] = lo + float(u[i, j]) * (hi - lo)
    return out


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n,m", SIZES)
@pytest.mark.parametrize("b", [2.0, 3.5])
def test_fang_trim_follows_the_paper_per_coordinate(kind, n, m, b):
    x = honest_rows(kind, n - m)
    attack = build("fang", n=n, m=m, variant="trim", b=b)
    torch.manual_seed(5)
    out = attack(ctx_for(x, m))
    torch.manual_seed(5)
    u = torch.rand(m, x.shape[1], dtype=F64)
    torch.testing.assert_close(out, paper_trim_rows(x, u, b), rtol=1e-12, atol=0.0)
    # outside the honest range, on the side opposite the honest update, within a factor b
    down = x.mean(0) > 0
    low, high = x.amin(0), x.amax(0)
    assert bool(torch.where(down, out <= low, out >= high).all())
    assert bool((out.abs() <= b * torch.maximum(low.abs(), high.abs())).all())


# ---------------------------------------------------------------------------- Fang, Krum


def paper_lambda_bound(x, n, m):
    h, d = x.shape
    dist = [[math.sqrt(sq_dist(x[i], x[j])) for j in range(h)] for i in range(h)]
    sums = [sum(sorted(dist[i][j] for j in range(h) if j != i)[: n - m - 2]) for i in range(h)]
    farthest = max(math.sqrt(float((x[i] ** 2).sum())) for i in range(h))
    return min(sums) / ((n - 2 * m - 1) * math.sqrt(d)) + farthest / math.sqrt(d)


def paper_krum_choice(G, f):
    """Blanchard et al.'s Krum from the direct pairwise differences: the lowest sum of squared
    distances to the n-f-2 nearest others (ties: the lower index)."""
    n = G.shape[0]
    D = ((G[:, None, :] - G[None, :, :]) ** 2).sum(-1).tolist()
    scores = [sum(sorted(D[i][j] for j in range(n) if j != i)[: max(1, n - f - 2)]) for i in range(n)]
    return min(range(n), key=lambda i: (scores[i], i))


def paper_fang_krum(x, m, threshold=1e-5):
    n = x.shape[0] + m
    s = -torch.sign(x.mean(0))
    lam = paper_lambda_bound(x, n, m)
    while True:
        G = torch.cat([x, (lam * s).expand(m, -1)])
        if lam < threshold or paper_krum_choice(G, m) >= x.shape[0]:
            return lam, lam * s
        lam /= 2


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n,m", [(5, 1), (7, 2), (11, 3), (51, 12)])
@pytest.mark.parametrize("defense", [Krum(), CoordMedian()], ids=["krum", "no_selection"])
def test_fang_krum_halves_lambda_from_the_paper_bound_until_krum_picks_it(kind, n, m, defense):
    x = honest_rows(kind, n - m)
    attack = build("fang", n=n, m=m, variant="krum")
    out = attack(ctx_for(x, m, defense=defense))
    lam, expected = paper_fang_krum(x, m)
    assert attack.summary_fields()["lambda"] == pytest.approx(lam, rel=1e-12)
    torch.testing.assert_close(out, expected.expand(m, -1), rtol=1e-12, atol=0.0)
    if lam >= 1e-5:  # found: Krum selects a crafted row
        assert paper_krum_choice(torch.cat([x, out]), m) >= n - m


def test_fang_krum_uses_the_servers_selection():
    class PickLast(Rule):  # keeps only the last row: a crafted one from the first λ on
        def select(self, G, f):
            return torch.tensor([G.shape[0] - 1])

        def __call__(self, G, f):
            return G[-1]

    x = honest_rows("random", 8)
    attack = build("fang", n=11, m=3)
    attack(ctx_for(x, 3, defense=PickLast()))
    assert attack.summary_fields()["lambda"] == pytest.approx(paper_lambda_bound(x, 11, 3), rel=1e-12)


# ---------------------------------------------------------------------------- Mimic


def paper_mimic_choices(rounds_of_honest, warmup):
    """The warm-up heuristic of Karimireddy et al.'s code, one worker and one coordinate at a time."""
    choices, mu, z = [], None, None
    for t, x in enumerate(rounds_of_honest):
        h, d = x.shape
        mean = x.mean(0)
        if t < warmup:
            mu = mean if t == 0 else t / (t + 1) * mu + mean / (t + 1)
            z_in = torch.randn(d, generator=torch.Generator().manual_seed(0), dtype=F64) if t == 0 else z
            v = sum(float((x[i] - mu) @ z_in) * (x[i] - mu) for i in range(h))
            v = v / v.norm()
            z = v if t == 0 else t / (t + 1) * z + v / (t + 1)
            z = z / z.norm()
            dots = [float(x[i] @ z) for i in range(h)]
            choices.append(max(range(h), key=lambda i: (dots[i], -i)))
        else:
            choices.append(choices[-1])
    return choices


@pytest.mark.parametrize("warmup", [1, 3])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n,m", SIZES)
def test_mimic_warmup_follows_the_papers_code(warmup, kind, n, m):
    rounds = [honest_rows(kind, n - m, seed=s) for s in range(5)]
    attack = build("mimic", n=n, m=m, warmup=warmup)
    chosen = []
    for x in rounds:
        out = attack(ctx_for(x, m))
        chosen.append(attack.summary_fields()["mimic_target"])
        torch.testing.assert_close(out, x[chosen[-1]].expand(m, -1), rtol=0, atol=0)
    assert chosen == paper_mimic_choices(rounds, warmup)
    assert len(set(chosen[warmup - 1 :])) == 1  # fixed after the warm-up


def test_mimic_warmup_picks_the_extreme_worker_along_the_direction_of_largest_variance():
    g = torch.Generator().manual_seed(1)
    spread = torch.tensor([0.0, -1.0, 4.0, 0.5, -0.3, 1.0, -4.5], dtype=F64)
    x = 0.01 * torch.randn(7, 20, generator=g, dtype=F64)
    x[:, 3] += spread  # coordinate 3 carries almost all of the variance
    attack = build("mimic", n=9, m=2)
    attack(ctx_for(x, 2))
    z = attack.z
    assert abs(float(z[3])) > 0.99  # the power step found the direction
    # the farthest worker along z: 2 (+4) or 6 (-4.5), whichever way z points
    assert attack.chosen == (2 if float(z[3]) > 0 else 6)


def test_mimic_fixed_target_and_a_fresh_run_restarts_the_warmup():
    x = honest_rows("random", 6)
    out = build("mimic", n=8, m=2, target=4)(ctx_for(x, 2))
    assert torch.equal(out, x[4].expand(2, -1))
    first = build("mimic", n=8, m=2, warmup=1)
    first(ctx_for(x, 2))
    again = build("mimic", n=8, m=2, warmup=1)
    assert again.rounds == 0 and again.z is None
    again(ctx_for(x, 2))
    assert again.chosen == first.chosen


# ---------------------------------------------------------------------------- optimal factor


def byzfl_line_search(distance, evals=20, start=0.0, delta=10.0, ratio=0.8):
    """ByzFL's expansion then contraction, as its documentation describes it, in plain floats."""
    best_x, best_y = start, distance(start)
    remaining = evals - 1
    while remaining > 0:
        x = best_x + delta
        y = distance(x)
        remaining -= 1
        if y > best_y:
            best_x, best_y, delta = x, y, delta * 2
        else:
            delta *= ratio
            break
    while remaining > 0:
        x = best_x + delta
        y = distance(x)
        remaining -= 1
        if y > best_y:
            best_x, best_y = x, y
        delta *= ratio
    return best_x


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n,m", SIZES)
@pytest.mark.parametrize("defense", [CoordMedian(), MeanRule()], ids=["median", "mean"])
def test_optimal_alie_and_ipm_follow_byzfls_line_search(kind, n, m, defense):
    x = honest_rows(kind, n - m)
    mu, sigma = x.mean(0), x.std(0, correction=1)

    def distance_for(row_of):
        def distance(c):
            G = torch.cat([x, row_of(c).expand(m, -1)])
            return float(torch.linalg.vector_norm(defense(G, m) - mu))

        return distance

    z = byzfl_line_search(distance_for(lambda c: mu + c * sigma))
    alie = build("alie", n=n, m=m, factor="optimal", knowledge="omniscient", std="unbiased", direction="plus")
    out = alie(ctx_for(x, m, defense=defense))
    assert alie.summary_fields() == {"z": pytest.approx(z, rel=1e-12), "z_mode": "optimal"}
    torch.testing.assert_close(out[0], mu + z * sigma, rtol=1e-12, atol=0.0)
    eps = byzfl_line_search(distance_for(lambda c: -c * mu))
    ipm = build("ipm", n=n, m=m, factor="optimal")
    out = ipm(ctx_for(x, m, defense=defense))
    assert ipm.eval_metrics()["factor"] == pytest.approx(eps, rel=1e-12)
    torch.testing.assert_close(out[0], -eps * mu, rtol=1e-12, atol=0.0)
    if isinstance(defense, MeanRule):  # the mean moves linearly: the search keeps growing
        assert z > 1000 or not bool(sigma.any())
        assert eps > 1000 or not bool(mu.any())


# ---------------------------------------------------------------------------- Gaussian


@pytest.mark.parametrize("shared", [False, True])
def test_gaussian_number_center_and_shared_rows(shared):
    ctx = ctx_for(honest_rows("random", 8, d=20000), 3)
    attack = build("gaussian", sigma=3.0, center=-1.5, shared=shared)
    torch.manual_seed(4)
    out = attack(ctx)
    torch.manual_seed(4)
    noise = torch.randn((20000,) if shared else (3, 20000), dtype=F64)
    torch.testing.assert_close(out, (-1.5 + 3.0 * noise).expand(3, -1), rtol=0, atol=0)
    assert torch.equal(out[0], out[2]) == shared
    assert float(out.mean()) == pytest.approx(-1.5, abs=0.1) and float(out[0].std()) == pytest.approx(
        3, rel=0.03
    )


# ---------------------------------------------------------------------------- validation, runs


@pytest.mark.parametrize(
    "name,options,message",
    [
        ("minmax", {"direction": "up"}, "attack.direction='up' is unknown"),
        ("minmax", {"gamma_init": 0}, "attack.gamma_init must be > 0"),
        ("minsum", {"tau": -1}, "attack.tau must be a number >= 0.0"),
        ("minsum", {"tau": 0}, "attack.tau must be > 0"),
        ("minsum", {"knowledge": "corrupted"}, "sees 1 vector(s)"),
        ("minmax", {"knowledge": "all"}, "attack.knowledge='all' is unknown"),
        ("fang", {"variant": "median"}, "attack.variant='median' is unknown"),
        ("fang", {"b": 1}, "attack.b must be > 1"),
        ("fang", {"threshold": 0}, "attack.threshold must be > 0"),
        ("mimic", {"target": 9}, "attack.target must be warmup or an honest worker's index in [0, 8]"),
        ("mimic", {"target": "first"}, "attack.target must be warmup or"),
        ("mimic", {"warmup": 0}, "attack.warmup must be an integer >= 1"),
        ("gaussian", {"center": "median"}, "attack.center='median' is unknown; choose one of zero"),
        ("gaussian", {"shared": "yes"}, "attack.shared must be true or false"),
        ("alie", {"factor": "optimum"}, "attack.factor must be a number >= 0 or auto or search or optimal"),
        ("ipm", {"epsilon": "best"}, "attack.epsilon must be a number >= 0 or search or optimal"),
    ],
)
def test_invalid_new_options_give_one_clear_line(name, options, message):
    with pytest.raises(ConfigError) as info:
        build(name, n=12, m=3 if name != "minsum" else 1, **options)
    text = str(info.value)
    assert message in text and "\n" not in text


@pytest.mark.parametrize(
    "override,message",
    [
        (
            "attack=mimic attack.target=11",
            "attack.target must be warmup or an honest worker's index in [0, 7]",
        ),
        ("attack=minmax attack.direction=down", "attack.direction='down' is unknown"),
        ("attack=fang m=5", "attack.variant=krum needs n >= 2m+2"),
        ("attack=gaussian attack.shared=maybe", "attack.shared must be true or false"),
        ("attack=ipm attack.factor=optimum", "attack.factor must be a number >= 0 or search or optimal"),
    ],
)
def test_new_options_fail_on_the_command_line_before_any_data_is_read(
    monkeypatch, capsys, tmp_path, override, message
):
    import byzrun.train

    def no_data(*args, **kwargs):
        raise AssertionError("data was read before the options were checked")

    monkeypatch.setattr(byzrun.train, "load_data", no_data)
    args = ["dataset=digits", "n=11", "m=3", f"results_dir={tmp_path}", *override.split()]
    assert run_cli(monkeypatch, *args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("byzrun: error: ") and message in err and "\n" not in err


def test_fang_krum_needs_the_papers_bound_before_any_data():
    with pytest.raises(ConfigError, match="needs n >= 2m\\+2"):
        build("fang", n=8, m=4, data=None)
    build("fang", n=8, m=4, variant="trim")


@pytest.mark.parametrize(
    "attack",
    [
        ["attack=minmax"],
        ["attack=minsum", "attack.direction=unit_vec"],
        ["attack=fang", "defense=krum"],
        ["attack=fang", "attack.variant=trim", "defense=trimmed_mean"],
        ["attack=mimic", "sampling=shards"],
        ["attack=alie", "attack.factor=optimal", "defense=median"],
        ["attack=ipm", "attack.factor=optimal", "defense=median"],
        ["attack=gaussian", "attack.shared=true", "attack.center=0.5"],
    ],
    ids=["minmax", "minsum", "fang_krum", "fang_trim", "mimic", "alie_optimal", "ipm_optimal", "gaussian"],
)
def test_one_round_digits_run(digits_cfg, attack):
    summary = run(digits_cfg("rounds=1", "m=3", *attack))
    assert summary["rounds"] == 1 and math.isfinite(summary["final_test_acc"])


def test_fang_trim_drags_the_median_against_the_honest_update():
    x = honest_rows("random", 8)
    attack = build("fang", n=11, m=3, variant="trim")
    G = torch.cat([x, attack(ctx_for(x, 3))])
    shift = Median()(G, 3) - Median()(x, 0)
    assert bool((torch.sign(shift) == -torch.sign(x.mean(0))).all())
