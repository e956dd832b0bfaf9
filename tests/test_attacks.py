"""Attacks against their formulas, the adaptive search against brute force, diagnostics, validation."""

from __future__ import annotations

import inspect
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CONF_DIR, make_cfg
from omegaconf import OmegaConf

from byzrun import attacks, diagnostics
from byzrun.attacks import ATTACKS, AttackContext
from byzrun.attacks.stats import mean_std, z_max
from byzrun.build import build_attack
from byzrun.data import Data
from byzrun.defenses import Defense
from byzrun.errors import ConfigError
from byzrun.flat_model import FlatModel
from byzrun.models import build_model
from byzrun.preaggregation import Pipeline

CPU = torch.device("cpu")
ATTACK_YAMLS = sorted(p.stem for p in (Path(CONF_DIR) / "attack").glob("*.yaml"))
# YAMLs that preset a registered attack the way a paper's code runs it (Distributed Momentum paper)
ATTACK_PRESETS = {
    "little": "alie",
    "empire": "ipm",
    "alie_backdoor_code": "alie_backdoor",
    # the robustness benchmark's names for searched factors and Fang's trimmed-mean variant
    "alie_optimal": "alie",
    "ipm_optimal": "ipm",
    "fang_trim": "fang",
    # ByzFL's SignFlipping and Optimal_ALittleIsEnough (its example benchmark)
    "sign_flipping_mean": "ipm",
    "alie_optimal_plus": "alie",
}
ATTACK_NAMES = [name for name in ATTACK_YAMLS if name not in ATTACK_PRESETS]


class Rule(Defense):
    """Test rules with the Defense interface, independent of the options of byzrun's own rules."""

    def __init__(self):
        pass


class MeanRule(Rule):
    def __call__(self, G, f):
        return G.mean(dim=0)


class CoordMedian(Rule):
    """Coordinate-wise lower median (enough of a robust rule for the search tests)."""

    def __call__(self, G, f):
        return G.median(dim=0).values


class PickRows(Rule):
    """A selection rule that keeps fixed rows and averages them."""

    def __init__(self, rows):
        self.rows = rows

    def select(self, G, f):
        return torch.tensor(self.rows)

    def __call__(self, G, f):
        return G[self.select(G, f)].mean(0)


