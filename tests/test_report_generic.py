"""The generic report of any sweep (byzrun.report.sweep, worst, scores, sweep_report) on run folders
written as byzrun writes them: config.yaml from the composed config, metrics.csv and summary.csv with
crafted accuracy curves. Checked against brute-force means, minima and metrics of those curves: rows and
columns, sections, seeds pooled only among equal settings, the metric choice, the worst case over
attacks, only the folder given is read, the paper tables untouched, the files and the entry point."""

from __future__ import annotations

import contextlib
import io
import math
import runpy
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import CONF_DIR, make_cfg
from omegaconf import OmegaConf, open_dict

from byzrun import report
from byzrun.build import build_attack, build_defense
from byzrun.report.collect import collect
from byzrun.report.scores import Metric
from byzrun.report.sweep import Dimension, build_table
from byzrun.report.worst import matrix, worst_case
from byzrun.results import atomic_write_csv, run_dir, start_run

ROUNDS = [10, 20, 30, 40, 50, 60]
#: test accuracy drop under each attack, per defense: the worst attack differs between defenses
DROP = {
    "median": {"none": 0, "alie": 20, "sign_flip": 10},
    "nnm+median": {"none": 0, "alie": 6, "sign_flip": 3},
    "trimmed_mean": {"none": 0, "alie": 8, "sign_flip": 12},
}
BASE_ACC = {"median": 80.0, "nnm+median": 85.0, "trimmed_mean": 78.0}


@pytest.fixture(scope="module")
def base_cfg():
    return make_cfg("dataset=digits", "n=11", "rounds=60", "eval_every=10", "device=cpu")


def config(base, defense: str = "median", attack: str = "alie", **keys):
    """A run's resolved config as the CLI composes it: the group files of conf/ in place of the
    defaults, then dotted keys (`m`, `seed`, `lr`, `defense.pre`)."""
    cfg = base.copy()
    rule = defense.removeprefix("nnm+")
    cfg.defense = OmegaConf.load(Path(CONF_DIR) / "defense" / f"{rule}.yaml")
    cfg.attack = OmegaConf.load(Path(CONF_DIR) / "attack" / f"{attack}.yaml")
    if defense.startswith("nnm+"):
        cfg.defense.pre = ["nnm"]
    for key, value in keys.items():
        OmegaConf.update(cfg, key.replace("__", "."), value)
    return cfg


def curve_of(defense: str, attack: str, m: int, seed: int) -> list[float]:
    """A run's test accuracy per evaluation: a peak at round 20, then down to its final value."""
    final = BASE_ACC[defense] - DROP[defense][attack] * m + 1.5 * seed
    return [final - 30, final + 15, final + 10, final + 5, final + 2, final]


def write_run(results: Path, cfg, acc: list[float], diverged: bool = False) -> Path:
    """One finished run folder under results/runs/ as byzrun.train writes it."""
    cfg = cfg.copy()
    cfg.results_dir = str(results)
    defense, attack = build_defense(cfg.defense).name, build_attack(cfg.attack).name
    directory = run_dir(cfg, defense, attack)
    start_run(directory, cfg)
    rounds = ROUNDS[: len(acc)]
    metrics = [{"round": r, "test_acc": a, "test_loss": 1.0, "lr": cfg.lr} for r, a in zip(rounds, acc)]
    atomic_write_csv(directory / "metrics.csv", metrics)
    summary = {
        "dataset": "digits", "model": "mlp", "defense": defense, "attack": attack, "n": cfg.n, "m": cfg.m,
        "seed": cfg.seed, "max_test_acc": max(acc), "final_test_acc": math.nan if diverged else acc[-1],
        "rounds": rounds[-1], "diverged": diverged, "diverged_round": rounds[-1] if diverged else None,
        "name": cfg.name, "row": cfg.row, "config_hash": directory.name[-10:], "data_fingerprint": "f00d",
    }  # fmt: skip
    atomic_write_csv(directory / "summary.csv", [summary])
    return directory


