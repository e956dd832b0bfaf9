"""`hydra/launcher=slurm`: a sweep's runs as SLURM jobs (through submitit), reported like any sweep.

Hydra's submitit launcher submits every sweep point and waits for submitit's results; a run finished
earlier is submitted again (to say "already done"), a job that dies without a result (scancel, time
limit, a lost node) ends the whole sweep with a traceback, or, on a cluster without accounting, is
waited for without end. This launcher, on the machine where `byzrun -m` runs:

  1. checks that results_dir is on storage every node sees (node_local_reason, below);
  2. checks every sweep point as +plan=true does (byzrun.plan.check_run): a finished run ("already
     done"), one outside its rule's bound ("skipped") or with a bad setting ("failed") is recorded
     and not submitted;
  3. submits the rest as one job array, `runs_per_job` runs in each job (run one after the other;
     the default 1 is one job per run), at most `array_parallelism` jobs at once;
  4. waits for the jobs (their states from byzrun.slurm_jobs), and for every run a job did not finish
     records one failed line saying why (cancelled, over its time limit, out of memory, ...).

The sweep's summary (byzrun.sweep) then counts the runs as with any launcher. With +plan=true nothing
is submitted: the runs are checked and probed on this machine, as with the basic launcher.

On the node, a job runs its runs with SIGTERM (scancel, the time limit) raising byzrun.cli.Terminated:
the run in progress stops between two writes, its temporary files removed, and the job ends.
submitit's own handlers would ignore SIGTERM and requeue on the time-limit warning (USR2), which only
helps code that checkpoints; a byzrun run starts over when run again.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger("byzrun")

#: options of conf/hydra/launcher/slurm.yaml that are byzrun's, not submitit's
OWN_OPTIONS = ("runs_per_job", "submitit_folder")
#: submitit's names for the options every executor has; the others are passed as slurm_<name>
GENERIC_OPTIONS = {
    "timeout_min",
    "cpus_per_task",
    "gpus_per_node",
    "tasks_per_node",
    "mem_gb",
    "nodes",
    "name",
}
GENERIC_OPTIONS |= {"stderr_to_stdout"}
#: folders on a node's own disk or memory (a path under $TMPDIR counts too)
NODE_LOCAL_FOLDERS = ("/tmp", "/var/tmp", "/dev/shm", "/run", "/scratch/local", "/local")
NODE_LOCAL_FILESYSTEMS = {"tmpfs", "ramfs"}
POLL_SECONDS = 2  # result files are looked for this often; the controller is asked less often


def chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def filesystem_type(path: Path) -> str:
    """The type of the filesystem that holds `path` (the longest mount point above it in /proc/mounts)."""
    best, kind = "", ""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return ""
    for line in mounts:
        fields = line.split()
        if len(fields) >= 3:
            point = fields[1].replace("\\040", " ")
            if (str(path) == point or str(path).startswith(point.rstrip("/") + "/")) and len(point) > len(
                best
            ):
                best, kind = point, fields[2]
    return kind


def node_local_reason(path: Path, env: dict | None = None) -> str | None:
    """Why `path` is on storage only its own node sees (a folder such as /tmp, $TMPDIR, a tmpfs), or None."""
    env = os.environ if env is None else env
    path = Path(os.path.abspath(path))
    folders = list(NODE_LOCAL_FOLDERS) + ([env["TMPDIR"]] if env.get("TMPDIR") else [])
    for folder in folders:
        if path == Path(folder) or Path(folder) in path.parents:
            return f"under {folder}"
    kind = filesystem_type(path)
    if kind in NODE_LOCAL_FILESYSTEMS:
        return f"on a {kind} filesystem"
    return None


def partition_nodes(partition: str | None) -> int | None:
    """How many nodes the partition (None: the default one) has, from sinfo; None when sinfo cannot tell."""
    try:
        out = subprocess.run(
            ["sinfo", "--noheader", "--format=%P|%D"], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    nodes = None
    for line in out.splitlines():
        name, _, count = line.strip().partition("|")
        default = name.endswith("*")
        if (name.rstrip("*") == partition or (partition is None and default)) and count.isdigit():
            nodes = (nodes or 0) + int(count)
    return nodes


def check_shared_storage(folders: dict[str, Path], partition: str | None, nodes: int | None) -> None:
    """A ConfigError when a folder the jobs write is node-local and the partition has several nodes."""
    from byzrun.errors import ConfigError

    if nodes is None or nodes < 2:
        return
    for key, folder in folders.items():
        reason = node_local_reason(folder)
        if reason:
            where = f"partition {partition}" if partition else "the default partition"
            raise ConfigError(
                f"{key}={folder} is {reason}, which only one node sees, and {where} has {nodes} nodes; "
                f"set {key} to a folder every node sees (your home or project space)"
            )


def run_config(sweep_config: DictConfig) -> DictConfig:
    """The run's own config (what byzrun's task function gets): the sweep point's, Hydra's node left out."""
    cfg = OmegaConf.create(OmegaConf.to_container(sweep_config, resolve=False))
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def job_succeeded(job) -> bool:
    """Whether a job that wrote its result file ran to its end (submitit records the job's own exception)."""
    from submitit.core.utils import pickle_load

    try:
        return pickle_load(job.paths.result_pickle)[0] == "success"
    except Exception:  # unreadable: say it failed, with its log named
        return False


def _terminate(signum, frame):
    from byzrun.cli import Terminated

    raise Terminated


def _time_limit_near(signum, frame):
    print("byzrun: SLURM says the job's time limit is near; the run in progress stops if it gets there")


class SlurmLauncher(Launcher):
    def __init__(self, **options: Any) -> None:
        self.options = {
            k: OmegaConf.to_container(v) if OmegaConf.is_config(v) else v for k, v in options.items()
        }
        self.config: DictConfig | None = None
        self.hydra_context = None
        self.task_function = None

    def setup(self, *, hydra_context, task_function, config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    # ---- on the node: one job, its runs one after the other

    def __call__(self, points: list[tuple[list[str], int]], singleton_state: dict) -> None:
        Singleton.set_state(singleton_state)
        setup_globals()
        signal.signal(signal.SIGTERM, _terminate)
        signal.signal(signal.SIGUSR2, _time_limit_near)
        if not os.environ.get("OMP_NUM_THREADS") and os.environ.get("SLURM_CPUS_PER_TASK"):
            import torch  # the CPUs SLURM gave the job, not every core of the node

            torch.set_num_threads(int(os.environ["SLURM_CPUS_PER_TASK"]))
        from byzrun.cli import Terminated

        try:
            for overrides, num in points:
                sweep_config = self.point_config(overrides, num)
                with open_dict(sweep_config.hydra.job):
                    sweep_config.hydra.job.id = os.environ.get("SLURM_JOB_ID", str(num))
                run_job(
                    hydra_context=self.hydra_context,
                    task_function=self.task_function,
                    config=sweep_config,
                    job_dir_key="hydra.sweep.dir",
                    job_subdir_key="hydra.sweep.subdir",
                )
        except Terminated:
            print("byzrun: interrupted by SLURM (scancel or the time limit); no run was left half-written")
            sys.exit(143)

    # ---- where `byzrun -m` runs

    def point_config(self, overrides: list[str], num: int) -> DictConfig:
        sweep_config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        with open_dict(sweep_config.hydra.job):
            sweep_config.hydra.job.num = num
        return sweep_config

    def launch(self, job_overrides, initial_job_idx: int) -> list[JobReturn]:
        from byzrun.errors import ConfigError
        from byzrun.guard import fail
        from byzrun.plan import check_run
        from byzrun.sweep import collect, write_status

        points = [(list(o), initial_job_idx + i) for i, o in enumerate(job_overrides)]
        returns = [JobReturn(overrides=o, status=JobStatus.COMPLETED, _return_value=None) for o, _ in points]
        if self.config.get("plan"):  # +plan=true: probes on this machine, nothing submitted
            from hydra._internal.core_plugins.basic_launcher import BasicLauncher

            local = BasicLauncher()
            local.setup(
                hydra_context=self.hydra_context, task_function=self.task_function, config=self.config
            )
            return local.launch(job_overrides, initial_job_idx)

        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        folder = Path(str(self.options["submitit_folder"]).replace("%j", "").rstrip("/"))
        folders = {
            "results_dir": Path(str(self.config.results_dir)),
            "hydra.launcher.submitit_folder": folder,
        }
        partition = self.options.get("partition")
        try:
            check_shared_storage(folders, partition, partition_nodes(partition))
        except ConfigError as exc:
            collect(sweep_dir)
            fail(str(exc))

        to_submit, already = [], 0
        for overrides, num in points:
            sweep_config = self.point_config(overrides, num)
            job_folder = sweep_dir / str(sweep_config.hydra.sweep.subdir)
            record = check_run(run_config(sweep_config))
            outcome = {"done": "already done", "skipped": "skipped", "error": "failed"}.get(record["status"])
            if outcome:
                write_status(job_folder, num, outcome, " ".join(overrides), record["reason"])
                already += outcome == "already done"
            else:
                to_submit.append((overrides, num, job_folder))
        if not to_submit:
            print(f"byzrun: nothing to submit ({already} of {len(points)} runs already done)", flush=True)
            return returns
        self.submit_and_wait(to_submit, already, len(points))
        return returns

    def executor(self):
        import submitit

        executor = submitit.AutoExecutor(folder=self.options["submitit_folder"], cluster="slurm")
        parameters = {}
        for key, value in self.options.items():
            if key not in OWN_OPTIONS:
                parameters[key if key in GENERIC_OPTIONS else f"slurm_{key}"] = value
        executor.update_parameters(**parameters)
        return executor

    def submit(self, packs: list) -> list:
        """One job array, a job per pack; sbatch's refusal (a partition that does not exist, a limit) is
        one line, and what was prepared for the sweep is removed."""
        from submitit.core.utils import FailedJobError

        from byzrun.guard import fail
        from byzrun.sweep import collect

        said = io.StringIO()  # submitit prints sbatch's error before raising it
        try:
            with contextlib.redirect_stderr(said):
                return self.executor().map_array(
                    self, [[(o, n) for o, n, _ in p] for p in packs], [Singleton.get_state()] * len(packs)
                )
        except (FailedJobError, OSError) as exc:
            lines = [line for line in (str(exc) or said.getvalue()).splitlines() if line.strip()]
            shutil.rmtree(Path(str(self.options["submitit_folder"]).replace("%j", "")), ignore_errors=True)
            collect(Path(str(self.config.hydra.sweep.dir)))
            fail(f"SLURM refused the jobs ({lines[-1] if lines else exc}); check the hydra.launcher options")

    def submit_and_wait(self, to_submit: list, already: int, total: int) -> None:
        from byzrun.slurm_jobs import why_not_done
        from byzrun.sweep import STATUS_FILE, write_status

        per_job = max(1, int(self.options.get("runs_per_job") or 1))
        packs = chunks(to_submit, per_job)
        jobs = self.submit(packs)
        array = jobs[0].job_id.split("_")[0]
        each = f"{per_job} run{'s' if per_job > 1 else ''} each"
        print(
            f"byzrun: submitted {len(to_submit)} runs as SLURM job array {array} ({len(jobs)} jobs, {each}, "
            f"at most {self.options.get('array_parallelism')} at once); {already} of {total} already done; "
            f"logs: {jobs[0].paths.folder.parent}/<job id>/",
            flush=True,
        )
        ended = self.wait(jobs, array)
        for job, pack in zip(jobs, packs):
            state = ended[job.job_id]
            for overrides, num, job_folder in pack:
                if not (job_folder / STATUS_FILE).is_file():  # the job ended before this run did
                    why = why_not_done(
                        job.job_id, state, self.options.get("timeout_min"), str(job.paths.stderr)
                    )
                    write_status(job_folder, num, "failed", " ".join(overrides), why)

    def wait(self, jobs: list, array: str) -> dict[str, str]:
        """Wait until every job has ended; {job id: its final state}: from its result file when it wrote
        one (COMPLETED, or FAILED when the job itself raised), else from the controller."""
        from byzrun.slurm_jobs import has_ended, job_states

        ended: dict[str, str] = {}
        start = last_asked = time.monotonic()
        try:
            while len(ended) < len(jobs):
                time.sleep(POLL_SECONDS)
                for job in jobs:
                    if job.job_id not in ended and job.paths.result_pickle.exists():
                        ended[job.job_id] = "COMPLETED" if job_succeeded(job) else "FAILED"
                # the controller is asked every 5 s at first, then up to every minute on long sweeps
                now = time.monotonic()
                if len(ended) < len(jobs) and now - last_asked >= min(60, max(5, (now - start) / 10)):
                    last_asked = now
                    waiting = [job.job_id for job in jobs if job.job_id not in ended]
                    try:
                        states = job_states(waiting)
                    except (
                        RuntimeError,
                        OSError,
                        subprocess.TimeoutExpired,
                    ) as exc:  # the controller is down
                        log.warning("cannot ask SLURM how the jobs are (%s); asking again later", exc)
                        continue
                    ended.update((job_id, state) for job_id, state in states.items() if has_ended(state))
        except KeyboardInterrupt:
            print(f"byzrun: the submitted jobs keep running; `scancel {array}` stops them", file=sys.stderr)
            raise
        return ended