def make_ctx(h=8, m=3, d=40, dtype=torch.float32, defense=None, model=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    honest = (torch.randn(h, d, generator=g, dtype=torch.float64) + 0.3).to(dtype)
    own = (torch.randn(m, d, generator=g, dtype=torch.float64) + 0.3).to(dtype)
    return AttackContext(
        honest=honest, own=own, n=h + m, m=m, round=0, defense=defense or MeanRule(), model=model, lr=0.1
    )


def tiny_data(seed=0) -> Data:
    """10 classes of 8x8 images: a fixed random template per class plus noise; the trigger area
    (upper-left 3x3) is blank in every template. mean 0.1, std 0.3 make pixel_max = 3."""
    g = torch.Generator().manual_seed(seed)
    templates = torch.randn(10, 1, 8, 8, generator=g)
    templates[:, :, :3, :3] = 0

    def draw(k):
        y = torch.randint(10, (k,), generator=g)
        return templates[y] + 0.3 * torch.randn(k, 1, 8, 8, generator=g), y

    (train_x, train_y), (test_x, test_y) = draw(1000), draw(300)
    return Data(
        "synthetic", train_x, train_y, test_x, test_y, 10, torch.tensor([0.1]), torch.tensor([0.3]), False
    )


def tiny_model(dtype=torch.float32, seed=0) -> FlatModel:
    torch.manual_seed(seed)
    return FlatModel(build_model("mlp", (1, 8, 8), 10).to(dtype), CPU)


def build(name, n=11, m=3, data=None, **options):
    attack = ATTACKS.get(name)(**options)
    attack.validate(n=n, m=m, data=data if data is not None else tiny_data())
    return attack


# ---------------------------------------------------------------------------- z_max


def phi(z):
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def z_max_by_bisection(n, m):
    s = math.floor(n / 2 + 1) - m
    p = (n - m - s) / (n - m)
    lo, hi = -10.0, 10.0
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if phi(mid) < p else (lo, mid)
    return lo


@pytest.mark.parametrize("n,m", [(50, 24), (51, 12), (51, 24), (11, 3), (25, 11), (100, 30), (7, 2)])
def test_z_max_matches_an_independent_bisection(n, m):
    assert z_max(n, m) == pytest.approx(z_max_by_bisection(n, m), abs=1e-9)


def test_z_max_worked_example_of_the_paper():
    assert math.floor(50 / 2 + 1) - 24 == 2
    assert round(z_max(50, 24), 2) == 1.43
    attack = build("alie", n=50, m=24, factor="auto")
    assert attack.summary_fields() == {"z": pytest.approx(z_max_by_bisection(50, 24)), "z_mode": "auto"}


@pytest.mark.parametrize("n,m", [(10, 1), (10, 6), (51, 30)])
def test_z_auto_outside_algorithm_3_is_a_config_error(n, m):
    with pytest.raises(ConfigError, match="auto gives z_max"):
        build("alie", n=n, m=m, z="auto")


# ---------------------------------------------------------------------------- ALIE


@pytest.mark.parametrize("knowledge", ["corrupted", "omniscient"])
@pytest.mark.parametrize("std,correction", [("population", 0), ("unbiased", 1)])
@pytest.mark.parametrize("direction,sign", [("minus", -1), ("plus", 1)])
def test_alie_vector_matches_its_formula(knowledge, std, correction, direction, sign):
    ctx = make_ctx()
    attack = build("alie", z=1.5, knowledge=knowledge, std=std, direction=direction)
    seen = ctx.own if knowledge == "corrupted" else ctx.honest
    expected = seen.mean(0) + sign * 1.5 * seen.std(0, correction=correction)
    out = attack(ctx)
    torch.testing.assert_close(out, expected.expand(3, -1))
    assert attack.summary_fields()["z"] == 1.5


@pytest.mark.parametrize("k", [1, 2, 5, 12, 39])
def test_mean_std_is_the_float64_mean_and_standard_deviation(k):
    """Two passes (mean, then squared deviations) in float32: within float32 rounding of the float64
    values, population (divide by k) and unbiased (k - 1); one row: sigma exactly 0, mu the row."""
    g = torch.Generator().manual_seed(k)
    x = 0.1 * torch.randn(d := 5000, generator=g) + 0.01 * torch.randn(k, d, generator=g)
    x64 = x.double()
    for std, c in [("population", 0), ("unbiased", 1)] if k > 1 else [("population", 0)]:
        mu, sigma = mean_std(x, std)
        assert mu.dtype == sigma.dtype == torch.float32
        mu64 = x64.sum(0) / k
        sigma64 = (((x64 - mu64) ** 2).sum(0) / (k - c)).sqrt()
        eps = k * torch.finfo(torch.float32).eps  # float32 sums of k terms, on values of size ~0.1
        torch.testing.assert_close(mu.double(), mu64, rtol=eps, atol=0.1 * eps)
        torch.testing.assert_close(sigma.double(), sigma64, rtol=4 * eps, atol=0.01 * eps)
    if k == 1:
        assert torch.equal(mu, x[0]) and torch.equal(sigma, torch.zeros(d))


def test_alie_z_alias_overrides_factor_and_auto_uses_z_max():
    ctx = make_ctx(h=39, m=12)
    attack = build("alie", n=51, m=12, factor=3.0, z="auto")
    sigma, mu = torch.std_mean(ctx.own, 0, correction=0)
    torch.testing.assert_close(attack(ctx)[0], mu - z_max_by_bisection(51, 12) * sigma)


def test_alie_with_one_corrupted_worker_sends_its_own_gradient():
    ctx = make_ctx(m=1)
    torch.testing.assert_close(build("alie", m=1)(ctx), ctx.own)


# ---------------------------------------------------------------------------- backdoor


def backdoor_ctx(model, m=4, seed=0, lr=0.1):
    g = torch.Generator().manual_seed(seed)
    dt = model.theta.dtype
    honest = torch.randn(7, model.d, generator=g, dtype=torch.float64).to(dt) * 0.05
    own = torch.randn(m, model.d, generator=g, dtype=torch.float64).to(dt) * 0.05
    return AttackContext(
        honest=honest, own=own, n=7 + m, m=m, round=0, defense=MeanRule(), model=model, lr=lr
    )


def test_backdoor_stays_within_its_clipping_bound():
    model, data = tiny_model(), tiny_data()
    ctx = backdoor_ctx(model)
    attack = build("alie_backdoor", m=4, data=data, samples=100, local_steps=3, trigger_size=3)
    out = attack(ctx)
    mu, sigma = mean_std(ctx.own, "population")  # the attack's own estimate, to the bit: the clip's bound
    lo, hi = mu - 0.2 * sigma, mu + 0.2 * sigma
    assert out.shape == (4, model.d) and torch.equal(out[0], out[3])
    assert bool(((out[0] >= lo) & (out[0] <= hi)).all())
    at_bound = (out[0] == lo) | (out[0] == hi)
    assert 0 < int(at_bound.sum()) < model.d  # the clip is active, and not everywhere
    assert attack.summary_fields() == {"z": 0.2, "alpha": 0.2}


def test_backdoor_trigger_sets_the_upper_left_pixels_to_maximal_intensity():
    data = tiny_data()
    attack = build("alie_backdoor", data=data)
    x = attack.trigger.apply(data.test_x[:4], data)
    torch.testing.assert_close(x[:, :, :5, :5], torch.full((4, 1, 5, 5), 3.0))
    torch.testing.assert_close(x[:, :, 5:, :], data.test_x[:4, :, 5:, :])
    torch.testing.assert_close(x[:, :, :, 5:], data.test_x[:4, :, :, 5:])


def test_backdoor_accuracy_is_low_on_a_clean_model_and_high_once_the_attack_is_applied():
    data, model = tiny_data(), tiny_model()
    loss_grad = torch.func.grad(model.loss)
    for _ in range(150):  # learn the clean task first
        model.theta.sub_(0.5 * loss_grad(model.theta, data.train_x, data.train_y))
    acc, _ = model.evaluate(data.test_x, data.test_y)
    assert acc > 90
    attack = build(
        "alie_backdoor",
        m=4,
        data=data,
        trigger_size=3,
        z=1e6,
        alpha=0.9,
        samples=300,
        local_steps=60,
        local_lr=0.5,
    )
    before = attack.eval_metrics(model)["backdoor_acc"]
    assert before < 15
    # z so large that nothing is clipped: one server step along the attack's gradient lands on V
    row = attack(backdoor_ctx(model))[0]
    model.theta.sub_(0.1 * row)  # the context's server lr
    assert attack.eval_metrics(model)["backdoor_acc"] > 90


def test_backdoor_batches_and_momentum_run():
    model, data = tiny_model(), tiny_data()
    attack = build(
        "alie_backdoor",
        m=4,
        data=data,
        trigger_size=2,
        samples=50,
        local_steps=2,
        batch_size=20,
        local_momentum=0.9,
        weight_decay=1e-4,
    )
    out = attack(backdoor_ctx(model))
    assert out.shape == (4, model.d) and bool(torch.isfinite(out).all())


def test_backdoor_code_distance_is_the_sum_of_each_tensors_mse():
    model, data = tiny_model(), tiny_data()
    start = model.theta.clone()
    v = start + torch.linspace(0, 1, model.d)
    expected = sum(
        ((v_t - s_t) ** 2).mean()
        for v_t, s_t in zip(model.unflatten(v).values(), model.unflatten(start).values())
    )
    code = build("alie_backdoor", data=data, convention="alie_code", trigger_size=3)
    paper = build("alie_backdoor", data=data, trigger_size=3)
    torch.testing.assert_close(code.distance(model, v, start), expected)
    torch.testing.assert_close(paper.distance(model, v, start), ((v - start) ** 2).mean())
    assert len(model.numels) > 1 and not torch.isclose(expected, ((v - start) ** 2).mean())


@pytest.mark.parametrize("convention", ["paper", "alie_code"])
def test_backdoor_untrained_attacker_sends_the_formula_of_its_convention(convention):
    """With no local step V = V_0 = theta - lr*mu: the paper's conversion gives back mu, the code's
    (V_0 - (V + lr*mu))/lr gives -mu, clipped into [mu - z sigma, mu + z sigma]."""
    model, data = tiny_model(), tiny_data()
    ctx = backdoor_ctx(model, lr=0.1)
    attack = build("alie_backdoor", m=4, data=data, local_steps=0, trigger_size=3, convention=convention)
    sigma, mu = torch.std_mean(ctx.own, 0, correction=0)
    g = mu if convention == "paper" else -mu
    expected = torch.minimum(torch.maximum(g, mu - 0.2 * sigma), mu + 0.2 * sigma)
    torch.testing.assert_close(attack(ctx)[0], expected, atol=1e-6, rtol=1e-5)


def test_backdoor_code_convention_keeps_one_sample_set_and_stops_training_once_learnt():
    model, data = tiny_model(), tiny_data()
    attack = build("alie_backdoor", m=4, data=data, samples=40, trigger_size=3, convention="alie_code")
    first = attack.own_set.clone()
    attack(backdoor_ctx(model))
    assert torch.equal(attack.own_set, first) and attack.name == "alie_backdoor_code"
    # a model that maps every triggered image to the target: the code skips training (V = V_0)
    attack.own_accuracy = lambda model, theta=None: 100.0
    start = model.theta - 0.1
    torch.testing.assert_close(attack.train(model, start, 0.1), start)


def test_backdoor_reports_both_accuracies():
    model, data = tiny_model(), tiny_data()
    attack = build("alie_backdoor", data=data, samples=60, trigger_size=3)
    metrics = attack.eval_metrics(model)
    x = attack.trigger.apply(data.train_x[attack.own_set], data)
    own = (model.predict(x).argmax(1) == 0).float().mean().item() * 100
    assert set(metrics) == {"backdoor_acc", "backdoor_acc_own"}
    assert metrics["backdoor_acc_own"] == pytest.approx(own)


# ---------------------------------------------------------------------------- the simpler attacks


@pytest.mark.parametrize("knowledge", ["omniscient", "corrupted"])
def test_ipm_is_minus_epsilon_times_the_mean(knowledge):
    ctx = make_ctx()
    seen = ctx.honest if knowledge == "omniscient" else ctx.own
    out = build("ipm", epsilon=0.1, knowledge=knowledge)(ctx)
    torch.testing.assert_close(out, (-0.1 * seen.mean(0)).expand(3, -1))
    # the Distributed Momentum code's form, mean + 1.1 * (-mean), is the same vector
    if knowledge == "omniscient":
        mean = ctx.honest.mean(0)
        torch.testing.assert_close(out[0], mean + 1.1 * (-mean))


def test_sign_flip_reverses_and_scales_own_gradients():
    ctx = make_ctx()
    torch.testing.assert_close(build("sign_flip", scale=2.5)(ctx), -2.5 * ctx.own)


def test_gaussian_noise_formula_and_centers():
    ctx = make_ctx(d=20000)
    for center, mean in [("zero", 0.0), ("own_mean", ctx.own.mean(0)), ("honest_mean", ctx.honest.mean(0))]:
        attack = build("gaussian", sigma=7.0, center=center)
        torch.manual_seed(3)
        out = attack(ctx)
        torch.manual_seed(3)
        torch.testing.assert_close(out, 7.0 * torch.randn(3, 20000) + mean)
        assert (out - mean).std().item() == pytest.approx(7.0, rel=0.02)


def test_label_flip_flips_labels_and_sends_the_resulting_gradients():
    data = tiny_data()
    attack = build("label_flip", data=data)
    x, y = torch.randn(3, 4, 1, 8, 8), torch.tensor([[0, 1, 2, 9]] * 3)
    x2, y2 = attack.poison_batch(x, y, data)
    assert torch.equal(x2, x) and torch.equal(y2, torch.tensor([[9, 8, 7, 0]] * 3))
    ctx = make_ctx()
    assert torch.equal(attack(ctx), ctx.own)


def test_non_finite_rows():
    ctx = make_ctx()
    assert bool(build("non_finite")(ctx).isnan().all())
    assert bool((build("non_finite", value=math.inf)(ctx) == math.inf).all())
    assert bool((build("non_finite", value=-math.inf)(ctx) == -math.inf).all())


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_value_parses_from_the_command_line(value):
    attack = build_attack(make_cfg("attack=non_finite", f"attack.value={value}").attack)
    assert repr(attack.value) == repr(float(value))


@pytest.mark.parametrize("direction,sign", [("plus", 1), ("minus", -1)])
def test_hidden_vulnerability_formulas(direction, sign):
    ctx = make_ctx()
    mean = ctx.honest.mean(0)
    sigma = ctx.honest.std(0, correction=0)
    e = torch.zeros(40)
    e[7] = 1
    out = build("hidden_vulnerability", factor=5.0, coordinate=7, unit="absolute", direction=direction)(ctx)
    torch.testing.assert_close(out, (mean + sign * 5.0 * e).expand(3, -1))
    out = build("hidden_vulnerability", factor=5.0, coordinate="all", unit="absolute", direction=direction)(
        ctx
    )
    torch.testing.assert_close(out[0], mean + sign * 5.0)
    # std_norm: the deviation has norm factor * ||sigma||, on one coordinate or spread evenly
    out = build("hidden_vulnerability", factor=2.0, coordinate=-1, direction=direction)(ctx)
    expected = mean.clone()
    expected[-1] += sign * 2.0 * sigma.norm()
    torch.testing.assert_close(out[0], expected)
    out = build("hidden_vulnerability", factor=2.0, coordinate="all", direction=direction)(ctx)
    torch.testing.assert_close(out[0], mean + sign * 2.0 * sigma.norm() / math.sqrt(40))


def test_hidden_vulnerability_coordinate_outside_the_model_is_a_config_error():
    with pytest.raises(ConfigError, match="outside the model's 40 parameters"):
        build("hidden_vulnerability", factor=1.0, coordinate=40)(make_ctx())


# ---------------------------------------------------------------------------- shape, device, dtype


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", ATTACKS.names())
def test_every_attack_returns_m_rows_of_the_inputs_dtype_and_device(name, dtype):
    data = tiny_data()
    model = tiny_model(dtype)
    small = {"alie_backdoor": {"samples": 50, "local_steps": 1}}.get(name, {})
    attack = build(name, n=11, m=3, data=data, **small)
    g = torch.Generator().manual_seed(1)
    honest = torch.randn(8, model.d, generator=g, dtype=torch.float64).to(dtype)
    own = torch.randn(3, model.d, generator=g, dtype=torch.float64).to(dtype)
    ctx = AttackContext(
        honest=honest, own=own, n=11, m=3, round=0, defense=CoordMedian(), model=model, lr=0.1
    )
    out = attack(ctx)
    assert out.shape == (3, model.d) and out.dtype == dtype and out.device == own.device
    # a matrix, or m copies of one row as a broadcast view (stride 0): the round copies either into G
    assert out.is_contiguous() or (out.stride(0) == 0 and out[0].is_contiguous())


# ---------------------------------------------------------------------------- adaptive search


def brute_force(ctx, candidates, rows_for):
    """The factor whose aggregate lies farthest from the honest mean, one plain loop."""
    best, best_dist = None, -1.0
    for c in candidates:
        G = torch.cat([ctx.honest, rows_for(c)] + ([ctx.others] if ctx.others is not None else []))
        dist = (ctx.defense(G, ctx.declared_f) - ctx.honest.mean(0)).norm().item()
        if dist > best_dist:
            best, best_dist = c, dist
    return best


@pytest.mark.parametrize("defense", [CoordMedian(), MeanRule()], ids=["median", "mean"])
@pytest.mark.parametrize("knowledge", ["corrupted", "omniscient"])
def test_alie_search_picks_the_farthest_candidate(defense, knowledge):
    ctx = make_ctx(h=12, m=5, d=60, defense=defense)
    attack = build("alie", n=17, m=5, factor="search", knowledge=knowledge)
    seen = ctx.own if knowledge == "corrupted" else ctx.honest
    sigma, mu = torch.std_mean(seen, 0, correction=0)
    candidates = np.geomspace(0.1, 10.0, 12)
    best = brute_force(ctx, candidates, lambda c: (mu - c * sigma).expand(5, -1))
    out = attack(ctx)
    assert attack.eval_metrics()["factor"] == pytest.approx(best)
    torch.testing.assert_close(out[0], mu - best * sigma)
    if isinstance(defense, MeanRule):  # the mean moves linearly: the largest candidate wins
        assert best == pytest.approx(10.0)
    assert attack.summary_fields() == {"z": pytest.approx(best), "z_mode": "search"}


def test_ipm_search_picks_the_farthest_candidate_on_a_linear_grid():
    ctx = make_ctx(h=12, m=5, d=60, defense=CoordMedian())
    attack = build(
        "ipm", n=17, m=5, factor="search", search_range=[0.0, 5.0], search_points=9, search_scale="linear"
    )
    mean = ctx.honest.mean(0)
    best = brute_force(ctx, np.linspace(0.0, 5.0, 9), lambda c: (-c * mean).expand(5, -1))
    out = attack(ctx)
    assert attack.eval_metrics()["factor"] == pytest.approx(best)
    torch.testing.assert_close(out[0], -best * mean)


def test_hidden_vulnerability_search_against_a_selection_rule():
    class Closest(Rule):  # selects the row nearest to the coordinate-wise median
        def __call__(self, G, f):
            med = G.median(0).values
            return G[(G - med).norm(dim=1).argmin()]  # a view of G, as a Krum may return

    ctx = make_ctx(h=12, m=5, d=60, defense=Closest())
    attack = build("hidden_vulnerability", n=17, m=5, coordinate=3)
    mean, sigma = ctx.honest.mean(0), ctx.honest.std(0, correction=0)
    e = torch.zeros(60)
    e[3] = sigma.norm()
    best = brute_force(ctx, np.geomspace(0.1, 100.0, 12), lambda c: (mean + c * e).expand(5, -1))
    attack(ctx)
    assert attack.eval_metrics()["factor"] == pytest.approx(best)
    assert best < 100.0  # beyond the budget the rule stops selecting the Byzantine rows


# ---------------------------------------------------------------------------- hybrid


def test_hybrid_splits_the_byzantine_rows_between_two_attacks():
    ctx = make_ctx(h=8, m=4)
    attack = build("hybrid", m=4, main="alie", other="sign_flip", other_workers=1, main_options={"z": 1.0})
    out = attack(ctx)
    sigma, mu = torch.std_mean(ctx.own[:3], 0, correction=0)
    torch.testing.assert_close(out[:3], (mu - sigma).expand(3, -1))
    torch.testing.assert_close(out[3], -ctx.own[3])
    fields = attack.summary_fields()
    assert fields["hybrid_main"] == "alie" and fields["z"] == 1.0 and fields["other_scale"] == 1.0


def test_hybrid_search_sees_the_other_workers_rows_and_the_servers_f():
    ctx = make_ctx(h=12, m=5, d=60, defense=CoordMedian())
    attack = build(
        "hybrid", n=17, m=5, main="ipm", other="sign_flip", other_workers=2, main_options={"factor": "search"}
    )
    out = attack(ctx)
    mean = ctx.honest.mean(0)
    others = -ctx.own[3:]
    ctx_full = AttackContext(ctx.honest, ctx.own[:3], 17, 3, 0, ctx.defense, None, 0.1, others=others, f=5)
    best = brute_force(ctx_full, np.geomspace(0.01, 100.0, 12), lambda c: (-c * mean).expand(3, -1))
    assert attack.eval_metrics(None)["factor"] == pytest.approx(best)
    torch.testing.assert_close(out[3:], others)


def test_hybrid_poisons_only_its_parts_batches():
    data = tiny_data()
    attack = build("hybrid", m=3, data=data, main="alie", other="label_flip", other_workers=1)
    y = torch.zeros(3, 5, dtype=torch.long)
    _, y2 = attack.poison_batch(torch.zeros(3, 5, 1, 8, 8), y, data)
    assert torch.equal(y2[:2], y[:2]) and bool((y2[2] == 9).all())


def test_hybrid_composes_from_the_command_line():
    cfg = make_cfg(
        "attack=hybrid", "attack.main=alie_backdoor", "+attack.main_options.samples=20", "attack.other=ipm"
    )
    attack = build_attack(cfg.attack)
    attack.validate(n=11, m=3, data=tiny_data())
    assert attack.parts["main"].samples == 20 and attack.parts["other"].name == "ipm"
    assert "backdoor_acc" in attack.eval_metrics(tiny_model())


# ---------------------------------------------------------------------------- configs


@pytest.mark.parametrize("name", ATTACK_NAMES)
def test_every_attack_yaml_instantiates_with_the_class_defaults(name):
    cfg = make_cfg(f"attack={name}")
    attack = build_attack(cfg.attack)
    assert isinstance(attack, attacks.Attack) and attack.name == name and ATTACKS.get(name) is type(attack)
    # hybrid builds its parts from the classes, so their defaults must be the YAML's
    yaml = OmegaConf.to_container(OmegaConf.load(Path(CONF_DIR) / "attack" / f"{name}.yaml"))
    yaml.pop("_target_")
    params = inspect.signature(type(attack)).parameters
    assert set(yaml) == set(params)
    for key, value in yaml.items():
        default = params[key].default
        default = list(default) if isinstance(default, tuple) else default
        default = {} if default is None and value == {} else default  # no mutable defaults in Python
        same = value == default or (value != value and default != default)  # NaN equals NaN here
        assert same, f"{name}.{key}: YAML {value!r} != class default {default!r}"
    attack.validate(n=11, m=3, data=tiny_data())


def test_every_registered_attack_has_a_yaml():
    assert ATTACKS.names() == ATTACK_NAMES


def test_the_distributed_momentum_presets_are_its_code_settings():
    little = build_attack(make_cfg("attack=little").attack)
    expected = ("alie", 1.5, "omniscient", "unbiased")
    assert (little.name, little.factor, little.knowledge, little.std) == expected
    empire = build_attack(make_cfg("attack=empire").attack)
    # the code's factor 1.1 on "honest mean + factor * (-honest mean)" is epsilon = 0.1
    assert (empire.name, empire.factor, empire.knowledge) == ("ipm", 0.1, "omniscient")


# ---------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "name,options,message",
    [
        ("alie", {"z": -1}, "attack.z must be a number >= 0 or auto or search"),
        ("alie", {"factor": "big"}, "attack.factor must be"),
        ("alie", {"knowledge": "psychic"}, "attack.knowledge='psychic' is unknown"),
        ("alie", {"std": "sample"}, "attack.std='sample' is unknown"),
        ("alie", {"direction": "up"}, "attack.direction='up' is unknown"),
        ("alie", {"factor": "search", "search_range": [5, 1]}, "must be increasing"),
        ("alie", {"factor": "search", "search_range": [0, 1]}, "start above 0"),
        ("alie", {"factor": "search", "search_points": 1}, "search_points must be an integer >= 2"),
        ("alie_backdoor", {"alpha": 1.5}, "attack.alpha must be a number in [0.0, 1.0]"),
        ("alie_backdoor", {"z": -0.2}, "attack.z must be a number >= 0 or auto"),
        ("alie_backdoor", {"trigger_size": 9}, "does not fit in 8x8 images"),
        ("alie_backdoor", {"trigger_size": 3, "trigger_pos": [6, 0]}, "does not fit in 8x8 images"),
        ("alie_backdoor", {"target": 10}, "attack.target must be an integer in [0, 9]"),
        ("alie_backdoor", {"samples": 10**6}, "attack.samples must be an integer in [1, 1000]"),
        ("alie_backdoor", {"knowledge": "all"}, "attack.knowledge='all' is unknown"),
        ("alie_backdoor", {"local_lr": 0}, "local_lr must be > 0"),
        ("alie_backdoor", {"alpha": 0, "convention": "alie_code"}, "divides by alpha"),
        ("alie_backdoor", {"convention": "code"}, "attack.convention='code' is unknown"),
        ("alie_backdoor", {"lr_fading": 0}, "attack.lr_fading must be > 0"),
        ("ipm", {"epsilon": -0.1}, "attack.epsilon must be a number >= 0 or search"),
        ("sign_flip", {"scale": 0}, "attack.scale must be > 0"),
        ("gaussian", {"sigma": -1}, "attack.sigma must be a number >= 0"),
        ("gaussian", {"center": "median"}, "attack.center='median' is unknown"),
        ("non_finite", {"value": 1.0}, "attack.value must be nan, inf or -inf"),
        ("hidden_vulnerability", {"coordinate": "first"}, "attack.coordinate must be an integer"),
        ("hidden_vulnerability", {"unit": "meters"}, "attack.unit='meters' is unknown"),
        ("hybrid", {"other_workers": 3}, "leaves no worker for attack.main with m=3"),
        ("hybrid", {"main": "krum"}, "attack.main='krum' is not an attack"),
        ("hybrid", {"main": "hybrid"}, "attack.main='hybrid' is not an attack"),
        (
            "hybrid",
            {"other_options": {"zz": 1}},
            "attack.other_options has zz, which sign_flip does not take",
        ),
        ("hybrid", {"main_options": {"z": -1}}, "attack.z must be a number >= 0"),
    ],
)
def test_invalid_options_give_one_clear_line(name, options, message):
    with pytest.raises(ConfigError) as info:
        build(name, n=11, m=3, **options)
    text = str(info.value)
    assert message in text and "\n" not in text