def seeds_of(defense: str, attack: str, m: int) -> tuple[int, ...]:
    """The sweep's seeds: 0 and 1, and 2 in one cell (cells of different seed counts)."""
    return (0, 1, 2) if (defense, attack, m) == ("median", "none", 1) else (0, 1)


@pytest.fixture(scope="module")
def sweep(base_cfg, tmp_path_factory) -> Path:
    """3 defenses (one with NNM) x 3 attacks x m in {1, 2} x the seeds of seeds_of: 37 runs."""
    results = tmp_path_factory.mktemp("sweep") / "results"
    for defense in DROP:
        for attack in ("none", "alie", "sign_flip"):
            for m in (1, 2):
                for seed in seeds_of(defense, attack, m):
                    cfg = config(base_cfg, defense, attack, m=m, seed=seed)
                    write_run(results, cfg, curve_of(defense, attack, m, seed))
    return results


def run_report(results: Path, *args: str) -> int:
    return report.main(["--results-dir", str(results), *args])


@pytest.fixture(scope="module")
def reported(sweep, tmp_path_factory):
    """The report of the sweep with some options, written once per options to a folder of its own
    (--out); returns that folder and what was printed."""
    done: dict[tuple, tuple[Path, str]] = {}

    def report_with(*args: str) -> tuple[Path, str]:
        if args not in done:
            out = tmp_path_factory.mktemp("out")
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                assert run_report(sweep, "--out", str(out), *args) == 0
            done[args] = out, printed.getvalue()
        return done[args]

    return report_with


