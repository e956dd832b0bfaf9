"""End to end: a tiny run learns and leaves tidy, complete results."""

import pandas as pd
import pytest
import yaml

from byzrun import results
from byzrun.train import prepare, run, train
from tests.conftest import DIGITS, make_cfg, run_cli

SUMMARY_COLUMNS = [
    "dataset",
    "model",
    "defense",
    "attack",
    "n",
    "m",
    "z",
    "alpha",
    "seed",
    "max_test_acc",
    "final_test_acc",
    "rounds",
    "wall_seconds",
]
METRIC_COLUMNS = ["round", "epoch", "test_acc", "test_loss", "train_loss", "lr", "wall_seconds"]


def test_a_tiny_digits_run_learns_and_writes_its_results(digits_cfg):
    summary = run(digits_cfg("rounds=40"))
    assert summary["max_test_acc"] > 85.0
    run_dirs = list(results.run_dir(digits_cfg("rounds=40"), "mean", "none").parent.iterdir())
    assert len(run_dirs) == 1
    out = run_dirs[0]
    metrics = pd.read_csv(out / "metrics.csv")
    assert list(metrics.columns[: len(METRIC_COLUMNS)]) == METRIC_COLUMNS
    assert metrics["round"].tolist() == [10, 20, 30, 40]
    assert metrics["train_loss"].iloc[-1] < metrics["train_loss"].iloc[0]
    table = pd.read_csv(out / "summary.csv")
    assert len(table) == 1 and set(SUMMARY_COLUMNS) <= set(table.columns)
    row = table.iloc[0]
    assert (row["dataset"], row["defense"], row["attack"], row["n"], row["m"]) == (
        "digits",
        "mean",
        "none",
        11,
        0,
    )
    assert row["max_test_acc"] == pytest.approx(metrics["test_acc"].max())
    assert row["final_test_acc"] == pytest.approx(metrics["test_acc"].iloc[-1])
    assert row["rounds"] == 40
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["n"] == 11 and saved["dataset"]["name"] == "digits"
    assert not list(out.glob(".*tmp"))  # no temporary files left behind


def test_runs_differing_in_any_option_get_their_own_directory(digits_cfg):
    a = results.run_dir(digits_cfg(), "mean", "none")
    b = results.run_dir(digits_cfg("lr=0.05"), "mean", "none")
    assert a != b and a.parent == b.parent
    assert a.name.startswith("digits-mean-none-n11-m0-s0-")


def test_a_finished_run_is_skipped_and_an_interrupted_one_restarts(digits_cfg):
    cfg = digits_cfg()
    first = run(cfg)
    out = results.run_dir(cfg, "mean", "none")
    stamp = (out / "summary.csv").stat().st_mtime_ns
    assert prepare(cfg) is None  # finished: skipped, results untouched
    assert (out / "summary.csv").stat().st_mtime_ns == stamp
    # an interrupted attempt leaves metrics but no summary: the next attempt starts over
    (out / "summary.csv").unlink()
    setup = prepare(cfg)
    assert setup is not None
    second = train(setup)
    assert second["max_test_acc"] == pytest.approx(first["max_test_acc"])  # same seed, same result


