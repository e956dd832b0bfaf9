"""Rules with state across rounds: centered clipping centred on the previous round's aggregate
(Karimireddy, He, Jaggi, ICML 2021), and how the server drives any stateful rule (reset at
the start of a run, end_round once per round, state_dict to save it).

The reference is the paper's recursion written plainly in float64 over several rounds.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from byzrun import defenses
from byzrun.build import build_defense, build_steps
from byzrun.errors import ConfigError
from byzrun.preaggregation import Pipeline
from tests.conftest import make_cfg


def ref_centered_clipping(rounds: list[torch.Tensor], tau: float, iterations: int) -> list[torch.Tensor]:
    """The paper's recursion: v starts at the previous round's aggregate (zero in round 1), then
    v <- v + (1/n) sum_i (p_i - v) min(1, tau / ||p_i - v||), L times per round; finite rows only count."""
    v = [0.0] * rounds[0].shape[1]
    out = []
    for G in rounds:
        rows = [[float(x) for x in row] for row in G]
        n = len(rows)
        for _ in range(iterations):
            step = [0.0] * len(v)
            for p in rows:
                if not all(math.isfinite(x) for x in p):
                    continue  # contributes nothing, as if it had sent v
                norm = math.sqrt(sum((x - y) ** 2 for x, y in zip(p, v)))
                scale = 1.0 if norm == 0 else min(1.0, tau / norm)
                step = [s + (x - y) * scale for s, x, y in zip(step, p, v)]
            v = [y + s / n for y, s in zip(v, step)]
        out.append(torch.tensor(v, dtype=torch.float64))
    return out


def play(rule, rounds: list[torch.Tensor], f: int) -> list[torch.Tensor]:
    """What the server does with a rule: reset, then per round one call and end_round."""
    rule.reset()
    outputs = []
    for G in rounds:
        out = rule(G, f)
        rule.end_round(out)
        outputs.append(out)
    return outputs


def drifting_rounds(n: int, d: int, count: int, seed: int) -> list[torch.Tensor]:
    """Rounds of submissions around a slowly moving mean, the last row a large outlier."""
    g = torch.Generator().manual_seed(seed)
    mean = torch.randn(d, generator=g, dtype=torch.float64)
    rounds = []
    for _ in range(count):
        mean = mean + 0.3 * torch.randn(d, generator=g, dtype=torch.float64)
        G = mean + torch.randn(n, d, generator=g, dtype=torch.float64)
        G[-1] = 50 * G[-1]
        rounds.append(G)
    return rounds


def test_the_first_round_starts_from_zero_and_the_next_from_the_last_aggregate():
    # round 1 from v0 = 0, tau = 1: (3,4) is clipped to (0.6, 0.8), (0.5, 0) is kept; / n = 2
    first = torch.tensor([[3.0, 4.0], [0.5, 0.0]], dtype=torch.float64)
    # round 2 from v0 = (0.55, 0.4): (0.55, 2.4) is 2 away (clipped to (0, 1)), (0.55, 0.4) itself 0
    second = torch.tensor([[0.55, 2.4], [0.55, 0.4]], dtype=torch.float64)
    rule = defenses.CenteredClipping(tau=1.0)
    one, two = play(rule, [first, second], 0)
    assert one.tolist() == pytest.approx([0.55, 0.4])
    assert two.tolist() == pytest.approx([0.55, 0.4 + 0.5])
    # a stateless centre gives another second round: the state is really used
    median = defenses.CenteredClipping(tau=1.0, center="median")
    assert not torch.allclose(play(median, [first, second], 0)[1], two)


@pytest.mark.parametrize("n", [3, 5, 10, 11, 20, 33, 51])
@pytest.mark.parametrize("tau, iterations", [(1.0, 1), (5.0, 3), (100.0, 2)])
def test_previous_centre_is_the_papers_recursion_over_rounds(n, tau, iterations):
    rounds = drifting_rounds(n, 9, 6, seed=n)
    rule = defenses.CenteredClipping(tau=tau, iterations=iterations)
    for got, expected in zip(play(rule, rounds, n // 10), ref_centered_clipping(rounds, tau, iterations)):
        assert torch.allclose(got, expected, rtol=1e-10, atol=1e-10)


def test_previous_centre_agrees_with_byzfl_over_rounds():
    """ByzFL's CenteredClipping keeps its previous output as the next centre, as the paper does."""
    import byzfl

    rounds = drifting_rounds(15, 12, 5, seed=3)
    theirs = byzfl.CenteredClipping(L=2, tau=2.0)
    expected = [theirs(G.clone()) for G in rounds]
    ours = play(defenses.CenteredClipping(tau=2.0, iterations=2), rounds, 1)
    for got, want in zip(ours, expected):
        # ByzFL starts from a float32 zero vector, so its outputs are float32
        assert torch.allclose(got, torch.as_tensor(want, dtype=torch.float64), rtol=1e-5, atol=1e-6)


