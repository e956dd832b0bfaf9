"""hydra/launcher=slurm against a real SLURM controller: `make test-slurm` brings up a one-node cluster
(scripts/local_slurm.sh), runs these tests and brings it down. `make test` leaves them out (marker
`slurm`); run without a cluster, they fail saying how to get one.

The `byzrun -m ...` commands run in this process (the submitting side); every job is a process that
SLURM starts on the node.
"""

import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slurm

ROOT = Path(__file__).resolve().parent.parent
#: small jobs: no GPU, one core, 1 GB (the local cluster has one node with 2 cores)
SLURM = [
    "hydra/launcher=slurm",
    "hydra.launcher.partition=debug",
    "hydra.launcher.gpus_per_node=0",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=1",
]
RUN = ["dataset=digits", "n=5", "batch_size=8", "device=cpu", "progress=false"]


@pytest.fixture(autouse=True)
def cluster(monkeypatch):
    """The controller of $SLURM_CONF answers; the jobs import this checkout's byzrun."""
    if not shutil.which("sinfo") or subprocess.run(["sinfo"], capture_output=True).returncode != 0:
        pytest.fail("no SLURM cluster answers: run `make test-slurm` (scripts/local_slurm.sh up)")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))


def jobs_known() -> set[str]:
    """Every job (array task) the controller knows, finished ones included (for MinJobAge seconds: a job
    submitted after this call is in a later call's set, and not in this one's)."""
    out = subprocess.run(["squeue", "-h", "-r", "--states=all", "-o", "%i"], capture_output=True, text=True)
    return set(out.stdout.split())


def runs(results: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted((results / "runs").iterdir())}


def job_logs(results: Path) -> dict[str, str]:
    """The jobs' stdout logs, by job id (the submitit folder of the sweep)."""
    return {p.parent.name: p.read_text() for p in results.glob(".sweeps/*/.submitit/*/*_log.out")}


def test_a_2x2_sweep_finishes_and_the_same_command_submits_nothing_new(monkeypatch, capsys, tmp_path):
    results = tmp_path / "results"
    sweep = ["-m", *RUN, "rounds=5", "seed=1,2", "defense=mean,median", f"results_dir={results}"]
    sweep += [*SLURM, "hydra.launcher.runs_per_job=2"]
    before = jobs_known()
    assert run_cli(monkeypatch, *sweep) == 0
    out = capsys.readouterr().out
    assert "submitted 4 runs as SLURM job array" in out and "(2 jobs, 2 runs each" in out
    assert "4 runs: 4 done, 0 skipped (bound), 0 already done, 0 failed" in out
    assert len(jobs_known() - before) == 2
    # two jobs of two runs each, one after the other
    started = [re.findall(r"^run (\d) of 4:", log, re.M) for _, log in sorted(job_logs(results).items())]
    assert started == [["1", "2"], ["3", "4"]]
    found = set()
    for folder in runs(results).values():
        expected = ["config.yaml", "metrics.csv", "split.csv", "summary.csv"]
        assert sorted(p.name for p in folder.iterdir()) == expected
        summary = pd.read_csv(folder / "summary.csv").iloc[0]
        assert summary["rounds"] == 5 and pd.read_csv(folder / "metrics.csv")["round"].iloc[-1] == 5
        found.add((summary["defense"], int(summary["seed"])))
    assert found == {(d, s) for d in ("mean", "median") for s in (1, 2)}

    before = jobs_known()
    assert run_cli(monkeypatch, *sweep) == 0
    out = capsys.readouterr().out
    assert "nothing to submit (4 of 4 runs already done)" in out
    assert "4 runs: 0 done, 0 skipped (bound), 4 already done, 0 failed" in out
    assert not jobs_known() - before


def test_plan_with_the_slurm_launcher_counts_and_estimates_and_submits_nothing(monkeypatch, capsys, tmp_path):
    results = tmp_path / "results"
    sweep = ["-m", *RUN, "rounds=5", "seed=1,2", "defense=mean,median", f"results_dir={results}", *SLURM]
    sweep += ["hydra.launcher.array_parallelism=2", "hydra.launcher.runs_per_job=2", "+plan=true"]
    before = jobs_known()
    assert run_cli(monkeypatch, *sweep) == 0
    out = capsys.readouterr().out
    assert "plan: 4 runs: 0 already done, 0 skipped by a bound, 0 with errors, 4 to run" in out
    assert "plan: estimated wall time" in out and "(2 at once, 2 runs per job, from 3-round probes" in out
    assert not jobs_known() - before
    assert not (results / "runs").exists()


SHORT, LONG = 1000, 10**7  # rounds: a run of a few seconds, and one far longer than a minute


