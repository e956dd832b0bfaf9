"""How SLURM jobs ended, asked of the controller: `sacct` where the cluster keeps accounting, else `squeue`.

submitit learns a job's state from `sacct` only. On a cluster without an accounting database (the local
one of scripts/local_slurm.sh, some small clusters) every call fails, submitit warns about it at each
poll, and a job that ends without writing its result (cancelled, over its time limit, killed with its
node) stays "UNKNOWN" for ever: the sweep would wait without end. `squeue --states=all` still shows a
finished job for MinJobAge seconds (300 by default), and a job the controller has forgotten has ended.
So byzrun asks sacct, and when sacct says accounting is disabled, squeue, without a warning; any other
failure of sacct (a real cluster's accounting being down) is logged once and squeue answers instead.
"""

from __future__ import annotations

import logging
import subprocess

log = logging.getLogger("byzrun")

#: states of a job that has not ended (SLURM's squeue and sacct names); any other state is final
ACTIVE = {
    "PENDING",
    "CONFIGURING",
    "RUNNING",
    "COMPLETING",
    "REQUEUED",
    "REQUEUE_FED",
    "REQUEUE_HOLD",
    "RESIZING",
    "SIGNALING",
    "STAGE_OUT",
    "SUSPENDED",
    "STOPPED",
}
#: the state of a job the controller no longer knows (ended more than MinJobAge ago, no accounting)
GONE = "GONE"
_warned = {"sacct": False}


def parse_states(text: str) -> dict[str, str]:
    """`JobID|State` lines (sacct --parsable2 --noheader, squeue -h -o '%i|%T') -> {job id: state}, the
    state's first word ("CANCELLED by 0" -> CANCELLED); job steps (123.batch) left out."""
    states = {}
    for line in text.splitlines():
        job_id, _, state = line.strip().partition("|")
        if job_id and state and "." not in job_id:
            states[job_id] = state.split()[0].rstrip("+").upper()
    return states


def _run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def from_sacct(base_ids: list[str]) -> dict[str, str] | None:
    """The states sacct knows, or None when sacct cannot answer."""
    command = ["sacct", "--parsable2", "--noheader", "--allocations", "--format=JobID,State"]
    try:
        done = _run(command + [f"--jobs={','.join(base_ids)}"])
    except (OSError, subprocess.TimeoutExpired) as exc:
        done = subprocess.CompletedProcess(command, 1, "", str(exc))
    if done.returncode == 0:
        return parse_states(done.stdout)
    if "accounting storage is disabled" not in done.stderr.lower() and not _warned["sacct"]:
        _warned["sacct"] = True
        log.warning(
            "sacct failed (%s); reading job states from squeue", done.stderr.strip() or done.returncode
        )
    return None


def from_squeue(base_ids: list[str]) -> dict[str, str]:
    """The states squeue knows (one line per array task); a job it does not list has ended (GONE)."""
    command = ["squeue", "--noheader", "--array", "--states=all", "--format=%i|%T"]
    done = _run(command + [f"--jobs={','.join(base_ids)}"])
    if done.returncode != 0 and "invalid job id" not in done.stderr.lower():
        raise RuntimeError(f"squeue failed: {done.stderr.strip() or done.returncode}")
    return parse_states(done.stdout if done.returncode == 0 else "")


def job_states(job_ids: list[str]) -> dict[str, str]:
    """The state of each job (`123` or the array task `123_4`): PENDING, RUNNING, COMPLETED, CANCELLED,
    TIMEOUT, FAILED, OUT_OF_MEMORY, NODE_FAIL, ... or GONE."""
    base_ids = sorted({job_id.split("_")[0] for job_id in job_ids})
    states = from_sacct(base_ids)
    if states is None:
        states = from_squeue(base_ids)
        return {job_id: states.get(job_id, GONE) for job_id in job_ids}
    # sacct shows pending array tasks as one line (123_[0-3]): not listed yet means not started
    return {job_id: states.get(job_id, "PENDING") for job_id in job_ids}


def has_ended(state: str) -> bool:
    return state not in ACTIVE


def why_not_done(job_id: str, state: str, timeout_min: int | None, log_path: str) -> str:
    """One line for a job that ended without finishing its runs, with what to do about it."""
    again = "run the same command again to run it"
    reasons = {
        "CANCELLED": f"SLURM job {job_id} was cancelled (scancel); {again}",
        "TIMEOUT": f"SLURM job {job_id} went over its time limit (hydra.launcher.timeout_min={timeout_min}); "
        "raise it and run the same command again",
        "OUT_OF_MEMORY": f"SLURM job {job_id} ran out of memory; raise hydra.launcher.mem_gb and {again}",
        "NODE_FAIL": f"SLURM job {job_id} lost its node; {again}",
        "PREEMPTED": f"SLURM job {job_id} was preempted; {again}",
        "BOOT_FAIL": f"SLURM job {job_id} could not start its node; {again}",
        "DEADLINE": f"SLURM job {job_id} reached its deadline; {again}",
        "FAILED": f"SLURM job {job_id} failed before its runs finished; see {log_path}",
    }
    return reasons.get(state, f"SLURM job {job_id} ended {state} without finishing; see {log_path}")