def test_duplicated_rows_ties_and_a_huge_outlier_follow_the_reference():
    rounds = drifting_rounds(11, 6, 4, seed=7)
    for G in rounds:
        G[1] = G[0]  # duplicated rows: equal distances to every centre
        G[2] = G[0]
        G[-1] = 1e12  # one huge outlier: clipped to tau from the centre every step
    rule = defenses.CenteredClipping(tau=2.0, iterations=3)
    for got, expected in zip(play(rule, rounds, 1), ref_centered_clipping(rounds, 2.0, 3)):
        assert torch.allclose(got, expected, rtol=1e-9, atol=1e-9)
    # the outlier moves each step by at most tau / n
    single = [G.clone() for G in rounds[:1]]
    one = play(defenses.CenteredClipping(tau=2.0), single, 1)[0]
    without = play(defenses.CenteredClipping(tau=2.0), [single[0][:-1]], 1)[0] * 10 / 11
    assert float((one - without).norm()) <= 2.0 / 11 + 1e-9


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("n", [3, 10, 11, 20, 51])
def test_non_finite_rows_up_to_the_bound_follow_the_reference_and_stay_finite(n, value):
    f = defenses.CenteredClipping.bound.max_f(n)  # f/n <= 0.1
    rounds = drifting_rounds(n, 7, 4, seed=n + 1)
    for G in rounds:
        if f:
            G[-f:] = value
    outputs = play(defenses.CenteredClipping(tau=3.0, iterations=2), rounds, f)
    for got, expected in zip(outputs, ref_centered_clipping(rounds, 3.0, 2)):
        assert bool(torch.isfinite(got).all())
        assert torch.allclose(got, expected, rtol=1e-10, atol=1e-10)


def test_calls_within_a_round_do_not_advance_the_state():
    """An adaptive attack probes the rule many times a round, the diagnostics once more: only
    end_round moves the centre."""
    rounds = drifting_rounds(11, 5, 3, seed=4)
    rule = defenses.CenteredClipping(tau=1.0)
    play(rule, rounds[:2], 1)
    first = rule(rounds[2], 1)
    for _ in range(5):
        rule(rounds[2] * 3, 1)  # probes with other submissions
    assert torch.equal(rule(rounds[2], 1), first)


def test_reset_forgets_and_a_saved_state_resumes_the_same_numbers():
    rounds = drifting_rounds(11, 5, 6, seed=5)
    rule = defenses.CenteredClipping(tau=1.5, iterations=2)
    whole = play(rule, rounds, 1)
    first = defenses.CenteredClipping(tau=1.5, iterations=2)
    play(first, rounds[:3], 1)
    state = first.state_dict()
    assert set(state) == {"previous"} and torch.equal(state["previous"], whole[2])
    resumed = defenses.CenteredClipping(tau=1.5, iterations=2)
    resumed.load_state_dict(state)
    for G, expected in zip(rounds[3:], whole[3:]):
        out = resumed(G, 1)
        resumed.end_round(out)
        assert torch.equal(out, expected)
    rule.reset()
    assert rule.state_dict() == {}
    zero = defenses.CenteredClipping(tau=1.5, iterations=2, center="zero")
    assert torch.equal(rule(rounds[0], 1), zero(rounds[0], 1))


