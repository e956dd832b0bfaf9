"""The `byzrun` command: a Hydra app. `byzrun defense=bulyan attack=alie`, `byzrun -m ...` for sweeps."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from byzrun import __version__
from byzrun.errors import BoundError, ByzrunError
from byzrun.guard import translated

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")
log = logging.getLogger("byzrun")


def in_sweep() -> bool:
    try:
        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:  # not running under Hydra (tests call run() directly)
        return False


@hydra.main(config_path=CONF_DIR, config_name="config", version_base="1.3")
def hydra_main(cfg: DictConfig) -> float | None:
    from byzrun.train import run  # imported here so `byzrun --help` stays fast

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
    except OSError as exc:  # a full disk, a folder that became read-only: the results cannot be written
        message = f"cannot write the results ({exc}); free space or set results_dir"
        print(f"byzrun: error: {message}", file=sys.stderr)
        sys.exit(1)
    return None if summary is None else summary["max_test_acc"]


def main() -> None:
    """The `byzrun` command: Hydra's app, with every error about the command line in one line."""
    args = sys.argv[1:]
    if "--version" in args:
        print(f"byzrun {__version__}")
        return
    with translated(args):
        hydra_main()


if __name__ == "__main__":
    main()
