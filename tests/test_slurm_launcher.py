"""The SLURM launcher's parts that need no cluster: node-local storage refused before submitting, job
states read without accounting, the plan's estimate with runs packed into jobs. The launcher against a
real controller: tests/test_slurm.py (make test-slurm)."""

import logging
import stat
from pathlib import Path

import pytest

from byzrun import slurm
from byzrun.errors import ConfigError
from byzrun.plan import summary_text
from byzrun.slurm_jobs import GONE, job_states, parse_states, why_not_done
from tests.conftest import run_cli


@pytest.mark.parametrize(
    "path,env,reason",
    [
        ("/tmp/me/results", {}, "under /tmp"),
        ("/var/tmp/results", {}, "under /var/tmp"),
        ("/dev/shm/results", {}, "under /dev/shm"),
        ("/scratch/job42/results", {"TMPDIR": "/scratch/job42"}, "under /scratch/job42"),
        ("/tmpfoo/results", {}, None),  # a name that starts like /tmp is not under it
        ("/home/me/results", {"TMPDIR": "/scratch/job42"}, None),
    ],
)
def test_node_local_folders_are_recognised(path, env, reason):
    assert slurm.node_local_reason(Path(path), env) == reason


def test_a_node_local_results_dir_is_refused_only_with_several_nodes():
    folders = {"results_dir": Path("/tmp/me/results")}
    with pytest.raises(ConfigError) as err:
        slurm.check_shared_storage(folders, "gpu", 3)
    assert str(err.value) == (
        "results_dir=/tmp/me/results is under /tmp, which only one node sees, and partition gpu has 3 nodes; "
        "set results_dir to a folder every node sees (your home or project space)"
    )
    slurm.check_shared_storage(folders, "debug", 1)  # one node: /tmp is shared with itself
    slurm.check_shared_storage(folders, None, None)  # sinfo could not tell: no guess


def test_the_sweep_stops_in_one_line_before_submitting(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(slurm, "partition_nodes", lambda partition: 4)
    monkeypatch.setattr(slurm.SlurmLauncher, "submit_and_wait", lambda *a: pytest.fail("submitted"))
    results = tmp_path / "results"
    reason = slurm.node_local_reason(results)  # pytest's folders are under /tmp or $TMPDIR
    assert reason
    status = run_cli(
        monkeypatch, "-m", "dataset=digits", "seed=1,2", f"results_dir={results}", "hydra/launcher=slurm"
    )
    err = capsys.readouterr().err
    assert status == 2
    assert err == (
        f"byzrun: error: results_dir={results} is {reason}, which only one node sees, and the default "
        "partition has 4 nodes; set results_dir to a folder every node sees (your home or project space)\n"
    )
    assert not results.exists() or not any(results.rglob("*.yaml"))  # the sweep folder is removed


def fake_command(folder: Path, name: str, stdout: str, stderr: str = "", status: int = 0) -> None:
    script = folder / name
    script.write_text(f"#!/bin/sh\nprintf '{stdout}'\nprintf '{stderr}' >&2\nexit {status}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


def test_without_accounting_the_states_come_from_squeue_without_a_warning(monkeypatch, tmp_path, caplog):
    fake_command(tmp_path, "sacct", "", "sacct: error: Slurm accounting storage is disabled\\n", 1)
    fake_command(tmp_path, "squeue", "7_0|COMPLETED\\n7_1|CANCELLED\\n7_3|RUNNING\\n")
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    with caplog.at_level(logging.WARNING, logger="byzrun"):
        states = job_states(["7_0", "7_1", "7_2", "7_3"])
    # 7_2: no longer known to the controller, so it has ended
    assert states == {"7_0": "COMPLETED", "7_1": "CANCELLED", "7_2": GONE, "7_3": "RUNNING"}
    assert not caplog.records


def test_with_accounting_the_states_come_from_sacct(monkeypatch, tmp_path):
    fake_command(
        tmp_path, "sacct", "8_0|CANCELLED by 0\\n8_1|TIMEOUT\\n8_1.batch|CANCELLED\\n8_[2-3]|PENDING\\n"
    )
    fake_command(tmp_path, "squeue", "", "squeue must not be asked\\n", 1)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    # a pending array task sacct shows as one range line: not listed alone yet, so still pending
    assert job_states(["8_0", "8_1", "8_2"]) == {"8_0": "CANCELLED", "8_1": "TIMEOUT", "8_2": "PENDING"}


def test_parse_states_reads_the_first_word_and_leaves_job_steps_out():
    assert parse_states("5|CANCELLED by 0\n5.batch|CANCELLED\n6_1|COMPLETED\n") == {
        "5": "CANCELLED",
        "6_1": "COMPLETED",
    }


def test_a_job_that_died_is_one_line_with_what_to_do():
    assert why_not_done("9_1", "TIMEOUT", 60, "log") == (
        "SLURM job 9_1 went over its time limit (hydra.launcher.timeout_min=60); raise it and run the same "
        "command again"
    )
    assert why_not_done("9_0", "CANCELLED", 60, "log").startswith("SLURM job 9_0 was cancelled (scancel)")
    assert "raise hydra.launcher.mem_gb" in why_not_done("9_0", "OUT_OF_MEMORY", 60, "log")


def test_the_plan_estimate_runs_the_packed_runs_one_after_the_other():
    records = [{"status": "to run", "seconds": 10.0, "device": "cpu"} for _ in range(4)]
    assert "estimated wall time 10 s (4 at once," in summary_text(records, 4)
    assert "estimated wall time 20 s (2 at once, 2 runs per job," in summary_text(records, 2, runs_per_job=2)
    assert "estimated wall time 40 s (8 at once, 4 runs per job," in summary_text(records, 8, runs_per_job=4)