@pytest.mark.parametrize("center", ["median", "mean", "zero"])
def test_the_stateless_centres_keep_no_state(center):
    rounds = drifting_rounds(11, 5, 3, seed=6)
    rule = defenses.CenteredClipping(tau=1.0, center=center)
    outputs = play(rule, rounds, 1)
    assert rule.state_dict() == {}
    assert all(
        torch.equal(out, defenses.CenteredClipping(tau=1.0, center=center)(G, 1))
        for out, G in zip(outputs, rounds)
    )


def test_with_pre_aggregation_the_state_is_the_rules_own():
    """Bucketing in front: the rule sees bucket means, and its centre is the round's aggregate."""
    rounds = drifting_rounds(12, 5, 3, seed=8)
    pipeline = Pipeline(defenses.CenteredClipping(tau=1.0), build_steps([{"name": "bucketing", "s": 2}]))
    outputs = play(pipeline, rounds, 1)
    assert torch.equal(pipeline.state_dict()["previous"], outputs[-1])
    step = pipeline.steps[0]
    expected = ref_centered_clipping([step(G, 1) for G in rounds], 1.0, 1)
    for got, want in zip(outputs, expected):
        assert torch.allclose(got, want, rtol=1e-10, atol=1e-10)
    pipeline.reset()
    assert pipeline.state_dict() == {}


def test_previous_is_the_default_and_a_bad_centre_is_one_line():
    rule = build_defense(make_cfg("defense=centered_clipping").defense).rule
    assert rule.center == "previous"
    with pytest.raises(ConfigError) as err:
        build_defense(make_cfg("defense=centered_clipping", "defense.center=last").defense)
    message = str(err.value)
    assert "\n" not in message and "defense.center must be one of" in message and "'previous'" in message


def test_a_bad_centre_stops_the_cli_before_any_data_is_read(monkeypatch, capsys, tmp_path):
    import byzrun.train
    from tests.conftest import run_cli

    def no_data(*args, **kwargs):
        raise AssertionError("data was read")

    monkeypatch.setattr(byzrun.train, "load_data", no_data)
    args = ["dataset=digits", "defense=centered_clipping", "defense.center=last", f"results_dir={tmp_path}"]
    assert run_cli(monkeypatch, *args) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("byzrun: error: defense.center must be one of")


# ------------------------------------------------------------------------------------ whole runs


def test_a_run_resets_the_state_and_calls_end_round_once_a_round(digits_cfg, monkeypatch):
    """Two identical runs give identical metrics (there is no mid-run resume: the state is rebuilt
    from the first round, and train() resets whatever an earlier run left); the adaptive attack's
    probes do not count as rounds."""
    from byzrun.train import prepare, run, train

    overrides = (
        "defense=centered_clipping",
        "defense.tau=0.1",  # small enough that clipping acts, so the centre matters
        "m=1",
        "attack=alie",
        "attack.factor=search",
        "attack.search_points=4",
    )
    cfg = digits_cfg(*overrides)
    first = run(cfg)
    (out,) = (Path(cfg.results_dir) / "runs").iterdir()
    metrics = pd.read_csv(out / "metrics.csv")
    (out / "summary.csv").unlink()
    setup = prepare(cfg)
    setup.defense.rule.previous = torch.full((setup.model.d,), 1e3)  # left over from elsewhere
    calls = []
    real = setup.defense.rule.end_round
    monkeypatch.setattr(setup.defense.rule, "end_round", lambda aggregate: (calls.append(1), real(aggregate)))
    second = train(setup)
    assert len(calls) == setup.cfg.rounds
    assert (
        second["max_test_acc"] == first["max_test_acc"]
        and second["final_test_acc"] == first["final_test_acc"]
    )
    again = pd.read_csv(out / "metrics.csv")
    columns = ["round", "test_acc", "test_loss", "train_loss"]
    assert again[columns].equals(metrics[columns])
    # and the state is really used: centred on zero every round, the same run goes elsewhere
    run(digits_cfg(*overrides, "defense.center=zero"))
    (other,) = [p for p in (Path(cfg.results_dir) / "runs").iterdir() if p != out]
    assert not pd.read_csv(other / "metrics.csv")["test_loss"].equals(metrics["test_loss"])
