"""Momentum placements (Distributed Momentum paper) and the statistics of honest submissions."""

import pytest
import torch

from byzrun.diagnostics import submission_stats
from byzrun.preaggregation import Pipeline
from byzrun.train import prepare, train


class Recording(Pipeline):
    """The server's aggregation, keeping a copy of every matrix it aggregates."""

    def __init__(self, inner: Pipeline, log: list):
        super().__init__(inner.rule, inner.steps, name=inner.label)
        self.log = log

    def __call__(self, G, f, overwrite=False):
        self.log.append(G.clone())
        return super().__call__(G, f, overwrite)


def run_with_fixed_batches(cfg, rounds=3, record=None):
    """Train with pre-drawn batch indices; optionally record what the defense receives each round."""
    setup = prepare(cfg)
    init = setup.model.theta.clone()
    draws = [torch.randint(len(setup.data.train_y), (cfg.n, cfg.batch_size)) for _ in range(rounds)]
    it = iter(draws)
    setup.sampler.next = lambda: next(it)
    if record is not None:
        setup.defense = Recording(setup.defense, record)
    train(setup)
    return setup, init, draws


def grads_at(setup, theta, idx):
    x, y = setup.data.train_x[idx], setup.data.train_y[idx]
    return setup.model.worker_grads(x, y, theta)[0]


def test_worker_momentum_matches_a_hand_computation(digits_cfg):
    beta, lr = 0.5, 0.1
    cfg = digits_cfg(
        "rounds=3", "eval_every=3", "momentum.placement=worker", f"momentum.beta={beta}", f"lr={lr}"
    )
    submitted = []
    setup, theta, draws = run_with_fixed_batches(cfg, record=submitted)
    velocity = torch.zeros(cfg.n, setup.model.d)
    for t, idx in enumerate(draws):
        g = grads_at(setup, theta, idx)
        velocity = beta * velocity + g  # v_i = beta * v_i + g_i at every worker
        torch.testing.assert_close(submitted[t], velocity, rtol=1e-5, atol=1e-6)
        theta = theta - lr * velocity.mean(0)  # the server applies plain SGD to the aggregate
    torch.testing.assert_close(setup.model.theta, theta, rtol=1e-5, atol=1e-6)


def test_weight_decay_and_clipping_enter_each_workers_momentum(digits_cfg):
    beta, lr, wd, clip = 0.5, 0.1, 0.05, 0.5
    cfg = digits_cfg(
        "rounds=3",
        "eval_every=3",
        "momentum.placement=worker",
        f"momentum.beta={beta}",
        f"lr={lr}",
        f"weight_decay={wd}",
        f"grad_clip={clip}",
    )
    submitted = []
    setup, theta, draws = run_with_fixed_batches(cfg, record=submitted)
    velocity = torch.zeros(cfg.n, setup.model.d)
    for t, idx in enumerate(draws):
        g = grads_at(setup, theta, idx) + wd * theta  # the L2 term of each worker's loss
        g = g * (clip / g.norm(dim=1, keepdim=True)).clamp(max=1.0)  # then the clip
        velocity = beta * velocity + g
        torch.testing.assert_close(submitted[t], velocity, rtol=1e-5, atol=1e-6)
        theta = theta - lr * velocity.mean(0)
    torch.testing.assert_close(setup.model.theta, theta, rtol=1e-5, atol=1e-6)


def test_worker_nesterov_submits_gradient_plus_beta_momentum(digits_cfg):
    beta = 0.5
    cfg = digits_cfg(
        "rounds=2",
        "eval_every=2",
        "momentum.placement=worker",
        f"momentum.beta={beta}",
        "momentum.nesterov=true",
    )
    submitted = []
    setup, theta, draws = run_with_fixed_batches(cfg, rounds=2, record=submitted)
    velocity = torch.zeros(cfg.n, setup.model.d)
    for t, idx in enumerate(draws):
        g = grads_at(setup, theta, idx)
        velocity = beta * velocity + g
        torch.testing.assert_close(submitted[t], g + beta * velocity, rtol=1e-5, atol=1e-6)
        theta = theta - cfg.lr * submitted[t].mean(0)


@pytest.mark.parametrize("placement", ["server", "worker", "none"])
def test_beta_zero_makes_every_placement_plain_sgd(digits_cfg, placement):
    cfg = digits_cfg("rounds=3", "eval_every=3", f"momentum.placement={placement}", "momentum.beta=0.0")
    setup, theta, draws = run_with_fixed_batches(cfg)
    for idx in draws:
        theta = theta - cfg.lr * grads_at(setup, theta, idx).mean(0)
    torch.testing.assert_close(setup.model.theta, theta, rtol=1e-5, atol=1e-6)


def test_variance_norm_ratio_on_constructed_inputs():
    # rows = mean ± deviations: mean (3, 4) has norm 5; squared distances 1, 1, 4, 4 -> mean 2.5
    honest = torch.tensor([[4.0, 4.0], [2.0, 4.0], [3.0, 6.0], [3.0, 2.0]])
    aggregate = torch.tensor([6.0, 8.0])
    stats = submission_stats(honest, aggregate)
    assert stats["variance_norm_ratio"] == pytest.approx(2.5 / 25.0)
    assert stats["honest_norm"] == pytest.approx(5.0)
    assert stats["aggregate_norm"] == pytest.approx(10.0)
    assert stats["cosine"] == pytest.approx(1.0)
    assert submission_stats(honest, torch.tensor([-4.0, 3.0]))["cosine"] == pytest.approx(0.0, abs=1e-7)


def test_worker_momentum_lowers_the_variance_norm_ratio(digits_cfg):
    """The paper's mechanism: the workers' velocities average out noise, so their spread shrinks relative
    to their mean."""
    ratios = {}
    for placement in ("server", "worker"):
        setup = prepare(
            digits_cfg(
                "rounds=30",
                "eval_every=30",
                "diagnostics.every=1",
                f"momentum.placement={placement}",
                "momentum.beta=0.9",
                "lr=0.05",
            )
        )
        train(setup)
        ratios[placement] = sum(r["variance_norm_ratio"] for r in setup.metrics[10:]) / len(
            setup.metrics[10:]
        )
    assert ratios["worker"] < 0.5 * ratios["server"]