def test_an_interrupted_run_leaves_no_summary(digits_cfg, monkeypatch):
    cfg = digits_cfg("rounds=30")
    setup = prepare(cfg)
    calls = {"n": 0}
    real = setup.model.worker_grads

    def crash_midway(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 25:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    setup.model.worker_grads = crash_midway
    with pytest.raises(KeyboardInterrupt):
        train(setup)
    out = results.run_dir(cfg, "mean", "none")
    assert not (out / "summary.csv").exists()
    assert pd.read_csv(out / "metrics.csv")["round"].tolist() == [10, 20]  # complete rows only


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "summary.csv"
    results.atomic_write_text(path, "old\n")

    class Boom:
        def __str__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        results.atomic_write_csv(path, [{"a": Boom()}])
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.csv"]


def test_the_cli_quick_start_learns_offline(tmp_path, monkeypatch, capsys):
    """The README's first command (`byzrun dataset=digits`), shortened from 300 rounds to 60."""
    assert run_cli(monkeypatch, "dataset=digits", "rounds=60", f"results_dir={tmp_path}") == 0
    assert "max test accuracy" in capsys.readouterr().out
    summary = pd.read_csv(next(tmp_path.glob("runs/*/summary.csv")))
    assert summary["max_test_acc"].iloc[0] > 90.0


def test_atomic_writes_get_ordinary_file_permissions(tmp_path):
    from byzrun.results import _UMASK, atomic_write_text

    path = tmp_path / "summary.csv"
    atomic_write_text(path, "a\n")
    assert path.stat().st_mode & 0o777 == 0o666 & ~_UMASK


@pytest.mark.parametrize(
    "first,expected",
    [(None, [5, 10, 15, 17]), (1, [1, 6, 11, 16, 17]), (3, [3, 8, 13, 17])],
)
def test_evaluation_rounds_start_at_eval_first(first, expected):
    from omegaconf import OmegaConf

    from byzrun.train import is_eval_round

    cfg = OmegaConf.create({"eval_every": 5, "eval_first": first, "rounds": 17})
    assert [r for r in range(1, 18) if is_eval_round(cfg, r)] == expected


def test_the_design_cards_command_runs_the_alie_papers_setting(tmp_path, monkeypatch, capsys):
    """`byzrun defense=bulyan attack=alie` runs with m's default, floor((n-3)/4) Byzantine workers (12 of
    the default 51; 2 of 11 here): the same run (same folder and hash) as writing that m."""
    args = [*DIGITS, "rounds=2", "progress=false", f"results_dir={tmp_path}", "defense=bulyan", "attack=alie"]
    assert run_cli(monkeypatch, *args) == 0
    assert "m not set: 2 Byzantine workers of n=11" in capsys.readouterr().out
    (summary,) = (tmp_path / "runs").glob("*/summary.csv")
    row = pd.read_csv(summary).iloc[0]
    assert (
        row["m"] == 2 and bool(row["m_auto"]) and summary.parent.name.startswith("digits-bulyan-alie-n11-m2-")
    )
    assert run_cli(monkeypatch, *args, "m=2") == 0
    assert "already finished" in capsys.readouterr().out
    assert len(list((tmp_path / "runs").iterdir())) == 1
    # without an attack, the default is 0: every worker is honest
    assert make_cfg("attack=none").m == 0 and make_cfg("attack=ipm", "n=7").m == 1
    assert run_cli(monkeypatch, *DIGITS, "rounds=1", "progress=false", f"results_dir={tmp_path}") == 0
    assert len(list((tmp_path / "runs").glob("digits-mean-none-n11-m0-*"))) == 1


def test_a_run_in_numpys_reduction_order_learns_and_the_next_run_is_back_in_torchs(digits_cfg, monkeypatch):
    """reductions=numpy reaches the attack's statistics for its own run only: an ALIE run under the mean
    rule learns in numpy's order, and a default run after it in the same process reduces in torch's."""
    from byzrun import cpu_reductions

    orders = []
    real = cpu_reductions.row_std_mean
    monkeypatch.setattr(
        "byzrun.attacks.stats.row_std_mean",
        lambda X, correction: orders.append(cpu_reductions._order) or real(X, correction),
    )
    common = ("m=2", "attack=alie", "attack.factor=0.5", "rounds=40")
    summary = run(digits_cfg(*common, "reductions=numpy"))
    assert summary["max_test_acc"] > 80.0 and set(orders) == {"numpy"}
    orders.clear()
    run(digits_cfg(*common))
    assert set(orders) == {"torch"}
    assert len(list(results.run_dir(digits_cfg(*common), "mean", "alie").parent.iterdir())) == 2
