"""Speed-only settings: threads per job, the worker chunk, the GPU options (CPU only, in process)."""

from __future__ import annotations

import logging

import torch

from byzrun.speed import configure_threads, parallel_jobs, threads_per_job

JOBLIB = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"


def test_threads_per_job_share_the_cores(monkeypatch, caplog):
    assert threads_per_job(2, 2) == 1 and threads_per_job(16, 3) == 5 and threads_per_job(2, 8) == 1
    assert parallel_jobs(None) == 1
    assert parallel_jobs({"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}) == 1
    assert parallel_jobs({"_target_": JOBLIB, "n_jobs": 4}) == 4
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert parallel_jobs({"_target_": JOBLIB, "n_jobs": -1}) == 8
    before = torch.get_num_threads()
    try:
        with caplog.at_level(logging.INFO, logger="byzrun"):
            assert configure_threads({"_target_": JOBLIB, "n_jobs": 2}, env={}) == 4
        assert torch.get_num_threads() == 4
        assert "threads: 4 per job (8 cores shared by 2 jobs" in caplog.text
        caplog.clear()
        torch.set_num_threads(1)
        with caplog.at_level(logging.INFO, logger="byzrun"):  # the user's OMP_NUM_THREADS wins
            assert configure_threads({"_target_": JOBLIB, "n_jobs": 2}, env={"OMP_NUM_THREADS": "1"}) == 1
        assert torch.get_num_threads() == 1 and "OMP_NUM_THREADS=1" in caplog.text
        assert configure_threads(None, env={}) == 1  # a single run keeps torch's default
    finally:
        torch.set_num_threads(before)
