"""Shared helpers: compose byzrun's Hydra config as the CLI would, with small fast defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")


def make_cfg(*overrides: str, results_dir: Path | None = None) -> DictConfig:
    """The config `byzrun <overrides>` would get (Hydra's own node left out)."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        extra = [f"results_dir={results_dir}"] if results_dir is not None else []
        return compose(config_name="config", overrides=["progress=false", *extra, *overrides])


@pytest.fixture
def digits_cfg(tmp_path):
    """A quick digits run: 11 workers, small batches, few rounds."""

    def build(*overrides: str) -> DictConfig:
        base = ["dataset=digits", "n=11", "batch_size=16", "rounds=20", "eval_every=10", "device=cpu"]
        return make_cfg(*base, *overrides, results_dir=tmp_path / "results")

    return build
