"""Presets, launchers and sweeps: every preset and sweep point resolves to the config it had when it
was recorded, a real parallel sweep runs, resumes and reports."""

import copy
import functools
import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from byzrun import report
from byzrun.build import build_attack, build_defense
from byzrun.config import config_hash
from tests.conftest import CONF_DIR, make_cfg, run_cli

PRESETS = sorted(p.stem for p in (Path(CONF_DIR) / "experiment").glob("*.yaml"))
#: presets that only hold what their dataset columns share (a column is one small file on top)
BASES = {"table1", "table2", "momentum_grid", "robustness_benchmark"}
ROOT = Path(__file__).resolve().parent.parent
RECORDED = json.loads((Path(__file__).parent / "preset_hashes.json").read_text())
#: config groups: an override of one of these changes the defaults list, so Hydra must compose it
GROUPS = ("experiment", "cell", "dataset", "model", "defense", "attack", "split")
#: a sweep larger than this is checked on a covering sample (sweep_points), each point costing a compose
MAX_CHECKED = 100


def test_the_paper_presets_exist():
    for table in ("table1", "table2"):
        for dataset in ("mnist", "cifar10", "cifar100", "fashion_mnist"):
            assert f"{table}_{dataset}" in PRESETS
    for dataset in ("mnist", "fashion_mnist", "cifar10", "cifar100"):
        assert f"momentum_grid_{dataset}" in PRESETS


@functools.cache
def composed(*overrides: str, hydra: bool = False) -> DictConfig:
    """make_cfg, composed once per set of overrides for this module (the tests here only read it)."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=hydra)


def sweep_params(preset: str):
    return composed(f"experiment={preset}", hydra=True).hydra.sweeper.params


def sweep_values(preset: str) -> dict[str, list[str]]:
    """Each swept key's values as Hydra parses them (`defense.pre: "[],[arc,nnm]"` is two lists)."""
    parser = OverridesParser.create()
    values = {}
    for key, value in sweep_params(preset).items():
        override = parser.parse_overrides([f"{key}={value}"])[0]
        sweep = override.is_sweep_override()
        values[key] = (
            list(override.sweep_string_iterator()) if sweep else [override.get_value_element_as_str()]
        )
    return values


def sweep_points(preset: str) -> list[list[str]]:
    """The overrides of every sweep point of a preset, the seed left out; for a sweep of more than
    MAX_CHECKED points, a covering sample instead (point i takes value i mod len of every key), in
    which every value of every key occurs."""
    params = {k: v for k, v in sweep_values(preset).items() if k != "seed"}
    if math.prod(len(v) for v in params.values()) > MAX_CHECKED:
        width = max(len(v) for v in params.values())
        return [[f"{k}={v[i % len(v)]}" for k, v in params.items()] for i in range(width)]
    points = [[]]
    for key, values in params.items():
        points = [[*p, f"{key}={v}"] for p in points for v in values]
    return points


def point_cfg(*overrides: str) -> DictConfig:
    """The config of `byzrun <overrides>`: the group choices composed by Hydra (once per combination),
    then the plain values (m=24, momentum.placement=worker) set as Hydra sets them."""
    groups = tuple(o for o in overrides if o.split("=")[0] in GROUPS)
    cfg = copy.deepcopy(composed(*groups))
    for override in overrides:
        key, value = override.split("=", 1)
        if key not in GROUPS:
            OmegaConf.update(cfg, key, hydra_value(override), merge=False)
    return cfg


def hydra_value(override: str):
    """The value of `key=value` as Hydra reads it (`[{name:bucketing,s:2}]` is a list of one dict)."""
    return OverridesParser.create().parse_overrides([override])[0].value()


def resolved(cfg: DictConfig) -> str:
    """What names a run's folder: the config hash and the defense's and attack's labels."""
    return f"{config_hash(cfg)} {build_defense(cfg.defense).name} {build_attack(cfg.attack).name}"


def test_every_preset_was_recorded_or_is_a_base():
    assert set(RECORDED["sweeps"]) <= set(PRESETS)
    assert set(PRESETS) - set(RECORDED["sweeps"]) <= BASES
    # the momentum grid's base is its MNIST column
    assert (
        resolved(point_cfg("experiment=momentum_grid"))
        == RECORDED["points"]["experiment=momentum_grid_mnist"]
    )


