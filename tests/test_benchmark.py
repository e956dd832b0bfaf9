"""The robustness benchmark presets (conf/experiment/robustness_benchmark*.yaml): one per dataset, the
grid they sweep, the named options they sweep over, and a plan of the digits version."""

import math
from pathlib import Path

import pytest

from byzrun.build import build_attack, build_defense
from byzrun.config import config_hash
from byzrun.errors import BoundError
from tests.conftest import make_cfg, run_cli
from tests.test_sweeps import point_cfg, sweep_params, sweep_values

DATASETS = {"digits": "mlp", "mnist": "mlp", "fashion_mnist": "mlp", "cifar10": "cnn"}
DEFENSES = [
    "mean",
    "trimmed_mean",
    "median",
    "krum",
    "geometric_median",
    "centered_clipping",
    "dnc",
    "signguard",
]
ATTACKS = ["none", "sign_flip", "label_flip", "ipm_optimal", "alie_optimal", "minmax", "minsum", "mimic"]
ATTACKS += ["fang", "fang_trim"]


@pytest.mark.parametrize("dataset,model", sorted(DATASETS.items()))
def test_a_benchmark_preset_per_dataset_with_three_seeds(dataset, model):
    preset = f"robustness_benchmark_{dataset}"
    cfg = point_cfg(f"experiment={preset}")
    assert (cfg.name, cfg.dataset.name, cfg.model.name, cfg.n) == ("benchmark", dataset, model, 20)
    assert str(sweep_params(preset).seed) == "1,2,3"
    values = sweep_values(preset)
    assert values["defense.pre"] == ["[]", "[nnm]", "[arc,nnm]"]  # alone, behind NNM, behind ARC then NNM
    assert values["attack"] == ATTACKS


def test_the_full_benchmark_sweeps_every_rule_attack_f_and_heterogeneity_level():
    values = sweep_values("robustness_benchmark_mnist")
    assert values["defense"] == DEFENSES
    assert values["m"] == ["2", "5"]
    assert values["split"] == ["iid", "dirichlet_1", "dirichlet_0.1", "extreme"]
    assert math.prod(len(v) for v in values.values()) == 8 * 3 * 10 * 2 * 4 * 3
    # the attacks are built as their names say: the searched factors, both of Fang's attacks
    built = {
        a: build_attack(point_cfg("experiment=robustness_benchmark_mnist", f"attack={a}").attack)
        for a in ATTACKS
    }
    assert built["alie_optimal"].name == "alie" and built["alie_optimal"].factor == "optimal"
    assert built["ipm_optimal"].name == "ipm" and built["ipm_optimal"].factor == "optimal"
    assert (built["fang"].variant, built["fang_trim"].variant) == ("krum", "trim")


@pytest.mark.parametrize(
    "short,long",
    [
        (["split=dirichlet_0.1"], ["split=dirichlet", "split.alpha=0.1"]),
        (["split=dirichlet_1"], ["split=dirichlet", "split.alpha=1.0"]),
        (["attack=alie_optimal"], ["attack=alie", "attack.factor=optimal"]),
        (["attack=ipm_optimal"], ["attack=ipm", "attack.factor=optimal"]),
        (["attack=fang_trim"], ["attack=fang", "attack.variant=trim"]),
    ],
)
def test_a_named_option_is_its_long_form(short, long):
    """A sweep names a heterogeneity level or an attack's setting as one option; the runs are those of
    the long form (same config, same hash), so either command finds them finished."""
    named, spelled = make_cfg("dataset=digits", "m=4", *short), make_cfg("dataset=digits", "m=4", *long)
    assert named == spelled
    assert config_hash(named) == config_hash(spelled)


def test_every_digits_run_is_within_its_rules_bound():
    """900 runs, none skipped: centered clipping (f/n <= 0.1) is left out of the digits version at
    m=4 of 20; in the full benchmark it runs at m=2 and is skipped at m=5."""
    values = sweep_values("robustness_benchmark_digits")
    assert math.prod(len(v) for v in values.values()) == 900
    for defense in values["defense"]:
        for pre in values["defense.pre"]:
            cfg = point_cfg(
                "experiment=robustness_benchmark_digits", f"defense={defense}", f"defense.pre={pre}"
            )
            build_defense(cfg.defense).check(cfg.n, cfg.m)
    clipping = point_cfg("experiment=robustness_benchmark_mnist", "defense=centered_clipping")
    build_defense(clipping.defense).check(20, 2)
    with pytest.raises(BoundError):
        build_defense(clipping.defense).check(20, 5)