def test_unbiased_std_needs_two_observed_gradients():
    with pytest.raises(ConfigError, match="std=unbiased needs at least 2 observed gradients"):
        build("alie", m=1, std="unbiased")
    build("alie", m=1, std="unbiased", knowledge="omniscient")


# ---------------------------------------------------------------------------- diagnostics


def test_round_metrics_on_constructed_inputs():
    # coordinate means and population stds: (0.5, 1), (3, 1), (0, 0)
    honest = torch.tensor([[1.5, 2.0, 0.0], [-0.5, 4.0, 0.0]])
    byz = torch.tensor([[9.0, 9.0, 9.0]])
    G = torch.cat([honest, byz])
    aggregate = torch.tensor([0.5, 3.0, 4.0])
    out = diagnostics.round_metrics(honest, G, aggregate, 1, Pipeline(MeanRule()), [0.5, 1, 4])
    # |mu| < z*sigma: z=0.5 -> none (0.5 < 0.5 fails); z=1 -> coordinate 0; z=4 -> coordinates 0, 1
    assert out["flip_share_z0.5"] == 0.0
    assert out["flip_share_z1"] == pytest.approx(1 / 3)
    assert out["flip_share_z4"] == pytest.approx(2 / 3)
    assert out["agg_dist"] == pytest.approx(4.0)
    assert math.isnan(out["byz_selected"])
    out = diagnostics.round_metrics(honest, G, aggregate, 1, Pipeline(PickRows([0, 2])), None)
    assert out["byz_selected"] == 1 and not any(k.startswith("flip_share") for k in out)
    out = diagnostics.round_metrics(honest, G, aggregate, 1, Pipeline(PickRows([0, 1])), None)
    assert out["byz_selected"] == 0