@pytest.mark.parametrize("preset", sorted(RECORDED["sweeps"]))
def test_every_preset_and_sweep_point_resolves_as_recorded(preset):
    """Every sweep point (seed 0) has the config hash and run folder it had when presets became data
    (tests/preset_hashes.json): a finished run is found again, and resumed sweeps skip it."""
    params = {key: str(value) for key, value in sweep_params(preset).items()}
    assert params == RECORDED["sweeps"][preset]
    assert len(params["seed"].split(",")) >= 3  # several seeds by default
    points = [[f"experiment={preset}"]] + [[f"experiment={preset}", *p] for p in sweep_points(preset)]
    for point in points:
        cfg = point_cfg(*point)
        assert cfg.name in ("table1", "table2", "momentum", "benchmark", "bucketing", "byzfl_heatmap")
        assert resolved(cfg) == RECORDED["points"][" ".join(point)], point
    # setting the plain values on a composed config is what Hydra does with them
    assert config_hash(point_cfg(*points[-1])) == config_hash(make_cfg(*points[-1], "progress=true"))


# The cells each ALIE table preset runs: (row label, attack, defense) -- exactly these, nothing else
TABLE1_CELLS = [
    ("No Attack", "none", "mean"),
    ("No Defense", "alie", "mean"),
    ("Trimmed Mean (paper)", "alie", "trimmed_mean"),
    ("Trimmed Mean (ALIE code)", "alie", "trimmed_mean_alie_code"),
    ("Krum (paper)", "alie", "krum"),
    ("Krum (ALIE code)", "alie", "krum_alie_code"),
    ("Bulyan (paper)", "alie", "bulyan"),
    ("Bulyan (ALIE code)", "alie", "bulyan_alie_code"),
]
TABLE2_CELLS = [
    ("No Attack", "none", "mean"),
    ("No Defense (paper)", "alie_backdoor", "mean"),
    ("No Defense (ALIE code)", "alie_backdoor_code", "mean"),
    ("Trimmed Mean (paper)", "alie_backdoor", "trimmed_mean"),
    ("Trimmed Mean (ALIE code)", "alie_backdoor_code", "trimmed_mean_alie_code"),
    ("Krum (paper)", "alie_backdoor", "krum"),
    ("Krum (ALIE code)", "alie_backdoor_code", "krum_alie_code"),
    ("Bulyan (paper)", "alie_backdoor", "bulyan"),
    ("Bulyan (ALIE code)", "alie_backdoor_code", "bulyan_alie_code"),
]


@pytest.mark.parametrize("table,cells", [("table1", TABLE1_CELLS), ("table2", TABLE2_CELLS)])
@pytest.mark.parametrize("dataset", ["mnist", "fashion_mnist", "cifar10", "cifar100"])
def test_a_table_preset_runs_exactly_its_cells_with_five_seeds(table, cells, dataset):
    preset = f"{table}_{dataset}"
    assert str(sweep_params(preset).seed) == "1,2,3,4,5"
    points = sweep_points(preset)
    assert all(len(p) == 1 and p[0].startswith(f"cell={table}/") for p in points)
    found = []
    for point in points:
        cfg = point_cfg(f"experiment={preset}", *point)
        attack, defense = build_attack(cfg.attack), build_defense(cfg.defense)
        found.append((cfg.row, attack.name, defense.name))
        assert (cfg.name, cfg.dataset.name, cfg.n, cfg.m, cfg.rounds) == (table, dataset, 51, 12, 300)
        # the protocol of the authors' code, the same for every cell of a table
        assert (cfg.sampling, cfg.eval_every, cfg.eval_first, cfg.lr_schedule) == (
            "alie_code",
            5,
            1,
            "constant",
        )
    assert found == cells