def tidy(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def last_k(acc: list[float], k: int) -> float:
    return float(np.mean(acc[-k:]))


# ---------------------------------------------------------------- the table


def test_rows_defense_cols_attack_sections_per_other_varying_setting(reported):
    out, printed = reported()
    assert "37 run(s) under" in printed and "0 for the paper tables" in printed
    assert "37 for the generic table" in printed
    frame = tidy(out / "sweep.csv")
    assert list(frame.columns[:5]) == ["section", "m", "defense", "attack", "metric"]
    assert sorted(frame["section"].unique()) == ["m=1", "m=2"]  # the only other varying setting
    assert sorted(frame["m"].unique()) == [1, 2]  # the bare value of a one-key dimension
    assert sorted(frame["defense"].unique()) == ["median", "nnm+median", "trimmed_mean"]
    assert len(frame) == 2 * 3 * 3 and set(frame["metric"]) == {"last-5 mean"}
    text = (out / "sweep.md").read_text()
    assert "| defense / attack | none | alie | sign_flip |" in text  # none first, then by name
    assert text.index("## m=1") < text.index("## m=2")


def test_each_cell_pools_its_seeds_mean_std_count(reported):
    out, _ = reported("--metric", "final")
    frame = tidy(out / "sweep.csv").set_index(["m", "defense", "attack"])
    for m in (1, 2):
        for defense in DROP:
            for attack in ("none", "alie", "sign_flip"):
                seeds = seeds_of(defense, attack, m)
                finals = np.array([curve_of(defense, attack, m, s)[-1] for s in seeds], dtype=np.float64)
                line = frame.loc[(m, defense, attack)]
                assert line["seeds"] == len(seeds)
                assert line["mean"] == pytest.approx(finals.mean(), abs=1e-4)
                assert line["std"] == pytest.approx(finals.std(ddof=1), abs=1e-4)
    md = (out / "sweep.md").read_text()
    none, alie = (
        [curve_of("median", attack, 1, s)[-1] for s in seeds]
        for attack, seeds in (("none", (0, 1, 2)), ("alie", (0, 1)))
    )
    assert none == [80.0, 81.5, 83.0] and alie == [60.0, 61.5]
    assert "| median | 81.5 ± 1.5 (3) | 60.8 ± 1.1 (2) |" in md


def test_metric_final_max_or_mean_of_the_last_k(tmp_path, base_cfg):
    acc = [40.0, 90.0, 85.0, 70.0, 65.0, 60.0]  # peaks early, then collapses
    write_run(tmp_path, config(base_cfg), acc)
    (run,) = collect(tmp_path)
    assert Metric("final").of(run) == 60.0
    assert Metric("max").of(run) == 90.0
    assert Metric("last-k", 5).of(run) == pytest.approx(74.0)
    assert Metric("last-k", 2).of(run) == pytest.approx(62.5)
    assert Metric("last-k", 50).of(run) == pytest.approx(np.mean(acc))  # fewer evaluations than k: all
    for args, expected in (
        (["--metric", "max"], 90.0),
        (["--metric", "last-k", "--k", "3"], 65.0),
        ([], 74.0),
    ):
        assert run_report(tmp_path, *args) == 0
        assert tidy(tmp_path / "sweep.csv")["mean"].tolist() == [pytest.approx(expected)]


def test_a_diverged_run_has_no_final_accuracy(tmp_path, base_cfg):
    write_run(tmp_path, config(base_cfg, seed=0), [50.0, 70.0, 80.0])
    write_run(tmp_path, config(base_cfg, seed=1), [50.0, 60.0, 20.0], diverged=True)
    runs = {r.seed: r for r in collect(tmp_path)}
    assert math.isnan(Metric("final").of(runs[1])) and math.isnan(Metric("last-k").of(runs[1]))
    assert Metric("max").of(runs[1]) == 60.0


@pytest.mark.parametrize("metric", ["final", "last-k", "max"])
def test_a_cell_with_one_of_three_seeds_diverged_is_diverged_not_the_survivors_mean(
    tmp_path, base_cfg, metric
):
    """The two seeds that survived do not stand for the cell: it reads 'diverged 1/3' under every
    metric (even max, defined for a diverged run), no mean; the CSV keeps every seed's value."""
    write_run(tmp_path, config(base_cfg, seed=0), [50.0, 70.0, 80.0])
    write_run(tmp_path, config(base_cfg, seed=1), [50.0, 60.0, 20.0], diverged=True)
    write_run(tmp_path, config(base_cfg, seed=2), [50.0, 70.0, 90.0])
    write_run(tmp_path, config(base_cfg, seed=0, m=1), [80.0, 80.0, 80.0])  # another section: intact
    assert run_report(tmp_path, "--metric", metric) == 0
    frame = tidy(tmp_path / "sweep.csv").set_index("m")
    line = frame.loc[2]
    assert math.isnan(line["mean"]) and math.isnan(line["std"])
    assert (line["seeds"], line["diverged"]) == (3, 1)
    assert line["per_seed"].startswith("s0 ") and "s1 " in line["per_seed"] and "†" in line["per_seed"]
    assert (frame.loc[1, "seeds"], frame.loc[1, "diverged"]) == (1, 0)
    md = (tmp_path / "sweep.md").read_text()
    assert "| median | diverged 1/3 |" in md and "| median | 80.0 (1) |" in md
    assert "†" not in md  # no mean of the survivors marked as touched by a divergence
    assert "diverged 1/3" in (tmp_path / "sweep.tex").read_text()


def diverging_sweep(results: Path, base_cfg) -> None:
    """median: alie diverges in 1 of 3 seeds (the others at 90), sign flip leaves 10; trimmed mean:
    alie diverges in 1 of 3, sign flip in 2 of 2; krum never diverges (alie 40, sign flip 30)."""
    plans = {
        ("median", "alie"): [(90.0, False), (90.0, True), (90.0, False)],
        ("median", "sign_flip"): [(10.0, False), (10.0, False)],
        ("trimmed_mean", "alie"): [(50.0, False), (50.0, True), (50.0, False)],
        ("trimmed_mean", "sign_flip"): [(60.0, True), (60.0, True)],
        ("krum", "alie"): [(40.0, False), (40.0, False)],
        ("krum", "sign_flip"): [(30.0, False), (30.0, False)],
    }
    for defense in ("median", "trimmed_mean", "krum"):
        write_run(results, config(base_cfg, defense, "none", seed=0, m=2), [20.0, 80.0])  # not an attack
    for (defense, attack), seeds in plans.items():
        for seed, (final, diverged) in enumerate(seeds):
            write_run(results, config(base_cfg, defense, attack, seed=seed, m=2), [final, final], diverged)


def test_a_diverged_run_makes_the_worst_case(tmp_path, base_cfg, monkeypatch):
    diverging_sweep(tmp_path, base_cfg)
    for metric in (Metric("last-k", 5), Metric("final"), Metric("max")):
        worst = worst_case(collect(tmp_path), metric)
        cells = {row: worst.cells[row, worst.cols[0]] for row in worst.rows}
        # a divergence in 1 of 3 seeds is worse than any accuracy (median's 10% under sign flip) ...
        assert (cells["median"].attack, cells["median"].diverged, cells["median"].seeds) == ("alie", 1, 3)
        assert math.isnan(cells["median"].mean) and cells["median"].attacks == 2
        # ... and among divergences, the largest share of diverged runs (2 of 2 over 1 of 3)
        assert (cells["trimmed_mean"].attack, cells["trimmed_mean"].diverged) == ("sign_flip", 2)
        assert (cells["krum"].attack, cells["krum"].diverged, cells["krum"].mean) == ("sign_flip", 0, 30.0)
    shown = {}
    monkeypatch.setattr("byzrun.report.sweep_plots.save_png", lambda fig, path: shown.setdefault("fig", fig))
    assert run_report(tmp_path) == 0
    frame = tidy(tmp_path / "worst_case.csv").set_index("defense")
    assert frame.loc["median", "worst_attack"] == "alie" and frame.loc["median", "diverged"] == 1
    assert math.isnan(frame.loc["median", "worst_mean"]) and frame.loc["krum", "worst_mean"] == 30.0
    assert frame.loc["krum", "diverged"] == 0
    md = (tmp_path / "worst_case.md").read_text()
    assert "| median | diverged 1/3, alie |" in md and "| trimmed_mean | diverged 2/2, sign_flip |" in md
    assert "| krum | 30.0 ± 0.0 (2), sign_flip |" in md
    # the heatmap: a diverged cell below the colour scale (black, darker than the lowest accuracy)
    ax = shown["fig"].axes[0]
    image = ax.images[0]
    rows = [t.get_text() for t in ax.get_yticklabels()]
    values = image.get_array()
    assert values[rows.index("median"), 0] < image.norm.vmin <= values[rows.index("krum"), 0]
    assert tuple(image.cmap.get_under()) == (0.0, 0.0, 0.0, 1.0)
    texts = {t.get_text() for t in ax.texts}
    assert {"div. 1/3\nalie", "div. 2/2\nsign_flip", "30.0\nsign_flip"} <= texts


def test_runs_differing_in_any_setting_but_the_seed_never_pool(tmp_path, base_cfg):
    write_run(tmp_path, config(base_cfg, lr=0.1, seed=0), [50.0, 60.0])
    write_run(tmp_path, config(base_cfg, lr=0.05, seed=1), [50.0, 70.0])
    write_run(tmp_path, config(base_cfg, lr=0.05, seed=2), [50.0, 80.0])
    write_run(tmp_path, config(base_cfg, "median", "alie", lr=0.05, seed=3, defense__even="lower"), [0, 10.0])
    assert run_report(tmp_path, "--metric", "final") == 0
    frame = tidy(tmp_path / "sweep.csv")
    # lr varies: one section per lr; defense.even varies: two median rows, told apart by a suffix
    cells = {(r.section, r.defense): (r.mean, r.seeds) for r in frame.itertuples()}
    assert cells == {
        ("lr=0.05", "median [defense.even=average]"): (75.0, 2),
        ("lr=0.05", "median [defense.even=lower]"): (10.0, 1),
        ("lr=0.1", "median [defense.even=average]"): (60.0, 1),
    }
    assert len(list(tmp_path.glob("sweep_curves-*.png"))) == 2
    assert run_report(tmp_path, "--cols", "lr") == 0  # one section now: the earlier curves go
    assert [p.name for p in tmp_path.glob("sweep_curves*.png")] == ["sweep_curves.png"]


@pytest.mark.parametrize(
    "key,default,other", [("deterministic", False, True), ("reductions", "torch", "numpy")]
)
def test_a_run_from_before_an_option_existed_pools_with_one_at_its_default(
    tmp_path, base_cfg, key, default, other
):
    """deterministic=false and reductions=torch (the defaults, not hashed) are the config of a run written
    before the key existed: the two share a cell, not two sections; the other value is another setting."""
    old = config(base_cfg, seed=0)
    with open_dict(old):
        del old[key]
    write_run(tmp_path, old, [50.0, 60.0])
    write_run(tmp_path, config(base_cfg, seed=1, **{key: default}), [50.0, 70.0])
    assert run_report(tmp_path, "--metric", "final") == 0
    line = tidy(tmp_path / "sweep.csv").iloc[0]
    assert (line["mean"], line["seeds"], line["section"]) == (65.0, 2, "all runs")
    write_run(tmp_path, config(base_cfg, seed=2, **{key: other}), [50.0, 20.0])
    assert run_report(tmp_path, "--metric", "final") == 0
    assert sorted(tidy(tmp_path / "sweep.csv")["mean"]) == [20.0, 65.0]  # never pooled with the default


def test_rows_and_cols_are_chosen_and_the_rest_become_sections(reported):
    out, _ = reported("--rows", "m", "--cols", "defense", "--metric", "max")
    frame = tidy(out / "sweep.csv")
    assert list(frame.columns[:5]) == ["section", "attack", "m", "defense", "metric"]
    assert list(frame["section"].unique()) == ["attack=none", "attack=alie", "attack=sign_flip"]
    line = frame.set_index(["attack", "m", "defense"]).loc[("sign_flip", 2, "trimmed_mean")]
    expected = np.mean([max(curve_of("trimmed_mean", "sign_flip", 2, s)) for s in (0, 1)])
    assert line["mean"] == pytest.approx(expected, abs=1e-4) and line["seeds"] == 2
    assert "| m / defense | median | trimmed_mean | nnm+median |" in (out / "sweep.md").read_text()


SPLITS = {  # split settings as a run records them -> the label a table shows
    "iid": ({"name": "iid"}, "iid"),
    "dirichlet_1": ({"name": "dirichlet", "alpha": 1.0, "byzantine": "iid"}, "Dir(1)"),
    "dirichlet_0.1": ({"name": "dirichlet", "alpha": 0.1, "byzantine": "iid"}, "Dir(0.1)"),
    "extreme": ({"name": "extreme", "byzantine": "iid"}, "extreme"),
    "extreme_own": ({"name": "extreme", "byzantine": "own"}, "extreme, Byzantine own"),
    "gamma": ({"name": "gamma", "gamma": 0.5, "byzantine": "iid"}, "gamma(0.5)"),
}


def test_heterogeneity_levels_read_as_names_in_every_file(tmp_path, base_cfg, monkeypatch):
    """Sections, CSV columns, worst-case columns and heatmap say `Dir(0.1)`, not split.alpha=0.1, ...;
    from the most to the least homogeneous."""
    for level, (split, _) in SPLITS.items():
        cfg = config(base_cfg, "median", "alie", m=2)
        cfg.split = split
        write_run(tmp_path, cfg, [60.0 + len(level)] * 2)
    shown = {}
    monkeypatch.setattr("byzrun.report.sweep_plots.save_png", lambda fig, path: shown.setdefault("fig", fig))
    assert run_report(tmp_path) == 0
    order = ["iid", "Dir(1)", "Dir(0.1)", "gamma(0.5)", "extreme", "extreme, Byzantine own"]
    assert sorted(label for _, label in SPLITS.values()) == sorted(order)
    frame = tidy(tmp_path / "sweep.csv")
    assert frame["section"].tolist() == [f"split={label}" for label in order]
    assert frame["split"].tolist() == order and "split.alpha" not in frame.columns
    finals = {label: 60.0 + len(level) for level, (_, label) in SPLITS.items()}
    assert frame["mean"].tolist() == [pytest.approx(finals[label]) for label in order]
    md = (tmp_path / "sweep.md").read_text()
    assert "## split=Dir(0.1)\n" in md and "split.alpha" not in md and "null" not in md
    worst = tidy(tmp_path / "worst_case.csv")
    assert worst["split"].tolist() == order
    assert (
        f"| defense | {' | '.join(f'split={label}' for label in order)} |"
        in (tmp_path / "worst_case.md").read_text()
    )
    ticks = [t.get_text() for t in shown["fig"].axes[0].get_xticklabels()]
    assert ticks == [f"split={label}" for label in order]
    # the split as the columns: one section per attack, a column per level
    assert run_report(tmp_path, "--cols", "split") == 0
    assert f"| defense / split | {' | '.join(order)} |" in (tmp_path / "sweep.md").read_text()


def test_bad_rows_or_cols_is_one_line_and_writes_nothing(tmp_path, base_cfg, capsys):
    write_run(tmp_path, config(base_cfg, m=1), [50.0, 60.0])
    write_run(tmp_path, config(base_cfg, m=2), [50.0, 60.0])
    for args, message in (
        (
            ["--rows", "lrr"],
            "--rows lrr: no run has a setting lrr or lrr.*; settings that vary among the runs: m",
        ),
        (["--rows", "defense", "--cols", "defense.pre"], "--rows defense and --cols defense.pre overlap"),
    ):
        assert run_report(tmp_path, *args) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"byzrun tables: error: {message}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]
    with pytest.raises(SystemExit):
        run_report(tmp_path, "--k", "0")
    with pytest.raises(SystemExit):
        run_report(tmp_path, "--metric", "mean")


# ---------------------------------------------------------------- worst case


def test_worst_case_is_the_lowest_seed_mean_over_the_attacks(sweep):
    runs = collect(sweep)
    for metric in (Metric("last-k", 5), Metric("max"), Metric("last-k", 2)):
        worst = worst_case(runs, metric)
        values, attacks, diverged = matrix(worst)
        assert not diverged.any()
        # the rules alone first, then behind a pre-aggregation step
        assert worst.rows == ["median", "trimmed_mean", "nnm+median"] and worst.cols == ["m=1", "m=2"]
        for i, defense in enumerate(worst.rows):
            for j, m in enumerate((1, 2)):
                means = {}
                for attack in ("alie", "sign_flip"):  # attack=none is no attack
                    seeds = seeds_of(defense, attack, m)
                    curves = [curve_of(defense, attack, m, s) for s in seeds]
                    means[attack] = np.mean(
                        [last_k(c, metric.k) if metric.kind == "last-k" else max(c) for c in curves]
                    )
                expected = min(means, key=means.get)
                assert values[i, j] == pytest.approx(means[expected]) and attacks[i][j] == expected
    assert attacks[0][0] == "alie" and attacks[1][0] == "sign_flip"  # the worst attack depends on the rule


def test_worst_case_files_and_heatmap(sweep, reported):
    out, _ = reported()
    png = (out / "worst_case.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    frame = tidy(out / "worst_case.csv")
    values, attacks, _ = matrix(worst_case(collect(sweep), Metric()))
    assert frame["worst_mean"].tolist() == pytest.approx(values.ravel().round(4).tolist())
    assert frame["worst_attack"].tolist() == [a for row in attacks for a in row]
    assert set(frame["attacks"]) == {2}
    md = (out / "worst_case.md").read_text()
    assert "| defense | m=1 | m=2 |" in md and f"| median | {values[0, 0]:.1f} ± " in md
    assert "mean over seeds first, then the minimum over attacks" in md


def test_no_worst_case_without_an_attacked_run(tmp_path, base_cfg, capsys):
    write_run(tmp_path, config(base_cfg, attack="none"), [50.0, 60.0])
    assert run_report(tmp_path) == 0
    assert "no worst case" in capsys.readouterr().out
    assert (tmp_path / "sweep.md").exists() and not (tmp_path / "worst_case.md").exists()


# ---------------------------------------------------------------- folders, files, paper tables


def test_only_the_runs_of_the_folder_given_are_read(tmp_path, base_cfg, capsys):
    results = tmp_path / "results"
    write_run(results, config(base_cfg, "median"), [50.0, 60.0])
    write_run(results / "paper", config(base_cfg, "trimmed_mean"), [50.0, 70.0])  # a committed reproduction
    write_run(tmp_path / "elsewhere", config(base_cfg, "median", "sign_flip"), [50.0, 80.0])
    assert run_report(results) == 0
    assert tidy(results / "sweep.csv")[["defense", "attack"]].values.tolist() == [["median", "alie"]]
    assert f"1 run(s) under {results / 'runs'}" in capsys.readouterr().out
    assert not (results / "paper" / "sweep.md").exists()
    # a folder that holds run folders itself (RESULTS=results/runs) is read as it is, and only it
    assert report.main(["--results-dir", str(results / "runs"), "--out", str(tmp_path / "out")]) == 0
    assert tidy(tmp_path / "out" / "sweep.csv")["defense"].tolist() == ["median"]
    assert not list((results / "runs").glob("sweep*"))


def test_paper_runs_keep_their_table_and_stay_out_of_the_generic_one(tmp_path, base_cfg, capsys):
    write_run(tmp_path, config(base_cfg, "median", "none", name="table1", row="No Attack"), [50.0, 97.0])
    write_run(tmp_path, config(base_cfg, "median", "alie"), [50.0, 60.0])
    assert run_report(tmp_path) == 0
    assert "2 run(s)" in capsys.readouterr().out
    assert "| No Attack | 97.0 (1) |" in (tmp_path / "table1_digits.md").read_text()
    assert tidy(tmp_path / "sweep.csv")["attack"].tolist() == ["alie"]


def test_files_markdown_csv_latex_curves_and_the_same_bytes_twice(sweep, reported):
    out, printed = reported()
    written = [line.removeprefix("wrote ") for line in printed.splitlines() if line.startswith("wrote ")]
    assert {Path(p).parent for p in written} == {out}
    names = sorted(Path(p).name for p in written)
    curves = [n for n in names if n.startswith("sweep_curves-")]
    assert len(curves) == 2 and all(n.endswith(".png") for n in curves)  # a section each
    assert names == sorted(
        [
            *curves,
            "sweep.md",
            "sweep.csv",
            "sweep.tex",
            *(f"worst_case.{e}" for e in ("md", "csv", "tex", "png")),
        ]
    )
    md = (out / "sweep.md").read_text()
    assert all(f"Curves: {name}" in md for name in curves)
    tex = (out / "sweep.tex").read_text()
    assert tex.count(r"\begin{tabular}{lrrr}") == tex.count(r"\end{tabular}") == 2
    rows = [line for line in tex.splitlines() if line.endswith(r"\\")]
    assert len(rows) == 2 * 4 and all(line.count("&") == 3 for line in rows)
    assert "±" not in tex and r"$\pm$" in tex and "nnm+median" in tex and r"trimmed\_mean" in tex
    wtex = (out / "worst_case.tex").read_text()
    assert wtex.count(r"\begin{tabular}{lrr}") == 1 and r"sign\_flip" in wtex
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.suffix in (".md", ".csv", ".tex")}
    assert run_report(sweep, "--out", str(out)) == 0
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.suffix in (".md", ".csv", ".tex")} == before


def test_python_dash_m_byzrun_report(tmp_path, base_cfg, monkeypatch, capsys):
    write_run(tmp_path, config(base_cfg), [50.0, 60.0])
    monkeypatch.setattr(sys, "argv", ["byzrun.report", "--results-dir", str(tmp_path), "--metric", "final"])
    with pytest.raises(SystemExit) as exit:
        runpy.run_module("byzrun.report", run_name="__main__")
    assert exit.value.code == 0
    assert f"wrote {tmp_path / 'sweep.md'}" in capsys.readouterr().out


def test_the_table_holds_every_run_once(sweep):
    runs = collect(sweep)
    table = build_table(runs, Dimension("defense"), Dimension("attack"), Metric())
    placed = [r.name for s in table.sections for c in s.cells.values() for r in c.runs]
    assert sorted(placed) == sorted(r.name for r in runs)
