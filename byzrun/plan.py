"""A sweep's plan before it starts: `byzrun -m ... +plan=true`.

Every sweep point is checked as a run would be (config, bound, already finished) but not trained:
each job reports one of

  done      its summary.csv exists (resume would skip it)
  skipped   outside its rule's bound (a sweep skips it)
  error     a bad setting (the run would stop with `byzrun: error: ...`)
  to run    with an estimated wall time: a 3-round probe of the same settings on this device (after
            one warm-up round; once per distinct setting, the seed and the data split aside), in a
            temporary folder deleted afterwards

and PlanCallback (registered in conf/config.yaml, active only with +plan=true) prints the totals at the
end of the sweep: runs, done, skipped, to run, and the estimated wall time with the launcher's jobs
at once. The probe loads the dataset (and downloads it if missing and dataset.download=true); nothing
is written under results_dir, and the empty job folders Hydra makes for the sweep are removed.

Jobs hand their records to the callback through a temporary folder named in BYZRUN_PLAN_DIR, so the
plan works with the joblib launcher's worker processes too.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger("byzrun")

PLAN_DIR_ENV = "BYZRUN_PLAN_DIR"
PROBE_ROUNDS = 3
#: estimates of this process's probes, by setting (the seed and labels aside)
_PROBES: dict[str, float] = {}


def _cost_key(cfg: DictConfig) -> str:
    """What a round's cost depends on: the config without the seed, the labels and the data split (how
    the samples are dealt changes which ones a worker draws, not how many: a sweep over heterogeneity
    levels probes once per level otherwise, 96 probes instead of 24 for byzfl_heatmap_mnist)."""
    container = OmegaConf.to_container(cfg, resolve=True)
    for key in ("seed", "name", "row", "results_dir", "progress", "plan", "split"):
        container.pop(key, None)
    return json.dumps(container, sort_keys=True, default=str)


def probe_seconds(cfg: DictConfig, rounds: int = PROBE_ROUNDS) -> float:
    """Estimated wall time of the run `cfg`, from a probe in a temporary results folder: set-up, one
    warm-up round, `rounds` timed rounds, and one more round with an evaluation (and its statistics and
    metrics row). The estimate is the set-up, plus the timed round time scaled to cfg.rounds, plus the
    evaluation's extra time once per evaluation round."""
    from byzrun.train import is_eval_round, prepare, train

    key = _cost_key(cfg)
    if key in _PROBES:
        return _PROBES[key]
    level = log.level
    starts: list[float] = []  # when each probe round began
    with tempfile.TemporaryDirectory(prefix="byzrun-probe-") as tmp:
        probe = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
        with open_dict(probe):
            probe.pop("plan", None)
            probe.rounds = rounds + 2
            probe.eval_every, probe.eval_first = probe.rounds, None
            probe.results_dir, probe.progress = tmp, False
            probe.diagnostics.every = None
        log.setLevel(logging.WARNING)  # the probe's own run lines would read as a real run's
        try:
            start = time.perf_counter()
            setup = prepare(probe)
            prepared = time.perf_counter()
            next_batch = setup.sampler.next

            def timed_next():
                starts.append(time.perf_counter())
                return next_batch()

            setup.sampler.next = timed_next
            train(setup)
            trained = time.perf_counter()
        finally:
            log.setLevel(level)
    if len(starts) >= rounds + 2:
        per_round = (starts[rounds + 1] - starts[1]) / rounds
        # the last round's evaluation, statistics and metrics.csv, on top of its round
        t_eval = max(0.0, trained - starts[-1] - per_round)
    else:  # the probe diverged early: what it ran, warm-up included
        per_round, t_eval = (trained - prepared) / max(1, len(starts)), 0.0
    evals = sum(is_eval_round(cfg, r) for r in range(1, cfg.rounds + 1))
    _PROBES[key] = (prepared - start) + per_round * cfg.rounds + t_eval * evals
    return _PROBES[key]


def check_run(cfg: DictConfig) -> dict:
    """What a run of `cfg` would do, without loading data: {"status": "done" | "skipped" | "error" |
    "to run", "run": its folder, "reason": the error or bound}. The SLURM launcher submits only "to run"."""
    from byzrun.build import build_attack, build_defense
    from byzrun.config import validate
    from byzrun.errors import BoundError, ByzrunError, ConfigError
    from byzrun.results import is_finished, run_dir

    record: dict = {"status": "to run", "seconds": 0.0, "run": None, "reason": ""}
    try:
        validate(cfg)
        defense, attack = build_defense(cfg.defense), build_attack(cfg.attack)
        out = run_dir(cfg, defense.name, attack.name)
        record["run"] = str(out)
        if is_finished(out):
            record["status"] = "done"
        else:
            defense.check(cfg.n, cfg.m)
            if attack.needs_byzantine and cfg.m == 0:
                raise ConfigError(f"attack {attack.name} needs Byzantine workers but m=0")
    except BoundError as exc:
        record |= {"status": "skipped", "reason": str(exc)}
    except ByzrunError as exc:
        record |= {"status": "error", "reason": str(exc)}
    return record