def test_the_alie_code_cells_use_the_codes_definitions():
    krum = build_defense(point_cfg("experiment=table1_mnist", "cell=table1/krum_alie_code").defense).rule
    assert (krum.distances, krum.neighbours) == ("plain", "alie_code")
    bulyan = build_defense(point_cfg("experiment=table1_mnist", "cell=table1/bulyan_alie_code").defense).rule
    assert (bulyan.distances, bulyan.neighbours, bulyan.beta) == ("plain", "alie_code", "alie_code")
    tm = build_defense(
        point_cfg("experiment=table1_mnist", "cell=table1/trimmed_mean_alie_code").defense
    ).rule
    assert tm.variant == "alie_code"
    paper = build_defense(point_cfg("experiment=table1_mnist", "cell=table1/krum").defense).rule
    assert (paper.distances, paper.neighbours) == ("squared", "paper")
    code = point_cfg("experiment=table2_mnist", "cell=table2/no_defense_alie_code").attack
    assert (code.convention, code.batch_size, code.samples, code.local_lr, code.trigger_value) == (
        "alie_code",
        200,
        2000,
        0.1,
        2.8,
    )


def test_table_presets_follow_the_alie_paper():
    cfg = point_cfg("experiment=table1_mnist", "attack=alie")
    assert (cfg.n, cfg.m, cfg.attack.factor, cfg.batch_size, cfg.lr, cfg.momentum.beta) == (
        51,
        12,
        1.5,
        128,
        0.1,
        0.9,
    )
    assert cfg.model.name == "mlp" and cfg.defense._target_.endswith("Mean")
    assert point_cfg("experiment=table1_cifar100").model.name == "wrn"
    assert point_cfg("experiment=table1_cifar10").model.name == "cnn"
    backdoor = point_cfg("experiment=table2_mnist", "attack=alie_backdoor").attack
    assert (backdoor.z, backdoor.alpha, backdoor.samples, backdoor.local_steps, backdoor.target) == (
        0.2,
        0.2,
        1000,
        5,
        0,
    )
    tm = build_defense(point_cfg("experiment=table1_mnist", "defense=trimmed_mean").defense).rule
    assert tm.variant == "nearest_n-2f"  # Bulyan's variant unless the preset says otherwise


def test_momentum_presets_follow_the_distributed_momentum_paper():
    cfg = point_cfg("experiment=momentum_grid_cifar10")
    assert (cfg.n, cfg.batch_size, cfg.momentum.beta, cfg.model.name) == (25, 50, 0.99, "momentum_cnn")
    assert (cfg.dataset.name, cfg.model.hidden) == ("cifar10", 128)
    cfg = point_cfg("experiment=momentum_grid_cifar100")
    assert (cfg.dataset.name, cfg.n, cfg.model.name, cfg.model.hidden) == (
        "cifar100",
        25,
        "momentum_cnn",
        256,
    )
    params = sweep_params("momentum_grid_mnist")
    assert str(params.m) == "12,24" and str(params["momentum.placement"]) == "server,worker"
    assert str(params.seed) == "1,2,3,4,5"
    assert str(params.defense) == "dm_krum,median,trimmed_mean,phocas,meamed,bulyan"
    assert str(params.attack) == "little,empire"
    # the code's "krum": Multi-Krum over the n-f-2 best rows, plain distances to the n-f-1 nearest
    dm_krum = build_defense(point_cfg("experiment=momentum_grid_mnist").defense).rule
    assert (type(dm_krum).__name__, dm_krum.count(51, 12), dm_krum.distances) == ("MultiKrum", 37, "plain")
    assert dm_krum.neighbours == "dm_code"


def test_the_slurm_launcher_config_composes():
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=["experiment=table1_cifar10", "hydra/launcher=slurm", "hydra.launcher.partition=gpu"],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.byzrun_slurm_launcher.slurm_launcher.SlurmLauncher"
    assert (launcher.partition, launcher.gpus_per_node, launcher.timeout_min) == ("gpu", 1, 720)
    assert (launcher.runs_per_job, launcher.array_parallelism) == (1, 64)


SWEEP = [
    "-m",
    "experiment=table1_mnist",
    "dataset=digits",
    "n=7",
    "m=2",
    "batch_size=16",
    "rounds=4",
    "eval_every=2",
    "sampling=shards",
    "seed=1,2",
    "cell=table1/no_attack,table1/no_defense,table1/krum",
    "progress=false",
]