def test_backdoor_lr_fading_is_the_server_lr_scaled_by_F_over_round_plus_F():
    """The code's attacker uses its workers' fading rate lr*F/(round+F) for V_0 and the conversion."""
    model, data = tiny_model(), tiny_data()
    ctx = backdoor_ctx(model)
    ctx.round = 30
    options = dict(m=4, data=data, samples=40, local_steps=2, batch_size=20, trigger_size=3, local_lr=0.1)
    torch.manual_seed(0)
    fading = build("alie_backdoor", convention="alie_code", lr_fading=10.0, **options)
    torch.manual_seed(0)
    plain = build("alie_backdoor", convention="alie_code", **options)
    ctx.lr = 0.1
    out = fading(ctx)
    ctx.lr = 0.1 * 10 / (30 + 10)
    torch.testing.assert_close(out, plain(ctx))
    ctx.lr = 0.1
    assert not torch.allclose(out, plain(ctx))


@pytest.mark.parametrize(
    "attack",
    [attacks.Mimic(target=2), attacks.IPM(factor=0.5), attacks.SignFlip(scale=1.0)],
    ids=lambda a: a.name,
)
def test_the_round_replaces_only_the_byzantine_rows_with_what_the_attack_sends(attack):
    """replace_byzantine_rows (the round's attack step, timed by make bench) leaves the honest rows as they
    were and writes the attack's rows, a broadcast view (Mimic, IPM) or one row per worker (sign flip)."""
    from byzrun.attacks.base import replace_byzantine_rows

    h, m = 7, 3
    G = torch.randn(h + m, 50, generator=torch.Generator().manual_seed(0))
    before = G.clone()
    attack.validate(n=h + m, m=m, data=None)
    replace_byzantine_rows(G, m, attack, round=0, defense=MeanRule(), model=None, lr=0.1)
    assert G[:h].equal(before[:h])
    expected = {
        "mimic": before[2].expand(m, -1),
        "ipm": -0.5 * before[:h].mean(0).expand(m, -1),
        "sign_flip": -before[h:],
    }[attack.name]
    torch.testing.assert_close(G[h:], expected, rtol=1e-6, atol=1e-7)
