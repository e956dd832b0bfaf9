"""What a sweep (`byzrun -m ...`) says: "run i of N: <overrides>" as each run starts, and at the end
"N runs: a done, b skipped (bound), c already done, d failed", each failed run named with its error.

A Hydra callback (conf/config.yaml: hydra.callbacks) does it. Each run records its outcome in a small
file of its sweep folder (the runs may be other processes: hydra/launcher=local or slurm), which the end
of the sweep reads and removes, with every folder the sweep left empty. A failed run does not stop the
others (byzrun.cli catches its error); the command then exits with status 1.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

STATUS_FILE = "byzrun-status.json"
OUTCOMES = ("done", "skipped", "already done", "failed")
LAUNCHER_LOGGERS = ("hydra._internal.core_plugins.basic_launcher", "hydra_plugins.hydra_joblib_launcher")
RUNS_ENV = "BYZRUN_SWEEP_RUNS"  # N, for runs in other processes

_last = {"failed": 0}  # failed runs of the last sweep in this process (byzrun.cli sets the exit status)


def count_runs(config: DictConfig) -> int | None:
    """How many runs Hydra's basic sweeper makes of this config's sweep (its params and overrides)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        params = OmegaConf.select(config, "hydra.sweeper.params") or {}
        arguments = [f"{k}={v}" for k, v in params.items()]
        arguments += list(OmegaConf.select(config, "hydra.overrides.task") or [])
        overrides = OverridesParser.create().parse_overrides(arguments)
        return sum(len(batch) for batch in BasicSweeper.split_arguments(overrides, None))
    except Exception:  # another sweeper, or a sweep it cannot count: no N
        return None


def record(outcome: str, error: str = "") -> None:
    """The outcome of the run in progress (one of OUTCOMES), when it is part of a sweep."""
    try:
        hydra = HydraConfig.get()
    except ValueError:
        return
    if hydra.mode is None or hydra.mode.name != "MULTIRUN":
        return
    folder = Path(hydra.runtime.output_dir)
    _last["sweep_dir"] = folder.parent
    write_status(folder, hydra.job.num, outcome, " ".join(hydra.overrides.task), error)


def write_status(folder: Path, num: int, outcome: str, overrides: str, error: str = "") -> None:
    """Record the outcome of sweep point `num` (0-based) in its job folder, for SweepReport; the SLURM
    launcher writes those of the points it does not submit and of jobs that died (byzrun/slurm.py)."""
    folder.mkdir(parents=True, exist_ok=True)
    entry = {"num": num, "outcome": outcome, "overrides": overrides, "error": error}
    (folder / STATUS_FILE).write_text(json.dumps(entry))


def remove_empty_folders(top: Path) -> None:
    """Remove top and the folders below it that hold nothing (deepest first)."""
    if not top.is_dir():
        return
    for folder in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        try:
            folder.rmdir()
        except OSError:
            pass
    try:
        top.rmdir()
    except OSError:
        pass


def collect(sweep_dir: Path) -> list[dict]:
    """Read and remove the runs' status files, then every folder the sweep left empty."""
    entries = []
    for path in sorted(sweep_dir.glob(f"*/{STATUS_FILE}")):
        try:
            entries.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
        path.unlink(missing_ok=True)
    remove_empty_folders(sweep_dir)
    if sweep_dir.is_dir() and [p.name for p in sweep_dir.iterdir()] == ["multirun.yaml"]:
        (sweep_dir / "multirun.yaml").unlink()  # Hydra's record of a sweep that left nothing else
        remove_empty_folders(sweep_dir)
    if sweep_dir.parent.name == ".sweeps":
        remove_empty_folders(sweep_dir.parent)
    return entries


def clean_up_interrupted() -> None:
    """After Ctrl-C or SIGTERM: remove what the interrupted sweep of this process left (status files,
    empty folders); the finished runs are in results_dir/runs/, untouched."""
    sweep_dir = _last.pop("sweep_dir", None)
    if sweep_dir is not None:
        collect(sweep_dir)


class SweepReport(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _last["failed"] = 0
        for name in LAUNCHER_LOGGERS:  # their "Launching N jobs" and "#i : ..." lines: ours say it
            logging.getLogger(name).setLevel(logging.WARNING)
        total = count_runs(config)
        if total:
            os.environ[RUNS_ENV] = str(total)
        else:
            os.environ.pop(RUNS_ENV, None)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        hydra = config.hydra
        if hydra.mode is None or str(hydra.mode).rpartition(".")[2] != "MULTIRUN":
            return
        total = os.environ.get(RUNS_ENV, "?")
        print(f"run {hydra.job.num + 1} of {total}: {' '.join(hydra.overrides.task)}", flush=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if config.get("plan"):  # a plan trains nothing; its own totals say what would happen
            return
        entries = collect(Path(str(config.hydra.sweep.dir)))
        counts = {outcome: sum(e["outcome"] == outcome for e in entries) for outcome in OUTCOMES}
        total = os.environ.get(RUNS_ENV) or str(len(entries))
        print(
            f"{total} runs: {counts['done']} done, {counts['skipped']} skipped (bound), "
            f"{counts['already done']} already done, {counts['failed']} failed",
            flush=True,
        )
        for entry in sorted(entries, key=lambda e: e["num"]):
            if entry["outcome"] == "failed":
                print(
                    f"byzrun: run {entry['num'] + 1} failed ({entry['overrides']}): {entry['error']}",
                    file=sys.stderr,
                )
        _last["failed"] = counts["failed"]


def reset() -> None:
    _last["failed"] = 0


def failed_runs() -> int:
    """Failed runs of the last sweep in this process."""
    return _last["failed"]