def test_a_plan_of_the_digits_benchmark_counts_its_runs(tmp_path, monkeypatch, capsys):
    """`+plan=true` on a slice of the digits benchmark: NNM and ARC then NNM times m=4,9, Krum's bound
    (n >= 2f+3) skipping m=9; nothing is trained beyond the two probes."""
    results = tmp_path / "results"
    args = ["-m", "experiment=robustness_benchmark_digits", "defense=krum", "attack=none", "split=iid"]
    args += ["defense.pre=[nnm],[arc,nnm]"]
    args += ["m=4,9", "seed=1", "hydra/launcher=basic", f"results_dir={results}", "progress=false"]
    assert run_cli(monkeypatch, *args, "+plan=true") == 0
    out = capsys.readouterr().out
    assert "plan: 4 runs: 0 already done, 2 skipped by a bound, 0 with errors, 2 to run" in out
    assert not results.exists() or not any(results.rglob("summary.csv"))


def test_the_benchmark_readme_quotes_its_worst_case_table_and_runs():
    """results/benchmark/README.md's heatmap table is the committed worst_case.csv (written by
    `python -m byzrun.report` from the runs) rounded to one decimal, and its run counts are the runs'."""
    import pandas as pd

    folder = Path(__file__).resolve().parent.parent / "results" / "benchmark"
    text = (folder / "README.md").read_text()
    worst = pd.read_csv(folder / "worst_case.csv")
    names = {"mean": "mean", "trimmed_mean": "trimmed mean", "median": "median", "krum": "Krum"}
    names |= {"geometric_median": "geometric median"}
    names |= {f"nnm+{key}": f"NNM + {value}" for key, value in list(names.items())}
    names |= {f"arc+{key}": f"ARC + {value}" for key, value in list(names.items()) if key.startswith("nnm+")}
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ")}
    columns = rows["defense"].split("|")
    for _, cell in worst.iterrows():
        column = next(i for i, name in enumerate(columns) if name.strip() == cell["split"])
        quoted = rows[names[cell["defense"]]].split("|")[column]
        if cell["diverged"]:  # the worst case is a divergence: how many of the cell's runs diverged
            assert quoted.strip().startswith(f"diverged {cell['diverged']}/{cell['worst_seeds']} "), quoted
        else:
            assert quoted.strip().startswith(f"{cell['worst_mean']:.1f} "), (cell["defense"], quoted)
        assert cell["worst_attack"].replace("_", " ") in quoted.replace("_", " "), (cell["defense"], quoted)
    assert len(worst) == len([r for r in rows if r in names.values()]) * (len(columns) - 3)
    summaries = [pd.read_csv(path).iloc[0] for path in sorted(folder.glob("runs/*/summary.csv"))]
    diverged = sum(bool(s["diverged"]) for s in summaries)
    assert f"{diverged} of the {len(summaries)} runs diverged" in text


def test_the_benchmark_readme_quotes_the_measured_rerun():
    """The end-to-end rerun's time and its match with the committed runs, as rerun.json records them
    (scripts/benchmark_rerun.py over the rerun's folder and /usr/bin/time's report)."""
    import json

    folder = Path(__file__).resolve().parent.parent / "results" / "benchmark"
    text = " ".join((folder / "README.md").read_text().split())
    rerun = json.loads((folder / "rerun.json").read_text())
    minutes, seconds = divmod(round(rerun["wall_s"]), 60)
    cpu = rerun["user_s"] + rerun["system_s"]
    assert f"took {minutes} min {seconds} s of wall clock and {cpu:,.0f} s of CPU" in text
    assert f"({rerun['user_s']:,.1f} user + {rerun['system_s']:.1f} system" in text
    assert rerun["exit_status"] == 0 and rerun["runs"] == rerun["committed_runs"] == 900
    assert rerun["same_folder"] == rerun["same_metrics"] == 900 and rerun["different_metrics"] == []
    assert "All 900 reruns landed in the folders of the committed runs" in text
    assert "all 900 wrote the committed `metrics.csv`" in text
    assert minutes < 20  # the budget for the digits benchmark on a 2-core CPU


def test_the_rerun_script_reads_times_report_and_compares_metrics_but_wall_time(tmp_path):
    import importlib.util

    import pandas as pd

    spec = importlib.util.spec_from_file_location(
        "benchmark_rerun", Path(__file__).resolve().parent.parent / "scripts" / "benchmark_rerun.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    report = tmp_path / "time.txt"
    report.write_text(
        "\tUser time (seconds): 10.50\n\tSystem time (seconds): 1.25\n"
        "\tElapsed (wall clock) time (h:mm:ss or m:ss): 1:02:03.5\n\tExit status: 0\n"
    )
    assert module.time_v(report) == {"wall_s": 3723.5, "user_s": 10.5, "system_s": 1.25, "exit_status": 0}
    ours, theirs = tmp_path / "a", tmp_path / "b"
    for folder, wall, acc in ((ours, 1.0, 50.0), (theirs, 2.0, 50.0)):
        folder.mkdir()
        pd.DataFrame({"round": [5], "test_acc": [acc], "wall_seconds": [wall]}).to_csv(folder / "metrics.csv")
    assert module.same_metrics(ours, theirs)  # wall time aside
    pd.DataFrame({"round": [5], "test_acc": [50.1], "wall_seconds": [1.0]}).to_csv(ours / "metrics.csv")
    assert not module.same_metrics(ours, theirs)
