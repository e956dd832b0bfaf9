"""The `byzrun` command: a Hydra app. `byzrun defense=bulyan attack=alie`, `byzrun -m ...` for sweeps."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from byzrun.errors import BoundError, ByzrunError

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")
log = logging.getLogger("byzrun")


def in_sweep() -> bool:
    try:
        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:  # not running under Hydra (tests call run() directly)
        return False


def sweep_launcher() -> dict | None:
    """Hydra's launcher settings in a multirun (who shares this machine), None otherwise."""
    if not in_sweep():
        return None
    return OmegaConf.to_container(HydraConfig.get().launcher, resolve=True)


@hydra.main(config_path=CONF_DIR, config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    from byzrun.speed import configure_threads
    from byzrun.train import run  # imported here so `byzrun --help` stays fast

    configure_threads(sweep_launcher())
    if cfg.get("plan"):  # +plan=true: check and estimate, do not train (byzrun/plan.py)
        from byzrun.plan import plan_job

        plan_job(cfg)
        return None

    try:
        summary = run(cfg)
    except BoundError as exc:
        if in_sweep():  # a grid may contain f values above a rule's bound: skip, do not abort
            log.warning("skipped: %s", exc)
            return None
        print(f"byzrun: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except ByzrunError as exc:
        print(f"byzrun: error: {exc}", file=sys.stderr)
        sys.exit(2)
    return None if summary is None else summary["max_test_acc"]


if __name__ == "__main__":
    main()