def test_a_parallel_sweep_produces_a_table_and_resumes(tmp_path, monkeypatch, capsys):
    """The one real end-to-end sweep: `byzrun -m` in a new process, its runs in parallel processes
    (the joblib launcher); then the resume and the tables in this process."""
    results = tmp_path / "results"
    cmd = [sys.executable, "-m", "byzrun.cli", *SWEEP, "hydra/launcher=local", f"results_dir={results}"]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    summaries = sorted(results.glob("runs/*/summary.csv"))
    assert len(summaries) == 6  # 3 cells x 2 seeds
    frame = pd.concat(pd.read_csv(p) for p in summaries)
    assert set(frame["defense"]) == {"mean", "krum"} and set(frame["attack"]) == {"none", "alie"}
    assert set(frame["row"]) == {"No Attack", "No Defense", "Krum (paper)"}
    assert set(frame["seed"]) == {1, 2} and (frame["name"] == "table1").all()

    # an interrupted sweep: one run lost its summary; re-running redoes only that one
    lost = summaries[3]
    lost.unlink()
    stamps = {p: p.stat().st_mtime_ns for p in summaries if p != lost}
    assert run_cli(monkeypatch, *SWEEP, "hydra/launcher=basic", f"results_dir={results}") == 0
    assert capsys.readouterr().out.count("already finished, skipping") == 5
    assert lost.exists()
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())

    assert report.main(["--results-dir", str(results)]) == 0
    table = (results / "table1_digits.md").read_text()
    assert "Krum" in table and "No Attack" in table


def test_a_sweep_skips_points_outside_a_rules_bound_with_a_log_line(tmp_path, monkeypatch, capsys):
    results = tmp_path / "results"
    args = [*SWEEP, "m=1,2", "cell=table1/bulyan", "seed=1", "hydra/launcher=basic", f"results_dir={results}"]
    assert run_cli(monkeypatch, *args) == 0
    out = capsys.readouterr()
    assert "skipped: defense bulyan tolerates at most f=1" in out.out + out.err
    assert len(list(results.glob("runs/*/summary.csv"))) == 1


def test_a_sweep_plan_counts_and_estimates_without_training(tmp_path, monkeypatch, capsys):
    """`byzrun -m ... +plan=true`: the number of runs, done (resume), skipped by a bound, to run with an
    estimate from a short probe; nothing trained or written under results_dir."""
    results = tmp_path / "results"
    base = [*SWEEP[:10], "cell=table1/no_attack,table1/bulyan", "seed=1,2", "progress=false"]
    base += ["hydra/launcher=basic", f"results_dir={results}"]
    done_args = [a for a in base if a not in ("-m", "seed=1,2")] + ["seed=1"]
    done_args = [a if not a.startswith("cell=") else "cell=table1/no_attack" for a in done_args]
    assert run_cli(monkeypatch, *done_args) == 0  # one run already finished
    before = sorted(p for p in results.rglob("*"))
    capsys.readouterr()
    assert run_cli(monkeypatch, *base, "+plan=true") == 0
    out = capsys.readouterr().out
    assert "plan: 4 runs: 1 already done, 2 skipped by a bound, 0 with errors, 1 to run" in out
    assert "plan: estimated wall time" in out and "nothing was trained or written" in out
    assert "4 runs: 0 done" not in out  # no sweep summary of runs that never ran
    assert sorted(p for p in results.rglob("*")) == before  # no run folder, no sweep folder
    assert "BYZRUN_PLAN_DIR" not in __import__("os").environ


def test_a_plan_probes_once_per_cost_not_per_seed_or_data_split():
    """The probe's key leaves out what does not change a round's cost (the seed, the labels, the split);
    the worker counts, the rule and the attack stay in."""
    from byzrun.plan import _cost_key

    base = point_cfg("experiment=byzfl_heatmap_mnist", "m=2")
    same = [
        point_cfg("experiment=byzfl_heatmap_mnist", "m=2", "split.gamma=0.0", "seed=2"),
        point_cfg("experiment=byzfl_heatmap_mnist", "m=2", "split=dirichlet", "split.alpha=0.1"),
    ]
    other = [
        point_cfg("experiment=byzfl_heatmap_mnist", "m=3"),
        point_cfg("experiment=byzfl_heatmap_mnist", "m=2", "cell=byzfl/gm"),
        point_cfg("experiment=byzfl_heatmap_mnist", "m=2", "attack=alie_optimal_plus"),
    ]
    assert all(_cost_key(cfg) == _cost_key(base) for cfg in same)
    assert len({_cost_key(cfg) for cfg in [base, *other]}) == 4
