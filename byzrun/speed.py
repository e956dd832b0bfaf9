"""Speed-only settings of a run: CPU threads per job, the worker chunk (byzrun.chunking), GPU options.

None of them changes a run's results beyond float32 rounding (see README, "Speed"), and none is
part of the config hash (byzrun.config.NON_SEMANTIC_KEYS), except bf16 and tf32 when switched on.
"""

from __future__ import annotations

import logging
import os

import torch

log = logging.getLogger("byzrun")


def parallel_jobs(launcher: dict | None) -> int:
    """How many runs share this machine at once under Hydra's launcher config (1 unless joblib)."""
    if not launcher or "joblib" not in str(launcher.get("_target_", "")).lower():
        return 1
    jobs = launcher.get("n_jobs") or 1
    cores = os.cpu_count() or 1
    if jobs < 0:  # joblib: -1 is every core, -2 all but one, ...
        jobs = max(1, cores + 1 + jobs)
    return max(1, int(jobs))


def threads_per_job(cores: int, jobs: int) -> int:
    """Each of `jobs` concurrent runs gets an equal share of the cores, at least one thread."""
    return max(1, cores // max(1, jobs))


def configure_threads(launcher: dict | None, env: dict | None = None) -> int:
    """Set torch's CPU threads to this job's share of the cores when several runs share the machine
    (joblib launcher, n_jobs > 1), unless the user set OMP_NUM_THREADS; log it. Returns the threads."""
    env = os.environ if env is None else env
    jobs = parallel_jobs(launcher)
    if env.get("OMP_NUM_THREADS"):
        threads = torch.get_num_threads()
        if jobs > 1:
            log.info(
                "threads: %d per job (OMP_NUM_THREADS=%s, %d jobs at once)",
                threads,
                env["OMP_NUM_THREADS"],
                jobs,
            )
        return threads
    if jobs <= 1:
        return torch.get_num_threads()
    threads = threads_per_job(os.cpu_count() or 1, jobs)
    torch.set_num_threads(threads)
    log.info(
        "threads: %d per job (%d cores shared by %d jobs at once; set OMP_NUM_THREADS to override)",
        threads,
        os.cpu_count() or 1,
        jobs,
    )
    return threads


#: gpu.* options that change a run's results when switched on: in the config hash unless at the default
RESULT_CHANGING_GPU_OPTIONS = {"tf32": None, "bf16": False}


def gpu_options(cfg, device: torch.device) -> dict:
    """Apply gpu.tf32 (torch's global switches) and return FlatModel's keyword options from cfg.gpu
    (configs written before these options existed have no `gpu` node: the defaults)."""
    gpu = cfg.get("gpu") or {}
    tf32 = gpu.get("tf32")
    if tf32 is not None:  # null leaves torch's defaults: TF32 convolutions, IEEE matmuls
        torch.backends.cuda.matmul.allow_tf32 = bool(tf32)
        torch.backends.cudnn.allow_tf32 = bool(tf32)
    options = {
        "channels_last": None if gpu.get("channels_last") is None else bool(gpu.get("channels_last")),
        "compile": gpu.get("compile", False) or False,
        "bf16": bool(gpu.get("bf16", False)),
    }
    if any(options.values()) or tf32 is not None:
        log.info(
            "gpu options on %s: tf32=%s %s", device, tf32, " ".join(f"{k}={v}" for k, v in options.items())
        )
    return options
