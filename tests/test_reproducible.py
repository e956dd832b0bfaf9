"""deterministic=true: the same metrics when the math libraries are told the CPU is older.

The libraries read their code path from the environment when they load, so the runs here are `byzrun`
subprocesses: one as the machine is, one with every library capped below it (ATen's scalar kernels,
oneDNN's SSE4.1 kernels, MKL's SSE4.2 instructions and its automatic dispatch), as an older CPU would
present them. Each runs an MLP and a convolutional model (BatchNorm, dropout) under ALIE against the
median, with an evaluation after every round.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from omegaconf import open_dict

from byzrun.config import config_hash
from byzrun.errors import ConfigError
from byzrun.reproducible import MARKER, PINNED_ENV, requested
from byzrun.train import run
from tests.conftest import make_cfg

ROOT = Path(__file__).resolve().parent.parent

#: two short runs, one process: the MLP and the Distributed Momentum CNN (model.hidden is in both)
RUNS = [
    "-m",
    "dataset=digits",
    "model=mlp,momentum_cnn",
    "model.hidden=16",
    "n=5",
    "m=1",
    "defense=median",
    "attack=alie",
    "attack.knowledge=omniscient",
    "batch_size=8",
    "rounds=2",
    "eval_every=1",
    "bn_calibration=32",
    "device=cpu",
    "progress=false",
]

#: the environment of an older CPU: no AVX2 kernels in ATen, SSE4.1 in oneDNN, SSE4.2 in MKL
OLDER_CPU = {
    "ATEN_CPU_CAPABILITY": "default",
    "ONEDNN_MAX_CPU_ISA": "SSE41",
    "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
    "MKL_CBWR": "AUTO",
}


def byzrun_runs(tmp: Path, *args: str) -> tuple[dict, dict]:
    """RUNS in two fresh `byzrun` processes at once, one as the machine is and one with OLDER_CPU added
    (both from a clean environment); from each, per model: metrics.csv without its clock column (as
    text, for an exact comparison) and the summary row."""
    clean = {k: v for k, v in os.environ.items() if k not in {*PINNED_ENV, *OLDER_CPU, MARKER}}
    started = []
    for name, env in (("here", {}), ("older", OLDER_CPU)):
        command = [sys.executable, "-m", "byzrun.cli", *RUNS, *args, f"results_dir={tmp / name}"]
        env = {**clean, **env, "PYTHONPATH": str(ROOT)}
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        started.append((process, tmp / name))
    found = []
    for process, out in started:
        _, stderr = process.communicate()
        assert process.returncode == 0, stderr.decode()[-2000:]
        runs = {}
        for folder in (out / "runs").iterdir():
            summary = pd.read_csv(folder / "summary.csv").iloc[0]
            metrics = pd.read_csv(folder / "metrics.csv").drop(columns="wall_seconds")
            runs[summary["model"]] = (metrics.to_csv(index=False), summary)
        assert sorted(runs) == ["mlp", "momentum_cnn"]
        found.append(runs)
    return found[0], found[1]


def test_a_deterministic_run_gives_the_same_metrics_when_the_libraries_see_an_older_cpu(tmp_path):
    here, older = byzrun_runs(tmp_path, "deterministic=true")
    for model in here:
        assert here[model][0] == older[model][0], model
        for summary in (here[model][1], older[model][1]):
            assert summary["deterministic"] and summary["threads"] == 1
            assert summary["cpu_capability"] == here[model][1]["cpu_capability"]
            assert summary["cpu_capability"] in ("AVX2", "DEFAULT")  # never AVX512: capped (or no AVX2)
        assert here[model][0].count("\n") == 1 + 2  # the header, an evaluation every round


def test_without_deterministic_the_older_cpu_computes_other_floats(tmp_path):
    """The negative: the same runs unpinned follow each library's own path, and the floats differ (on a
    CPU without AVX2 ATen has no faster path to leave: then its kernels are the same in both)."""
    here, older = byzrun_runs(tmp_path)
    capability = here["mlp"][1]["cpu_capability"]
    assert {run[1]["cpu_capability"] for run in older.values()} == {"DEFAULT"}
    assert not any(run[1]["deterministic"] for run in [*here.values(), *older.values()])
    if capability != "DEFAULT":
        for model in here:
            assert here[model][0] != older[model][0], model


def test_deterministic_true_in_a_process_that_loaded_torch_unpinned_is_refused(tmp_path, monkeypatch):
    for key in (*PINNED_ENV, MARKER):
        monkeypatch.delenv(key, raising=False)
    cfg = make_cfg("dataset=digits", "deterministic=true", results_dir=tmp_path)
    with pytest.raises(ConfigError, match="give it on the byzrun command line") as error:
        run(cfg)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "runs").exists()  # refused before the run directory or the data
    with pytest.raises(ConfigError, match="deterministic must be true or false, got 'maybe'"):
        run(make_cfg("dataset=digits", "deterministic=maybe", results_dir=tmp_path))
    assert torch.get_num_threads() == 1 and torch.backends.mkldnn.enabled


@pytest.mark.parametrize("key,other", [("deterministic", "true"), ("reductions", "numpy")])
def test_a_result_changing_option_enters_the_config_hash_only_away_from_its_default(key, other):
    """deterministic=false and reductions=torch are every committed run's: at their defaults they leave
    the hashes of runs written before the keys existed; the other value is another run."""
    base = make_cfg("dataset=digits")
    without_key = make_cfg("dataset=digits")
    with open_dict(without_key):
        del without_key[key]  # a config written before the key existed
    assert config_hash(base) == config_hash(without_key)
    assert config_hash(base) == config_hash(make_cfg("dataset=digits", f"{key}={base[key]}"))
    assert config_hash(base) != config_hash(make_cfg("dataset=digits", f"{key}={other}"))


@pytest.mark.parametrize(
    "args,expected",
    [
        (["deterministic=true"], True),
        (["dataset=digits", "++deterministic=True"], True),
        (["-m", "deterministic=false,true"], True),
        (["deterministic=choice(false,true)"], True),
        (["deterministic=false"], False),
        (["dataset=digits", "name=deterministic=true"], False),
        ([], False),
    ],
)
def test_the_command_line_asks_for_the_pins(args, expected):
    assert requested(args) is expected