def cancel_when_running(results: Path, cancelled: dict) -> None:
    """scancel the first job (the SHORT run) once its run has written metrics.csv: mid-run."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and not cancelled:
        for config in results.glob("runs/*/config.yaml"):
            if f"rounds: {SHORT}\n" in config.read_text() and (config.parent / "metrics.csv").exists():
                job = next(results.glob(".sweeps/*/.submitit/*_0")).name
                subprocess.run(["scancel", job], check=True)
                cancelled.update(job=job, run=config.parent)
                return
        time.sleep(0.2)


def test_a_cancelled_job_and_one_over_its_time_limit_are_reported_and_the_rerun_completes(
    monkeypatch, capsys, tmp_path
):
    results = tmp_path / "results"
    run = [*RUN, "eval_every=50", f"results_dir={results}", *SLURM]
    cancelled: dict = {}
    watcher = threading.Thread(target=cancel_when_running, args=(results, cancelled), daemon=True)
    watcher.start()
    status = run_cli(monkeypatch, "-m", *run, f"rounds={SHORT},{LONG}", "hydra.launcher.timeout_min=1")
    watcher.join(timeout=1)
    out, err = capsys.readouterr()
    assert status == 1 and cancelled, (out, err)
    assert "2 runs: 0 done, 0 skipped (bound), 0 already done, 2 failed" in out
    failed = [line for line in err.splitlines() if line.startswith("byzrun: run ")]
    assert len(failed) == 2
    assert failed[0].startswith("byzrun: run 1 failed") and re.search(rf"rounds={SHORT}\b", failed[0])
    assert f"SLURM job {cancelled['job']} was cancelled (scancel)" in failed[0]
    assert failed[1].startswith("byzrun: run 2 failed") and "went over its time limit" in failed[1]
    assert "timeout_min=1" in failed[1]
    # the cancelled run: no summary, no temporary file, what it wrote complete (rounds of 50)
    left = sorted(p.name for p in cancelled["run"].iterdir())
    written = (["config.yaml"], ["config.yaml", "split.csv"], ["config.yaml", "metrics.csv", "split.csv"])
    assert left in written
    if "metrics.csv" in left:
        rounds = pd.read_csv(cancelled["run"] / "metrics.csv")["round"]
        assert list(rounds) == list(range(50, 50 * len(rounds) + 1, 50)) and rounds.iloc[-1] < SHORT

    # the same run again (a longer time limit) completes it, with an uncancelled run's metrics
    assert run_cli(monkeypatch, "-m", *run, f"rounds={SHORT}", "hydra.launcher.timeout_min=10") == 0
    assert "1 runs: 1 done, 0 skipped (bound), 0 already done, 0 failed" in capsys.readouterr().out
    assert (
        run_cli(monkeypatch, *RUN, "eval_every=50", f"rounds={SHORT}", f"results_dir={tmp_path / 'ref'}") == 0
    )
    (reference,) = (tmp_path / "ref" / "runs").iterdir()
    assert reference.name == cancelled["run"].name
    rerun = pd.read_csv(cancelled["run"] / "metrics.csv").drop(columns="wall_seconds")
    pd.testing.assert_frame_equal(rerun, pd.read_csv(reference / "metrics.csv").drop(columns="wall_seconds"))
    assert (cancelled["run"] / "summary.csv").is_file()
    assert not [p for p in os.listdir(cancelled["run"]) if p.startswith(".")]


def test_results_dir_on_one_node_with_a_partition_of_two_is_refused_before_submitting(
    monkeypatch, capsys, tmp_path
):
    """The local cluster's partition `multi` has two nodes (one of them always down)."""
    results = tmp_path / "results"
    args = [
        "-m",
        *RUN,
        "rounds=5",
        "seed=1,2",
        f"results_dir={results}",
        *SLURM,
        "hydra.launcher.partition=multi",
    ]
    before = jobs_known()
    assert run_cli(monkeypatch, *args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"byzrun: error: results_dir={results} is under ") and err.count("\n") == 1
    assert "which only one node sees, and partition multi has 2 nodes; set results_dir to a folder" in err
    assert not jobs_known() - before


def test_jobs_the_cluster_cannot_run_are_one_line(monkeypatch, capsys, tmp_path):
    args = ["-m", *RUN, "rounds=5", "seed=1,2", f"results_dir={tmp_path / 'results'}", *SLURM]
    assert run_cli(monkeypatch, *args, "hydra.launcher.cpus_per_task=64") == 2
    err = capsys.readouterr().err
    assert err.startswith("byzrun: error: SLURM refused the jobs (sbatch: error: ") and err.count("\n") == 1
    assert err.endswith("; check the hydra.launcher options\n")
    assert not (tmp_path / "results" / ".sweeps").exists()
