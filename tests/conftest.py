"""Shared helpers: compose byzrun's Hydra config as the CLI would, with small fast defaults; run the
`byzrun` command in this process; one tiny dataset for every run.

The suite runs torch on one thread (here and in the few subprocesses, through OMP_NUM_THREADS): its
tensors are tiny, and on a busy machine idle worker threads spinning on them cost more CPU time than
the work itself (the whole suite took about twice the CPU time on two threads).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ["OMP_NUM_THREADS"] = "1"  # before torch is imported, and inherited by subprocesses

import pytest  # noqa: E402
import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

torch.set_num_threads(1)

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")

#: the longest tests (processes of their own, the committed runs read), queued first: pytest-xdist hands
#: tests out in order, so one of them last in the queue would keep a core busy while the other idles
SLOW_FIRST = (
    "test_sweeps.py::test_a_parallel_sweep",
    "test_reproducible.py::",
    "test_reliability.py::",
    "test_claims.py::",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """SLOW_FIRST before the rest, in that order (whole files, so module fixtures are built once)."""

    def rank(item: pytest.Item) -> int:
        return next((i for i, part in enumerate(SLOW_FIRST) if part in item.nodeid), len(SLOW_FIRST))

    items.sort(key=rank)


def make_cfg(*overrides: str, results_dir: Path | None = None) -> DictConfig:
    """The config `byzrun <overrides>` would get (Hydra's own node left out)."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        extra = [f"results_dir={results_dir}"] if results_dir is not None else []
        return compose(config_name="config", overrides=["progress=false", *extra, *overrides])


#: a quick digits run: 11 workers, small batches, few rounds
DIGITS = ["dataset=digits", "n=11", "batch_size=16", "rounds=20", "eval_every=10", "device=cpu"]


@pytest.fixture
def digits_cfg(tmp_path):
    """make_cfg for a quick digits run (DIGITS) writing under tmp_path; more overrides follow DIGITS."""

    def build(*overrides: str) -> DictConfig:
        return make_cfg(*DIGITS, *overrides, results_dir=tmp_path / "results")

    return build


@pytest.fixture(scope="session")
def digits_data() -> dict:
    """The one tiny dataset of the runs: scikit-learn's 8x8 digits, loaded once for the whole session
    (per normalisation setting) and shared by every run on the CPU, which only read it."""
    return {}


@pytest.fixture(autouse=True)
def _share_digits(monkeypatch, digits_data):
    import byzrun.train

    real = byzrun.train.load_data

    def load_data(cfg, device):
        if cfg.name != "digits" or torch.device(device).type != "cpu":
            return real(cfg, device)
        key = (tuple(cfg.mean), tuple(cfg.std), cfg.num_classes, cfg.augment)
        if key not in digits_data:
            digits_data[key] = real(cfg, device)
        return digits_data[key]

    monkeypatch.setattr(byzrun.train, "load_data", load_data)


def run_cli(monkeypatch, *args: str) -> int:
    """`byzrun <args>` in this process (the real Hydra entry point, without starting Python and torch
    again); returns its exit status. Read its output with capsys."""
    from byzrun import cli

    monkeypatch.setattr(sys, "argv", ["byzrun", *args])
    try:
        cli.main()
    except SystemExit as exit:
        return exit.code if isinstance(exit.code, int) else 1
    return 0
