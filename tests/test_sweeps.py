"""Presets, launchers and sweeps: every preset composes, a real parallel sweep runs, resumes and reports."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from byzrun import attacks, defenses
from tests.conftest import CONF_DIR, make_cfg

PRESETS = sorted(p.stem for p in (Path(CONF_DIR) / "experiment").glob("*.yaml"))
ROOT = Path(__file__).resolve().parent.parent


def test_the_paper_presets_exist():
    for table in ("table1", "table2"):
        for dataset in ("mnist", "cifar10", "cifar100", "fashion_mnist"):
            assert f"{table}_{dataset}" in PRESETS
    for dataset in ("mnist", "fashion_mnist", "cifar10", "cifar100"):
        assert f"momentum_grid_{dataset}" in PRESETS


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_composes_and_every_sweep_point_builds(preset):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"experiment={preset}"], return_hydra_config=True)
    params = cfg.hydra.sweeper.params
    assert "seed" in params and len(str(params.seed).split(",")) >= 3  # several seeds by default
    for defense in str(params.defense).split(","):
        for attack in str(params.attack).split(","):
            point = make_cfg(f"experiment={preset}", f"defense={defense}", f"attack={attack}")
            assert point.name in ("table1", "table2", "momentum")
            assert isinstance(defenses.build(point.defense), defenses.Defense)
            assert isinstance(attacks.build(point.attack), attacks.Attack)


def test_table_presets_follow_the_alie_paper():
    cfg = make_cfg("experiment=table1_mnist", "attack=alie")
    assert (cfg.n, cfg.m, cfg.attack.factor, cfg.batch_size, cfg.lr, cfg.momentum.beta) == (
        51,
        12,
        1.5,
        128,
        0.1,
        0.9,
    )
    assert cfg.model.name == "mlp" and cfg.defense._target_.endswith("Mean")
    assert make_cfg("experiment=table1_cifar100").model.name == "wrn"
    assert make_cfg("experiment=table1_cifar10").model.name == "cnn"
    backdoor = make_cfg("experiment=table2_mnist", "attack=alie_backdoor").attack
    assert (backdoor.z, backdoor.alpha, backdoor.samples, backdoor.local_steps, backdoor.target) == (
        0.2,
        0.2,
        1000,
        5,
        0,
    )
    tm = defenses.build(make_cfg("experiment=table1_mnist", "defense=trimmed_mean").defense)
    assert tm.variant == "nearest_n-2f"  # Bulyan's variant unless the preset says otherwise


def test_momentum_presets_follow_the_distributed_momentum_paper():
    cfg = make_cfg("experiment=momentum_grid_cifar10")
    assert (cfg.n, cfg.batch_size, cfg.momentum.beta, cfg.model.name) == (25, 50, 0.99, "momentum_cnn")
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        hydra_cfg = compose(
            config_name="config", overrides=["experiment=momentum_grid_mnist"], return_hydra_config=True
        )
    params = hydra_cfg.hydra.sweeper.params
    assert str(params.m) == "12,24" and str(params["momentum.placement"]) == "server,worker"
    assert str(params.seed) == "1,2,3,4,5"
    assert str(params.defense) == "dm_krum,median,trimmed_mean,phocas,meamed,bulyan"
    assert str(params.attack) == "little,empire"
    # the code's "krum": Multi-Krum over the n-f-2 best rows, plain distances
    dm_krum = defenses.build(make_cfg("experiment=momentum_grid_mnist").defense)
    assert (type(dm_krum).__name__, dm_krum.count(51, 12), dm_krum.distances) == ("MultiKrum", 37, "plain")


def test_the_slurm_launcher_config_composes():
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=["experiment=table1_cifar10", "hydra/launcher=slurm", "hydra.launcher.partition=gpu"],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher.partition, launcher.gpus_per_node, launcher.timeout_min) == ("gpu", 1, 720)


def byzrun_sweep(results: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "byzrun.cli",
        "-m",
        "experiment=table1_mnist",
        "dataset=digits",
        "n=11",
        "m=2",
        "batch_size=16",
        "rounds=20",
        "eval_every=10",
        "seed=1,2",
        "defense=mean,krum",
        "hydra/launcher=local",
        f"results_dir={results}",
        "progress=false",
        *extra,
    ]
    return subprocess.run(cmd, cwd=results.parent, capture_output=True, text=True, timeout=600)


def test_a_parallel_sweep_produces_a_table_and_resumes(tmp_path):
    results = tmp_path / "results"
    done = byzrun_sweep(results)
    assert done.returncode == 0, done.stderr
    summaries = sorted(results.glob("runs/*/summary.csv"))
    assert len(summaries) == 8  # 2 attacks x 2 defenses x 2 seeds
    frame = pd.concat(pd.read_csv(p) for p in summaries)
    assert set(frame["defense"]) == {"mean", "krum"} and set(frame["attack"]) == {"none", "alie"}
    assert set(frame["seed"]) == {1, 2} and (frame["name"] == "table1").all()

    # an interrupted sweep: one run lost its summary; re-running redoes only that one
    lost = summaries[3]
    lost.unlink()
    stamps = {p: p.stat().st_mtime_ns for p in summaries if p != lost}
    again = byzrun_sweep(results)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("already finished, skipping") == 7
    assert lost.exists()
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())

    report = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_tables.py"), "--results-dir", str(results)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert report.returncode == 0, report.stderr
    table = (results / "table1.md").read_text()
    assert "Krum" in table and "No Attack" in table


def test_a_sweep_skips_points_outside_a_rules_bound_with_a_log_line(tmp_path):
    results = tmp_path / "results"
    done = byzrun_sweep(results, "m=2,3", "defense=bulyan", "attack=alie", "seed=1", "hydra/launcher=basic")
    assert done.returncode == 0, done.stderr
    assert "skipped: defense bulyan tolerates at most f=2" in done.stdout + done.stderr
    assert len(list(results.glob("runs/*/summary.csv"))) == 1
