"""The `byzrun` command: a Hydra app. `byzrun defense=bulyan attack=alie`, `byzrun -m ...` for sweeps."""

from __future__ import annotations

import errno
import logging
import os
import signal
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from byzrun import __version__, progress
from byzrun.errors import BoundError, ByzrunError
from byzrun.guard import check_added_keys, translated
from byzrun.paths import CONF_DIR
from byzrun.reproducible import pin_environment, requested
from byzrun.sweep import clean_up_interrupted, failed_runs, record
from byzrun.sweep import reset as reset_sweep

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


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised as an exception so that the run unwinds (temporary files removed) and ends in one
    line; a subclass of KeyboardInterrupt, so that what handles Ctrl-C handles it too."""


def _terminate(signum, frame):
    raise Terminated


def failed(exc: BaseException, status: int) -> None:
    """A run that cannot go on: one line, then exit `status`; in a sweep, the next run goes on."""
    message = str(exc) if isinstance(exc, (ByzrunError, OSError)) else f"{type(exc).__name__}: {exc}"
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
        message = f"cannot write the results ({exc}); free space or set results_dir"
    print(f"byzrun: error: {message}", file=sys.stderr, flush=True)
    if not in_sweep():
        sys.exit(status)
    record("failed", message)


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def hydra_main(cfg: DictConfig) -> float | None:
    from byzrun.speed import configure_threads
    from byzrun.train import run  # imported here so `byzrun --help` stays fast

    progress.reset()
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
            record("skipped")
            return None
        failed(exc, 2)
        return None
    except ByzrunError as exc:
        failed(exc, 2)
        return None
    except OSError as exc:  # a full disk, a folder that became read-only, a file that cannot be read
        failed(exc, 1)
        return None
    except Exception as exc:
        if not in_sweep():
            raise
        failed(exc, 1)  # a failed run in a sweep does not stop the others
        return None
    record("done" if summary is not None else "already done")
    return None if summary is None else summary["max_test_acc"]


def interrupted(exc: KeyboardInterrupt, sweep: bool) -> None:
    """Ctrl-C or SIGTERM: one line, exit 130 or 143 (128 + the signal), no traceback."""
    reached = progress.reached()
    where = f"at round {reached}" if reached else "before training started"
    then = (
        "every finished run is kept; run the same command again to continue the sweep"
        if sweep
        else "run the same command again to start it over"
    )
    if sweep:
        clean_up_interrupted()
    print(f"byzrun: interrupted {where}; {then}", file=sys.stderr, flush=True)
    sys.exit(143 if isinstance(exc, Terminated) else 130)


def main() -> None:
    """The `byzrun` command: Hydra's app, with every error about the command line in one line, and
    Ctrl-C or SIGTERM ending it in one line."""
    args = sys.argv[1:]
    if "--version" in args:
        print(f"byzrun {__version__}")
        return
    if requested(args):  # before anything loads torch or numpy: they read the pins once (byzrun.reproducible)
        pin_environment()
    reset_sweep()
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        with translated(args):
            check_added_keys(args)
            hydra_main()
    except KeyboardInterrupt as exc:
        interrupted(exc, sweep=bool({"-m", "--multirun"} & set(args)))
    except BrokenPipeError:  # `byzrun --help | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if failed_runs():
        sys.exit(1)


if __name__ == "__main__":
    main()