def plan_job(cfg: DictConfig) -> dict:
    """Check one run as `byzrun` would, without training it; record and log its status."""
    from byzrun.config import resolve_device
    from byzrun.errors import ByzrunError

    record = check_run(cfg)
    if record["status"] == "to run":
        try:
            record["seconds"] = probe_seconds(cfg)
            record["device"] = str(resolve_device(cfg.device))
        except ByzrunError as exc:
            record |= {"status": "error", "reason": str(exc)}
    detail = f"~{format_seconds(record['seconds'])}" if record["status"] == "to run" else record["reason"]
    log.info("plan: %s%s: %s", record["status"], f" ({detail})" if detail else "", record["run"] or "")
    folder = os.environ.get(PLAN_DIR_ENV)
    if folder:
        (Path(folder) / f"{uuid.uuid4().hex}.json").write_text(json.dumps(record))
    else:  # a single run: its plan is complete
        print(summary_text([record], 1))
    return record


def format_seconds(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, s = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {s:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def makespan(durations: list[float], jobs: int) -> float:
    """Wall time of running `durations` on `jobs` slots, longest first, each on the least busy slot."""
    slots = [0.0] * max(1, jobs)
    for d in sorted(durations, reverse=True):
        slots[slots.index(min(slots))] += d
    return max(slots)


def summary_text(records: list[dict], jobs: int, runs_per_job: int = 1) -> str:
    """The plan's two lines; the estimate runs the pending runs `runs_per_job` after one another in each
    job (the SLURM launcher's packing), `jobs` jobs at once."""
    count = {s: sum(r["status"] == s for r in records) for s in ("done", "skipped", "error", "to run")}
    seconds = sorted((r["seconds"] for r in records if r["status"] == "to run"), reverse=True)
    pending = [sum(seconds[i : i + runs_per_job]) for i in range(0, len(seconds), runs_per_job)]
    devices = sorted({r.get("device", "") for r in records if r.get("device")})
    packing = f", {runs_per_job} runs per job" if runs_per_job > 1 else ""
    on = ", ".join(devices) or "this device"
    lines = [
        f"plan: {len(records)} runs: {count['done']} already done, {count['skipped']} skipped by a bound, "
        f"{count['error']} with errors, {count['to run']} to run",
        f"plan: estimated wall time {format_seconds(makespan(pending, jobs))} "
        f"({jobs} at once{packing}, from {PROBE_ROUNDS}-round probes on {on}); "
        "nothing was trained or written",
    ]
    return "\n".join(lines)


class PlanCallback(Callback):
    """Collects the jobs' plan records of a sweep with +plan=true and prints the totals."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        if not config.get("plan"):
            return
        os.environ[PLAN_DIR_ENV] = tempfile.mkdtemp(prefix="byzrun-plan-")

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        folder = os.environ.pop(PLAN_DIR_ENV, None)
        if not config.get("plan") or not folder:
            return
        from byzrun.speed import parallel_jobs

        records = [json.loads(p.read_text()) for p in sorted(Path(folder).glob("*.json"))]
        shutil.rmtree(folder, ignore_errors=True)
        launcher = OmegaConf.to_container(config.hydra.launcher, resolve=True)
        if "slurm" in str(launcher.get("_target_", "")).lower():  # jobs of runs_per_job runs each
            per_job = max(1, int(launcher.get("runs_per_job") or 1))
            print(summary_text(records, int(launcher.get("array_parallelism") or 1), per_job), flush=True)
        else:
            print(summary_text(records, parallel_jobs(launcher)), flush=True)
        sweep = Path(str(config.hydra.sweep.dir))
        (sweep / "multirun.yaml").unlink(missing_ok=True)  # Hydra's record of a sweep that did not run
        _remove_empty_dirs(Path(str(config.hydra.sweep.dir)), Path(str(config.results_dir)))


def _remove_empty_dirs(root: Path, stop: Path) -> None:
    """Remove the sweep folder's empty job folders, then it and its parents up to `stop` (results_dir)
    while they are empty: a plan leaves nothing behind."""
    if not root.is_dir():
        return
    for path in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(path.iterdir()):
            path.rmdir()
    stop = stop.resolve()
    path = root.resolve()
    while path.is_dir() and not any(path.iterdir()) and (path == stop or stop in path.parents):
        path.rmdir()
        path = path.parent
