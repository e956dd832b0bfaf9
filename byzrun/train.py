"""One run: synchronous parameter-server SGD with n simulated workers, m of them Byzantine.

prepare() checks the config and builds everything a run needs; train() is the round loop, to be
read top to bottom:

  batches [n, b] by indexing -> all n honest gradients in one vmapped pass -> weight decay,
  clipping and worker momentum -> the attack writes the last m rows -> the server aggregates
  -> the server steps (with server momentum) -> evaluation and statistics, every few rounds.

Rows 0..h-1 of the submitted matrix G [n, d] are the honest workers (h = n - m), rows h..n-1 the
Byzantine ones. `velocity` is the momentum buffer (v = beta*v + g): [d] at the server, [n, d] at
the workers, as momentum.placement says.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from byzrun import cpu_reductions, default_m, reproducible
from byzrun.attacks import Attack
from byzrun.attacks.base import replace_byzantine_rows
from byzrun.build import build_attack, build_defense, check_attack_early
from byzrun.config import config_hash, resolve_device, validate
from byzrun.data import Data, load_data
from byzrun.diagnostics import round_statistics
from byzrun.errors import ConfigError
from byzrun.flat_model import FlatModel
from byzrun.models import WorkerBatchNorm2d, build_model, calibrate_batchnorm
from byzrun.preaggregation import Pipeline
from byzrun.progress import Progress
from byzrun.results import atomic_write_csv, is_finished, run_dir, start_run
from byzrun.root_set import RootSet
from byzrun.sampling import PartSampler, WorkerSampler, random_crop_flip
from byzrun.speed import gpu_options
from byzrun.split import make_sampler, split_table

log = logging.getLogger("byzrun")

# metrics.csv leads with these; attack and diagnostic columns follow
METRIC_COLUMNS = ("round", "epoch", "test_acc", "test_loss", "train_loss", "lr", "wall_seconds")


@dataclass
class Setup:
    """Everything a run needs, built and checked before training starts."""

    cfg: DictConfig
    device: torch.device
    out: Path
    defense: Pipeline
    attack: Attack
    data: Data
    model: FlatModel
    sampler: WorkerSampler | PartSampler
    generator: torch.Generator
    m_auto: bool = False  # m was not set: its default followed from n and the attack
    metrics: list[dict] = field(default_factory=list)
    root: RootSet | None = None  # the server's clean root set, for a rule that needs its gradient (FLTrust)


def prepare(cfg: DictConfig) -> Setup | None:
    """Validate the config and build the run; None when this exact run has already finished."""
    validate(cfg)
    reproducible.apply(cfg)
    cpu_reductions.use(cfg.get("reductions", "torch"))
    device = resolve_device(cfg.device)
    n, m = cfg.n, cfg.m
    m_auto = default_m.is_default(cfg)
    if m_auto:
        log.info("m not set: %d Byzantine workers of n=%d (0 without an attack, else floor((n-3)/4))", m, n)
    defense = build_defense(cfg.defense)
    attack = build_attack(cfg.attack)
    out = run_dir(cfg, defense.name, attack.name)
    if is_finished(out):
        log.info("already finished, skipping: %s", out)
        return None
    defense.check(n, m)
    if attack.needs_byzantine and m == 0:
        why = f" (the default m is floor((n-3)/4)=0 for n={n})" if m_auto else ""
        raise ConfigError(
            f"attack {attack.name} needs Byzantine workers but m=0{why}; set m >= 1 or attack=none"
        )
    check_attack_early(attack, n, m)
    torch.manual_seed(cfg.seed)
    data = load_data(cfg.dataset, device)
    attack.validate(n=n, m=m, data=data)
    model_options = {k: v for k, v in OmegaConf.to_container(cfg.model).items() if k != "name"}
    module = build_model(cfg.model.name, data.in_shape, data.num_classes, **model_options)
    model = FlatModel(module, device, cfg.worker_chunk, **gpu_options(cfg, device))
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    sampler = make_sampler(cfg, data.train_y, generator)  # each worker's part of the data (byzrun/split.py)
    root = RootSet(data, defense.root_size, cfg.seed, cfg.batch_size) if defense.root_size else None
    return Setup(cfg, device, out, defense, attack, data, model, sampler, generator, m_auto, root=root)


def learning_rate(cfg: DictConfig, t: int) -> float:
    if cfg.lr_schedule == "inverse":
        return cfg.lr * cfg.lr_decay / (t + cfg.lr_decay)
    return cfg.lr


def is_eval_round(cfg: DictConfig, r: int) -> bool:
    """Evaluate after round r (1-based): every eval_every rounds from eval_first (default: eval_every;
    the ALIE code evaluates after rounds 1, 6, 11, ...: eval_first=1), and after the last round."""
    first = cfg.get("eval_first") or cfg.eval_every
    return (r >= first and (r - first) % cfg.eval_every == 0) or r == cfg.rounds


def clip_rows(G: Tensor, max_norm: float) -> Tensor:
    """Scale every row whose L2 norm exceeds max_norm down to max_norm (in place)."""
    return G.mul_((max_norm / G.norm(dim=1, keepdim=True).clamp_min(1e-12)).clamp(max=1.0))


def train(s: Setup) -> dict:
    """Run the rounds, write metrics.csv after every evaluation and summary.csv at the end."""
    cfg, data, model, theta = s.cfg, s.data, s.model, s.model.theta
    n, m, h = cfg.n, cfg.m, cfg.n - cfg.m
    placement, beta, nesterov = cfg.momentum.placement, cfg.momentum.beta, cfg.momentum.nesterov
    velocity = None  # the momentum buffer
    if placement == "server":
        velocity = torch.zeros_like(theta)
    elif placement == "worker":
        velocity = torch.zeros(n, model.d, device=s.device)
    s.defense.reset()  # a stateful rule starts every run afresh (there is no mid-run resume to restore)
    start_run(s.out, cfg)
    log.info("run directory: %s", s.out)
    atomic_write_csv(s.out / "split.csv", split_table(s.sampler.parts(), data.train_y, data.num_classes, m))
    started = time.perf_counter()
    losses: list[Tensor] = []  # the honest workers' mean loss of every round since the last evaluation
    diverged_round = None
    bar = Progress(cfg.rounds, f"{cfg.dataset.name} {s.defense.name}/{s.attack.name}", bool(cfg.progress))
    for t in bar:
        lr = learning_rate(cfg, t)

        # ---- every worker's batch [n, b]; the Byzantine workers' may be poisoned (label flip)
        idx = s.sampler.next()
        x, y = data.train_x[idx], data.train_y[idx]
        if data.augment:
            x = random_crop_flip(x.flatten(0, 1), s.generator).view_as(x)
        if m:
            x[h:], y[h:] = s.attack.poison_batch(x[h:], y[h:], data)

        # ---- what every worker would honestly submit: its gradient [n, d] in one vmapped pass,
        # with the L2 term of its loss, clipped, then through its momentum (placement=worker)
        G, worker_losses = model.worker_grads(x, y)
        if cfg.weight_decay:
            G.add_(theta, alpha=cfg.weight_decay)
        if cfg.grad_clip is not None:
            clip_rows(G, cfg.grad_clip)
        if placement == "worker":
            velocity.mul_(beta).add_(G)
            G = G.add(velocity, alpha=beta) if nesterov else velocity.clone()
        s.defense.begin_round(s.root.gradient(model, cfg.weight_decay, cfg.grad_clip) if s.root else None)

        # ---- the attack replaces the last m rows
        if m:
            replace_byzantine_rows(G, m, s.attack, round=t, defense=s.defense, model=model, lr=lr)

        # ---- the server aggregates; a non-finite aggregate ends the run. A round without statistics
        # reads G no more: its pre-aggregation may write into G (clipping: no new [n, d] matrix)
        is_eval = is_eval_round(cfg, t + 1)
        every = cfg.diagnostics.every
        statistics = is_eval or bool(every and (t + 1) % every == 0)
        aggregate = s.defense(G, m, overwrite=not statistics)
        if not torch.isfinite(aggregate).all():
            diverged_round = t + 1
            log.warning("round %d: the aggregate is not finite (NaN/Inf); the run diverged, stopping", t + 1)
            break
        s.defense.end_round(aggregate)

        # ---- the server steps (through its momentum, placement=server)
        step = aggregate
        if placement == "server":
            velocity.mul_(beta).add_(step)
            step = step.add(velocity, alpha=beta) if nesterov else velocity
        theta.add_(step, alpha=-lr)
        losses.append(worker_losses[:h].mean())

        # ---- evaluation and round statistics -> metrics.csv
        if statistics:
            tested = {}
            if is_eval:
                tested = evaluate(s, torch.stack(losses).mean().item())
                losses = []
                bar.evaluated(t + 1, tested["test_acc"])
            s.metrics.append(round_row(s, t, lr, G, aggregate, tested, started))
            atomic_write_csv(s.out / "metrics.csv", s.metrics, METRIC_COLUMNS)

    bar.close()
    atomic_write_csv(s.out / "metrics.csv", s.metrics, METRIC_COLUMNS)
    summary = summarize(s, diverged_round, time.perf_counter() - started)
    atomic_write_csv(s.out / "summary.csv", [summary])
    log.info(
        "max test accuracy %.2f%%, final %.2f%% (%s)",
        summary["max_test_acc"],
        summary["final_test_acc"],
        s.out / "summary.csv",
    )
    return summary


def evaluate(s: Setup, train_loss: float) -> dict:
    """Test accuracy and loss of the current model (and the attack's own evaluation metrics)."""
    cfg, data, model = s.cfg, s.data, s.model
    if cfg.bn_calibration and any(isinstance(mod, WorkerBatchNorm2d) for mod in model.module.modules()):
        idx = torch.randint(len(data.train_y), (cfg.bn_calibration,), generator=s.generator, device=s.device)
        x = data.train_x[idx]
        if data.augment:
            x = random_crop_flip(x, s.generator)
        calibrate_batchnorm(model.module, x.split(cfg.batch_size))
    acc, loss = model.evaluate(data.test_x, data.test_y, cfg.eval_batch_size)
    return {"test_acc": acc, "test_loss": loss, "train_loss": train_loss, **s.attack.eval_metrics(model)}


def round_row(
    s: Setup, t: int, lr: float, G: Tensor, aggregate: Tensor, tested: dict, started: float
) -> dict:
    """One metrics.csv row for round t: the evaluation results `tested` (empty between evaluations),
    then the round's statistics (byzrun/diagnostics.py)."""
    cfg, h = s.cfg, s.cfg.n - s.cfg.m
    samples_per_epoch = len(s.data.train_y) / (cfg.n * cfg.batch_size)
    row = {"round": t + 1, "epoch": (t + 1) / samples_per_epoch, **tested, "lr": lr}
    row["wall_seconds"] = time.perf_counter() - started
    sign_z = list(cfg.diagnostics.sign_flip_z) if cfg.diagnostics.sign_flip_z else None
    row.update(round_statistics(G[:h], G, aggregate, cfg.m, s.defense, sign_z))
    return row


def summarize(s: Setup, diverged_round: int | None, wall: float) -> dict:
    cfg = s.cfg
    metrics = pd.DataFrame(s.metrics)
    acc = metrics["test_acc"].dropna() if "test_acc" in metrics else pd.Series(dtype=float)
    row = {
        "dataset": cfg.dataset.name,
        "model": cfg.model.name,
        "defense": s.defense.name,
        "attack": s.attack.name,
        "n": cfg.n,
        "m": cfg.m,
        "m_auto": s.m_auto,
        "z": math.nan,
        "alpha": math.nan,
        "seed": cfg.seed,
        "max_test_acc": acc.max() if len(acc) else math.nan,
        # a diverged model has NaN parameters: its final accuracy is undefined
        "final_test_acc": acc.iloc[-1] if len(acc) and diverged_round is None else math.nan,
        "rounds": diverged_round or cfg.rounds,
        "wall_seconds": wall,
        "momentum": cfg.momentum.placement,
        "beta": cfg.momentum.beta,
        "lr": cfg.lr,
        "diverged": diverged_round is not None,
        "diverged_round": diverged_round,
        "name": cfg.name,
        "row": cfg.get("row"),
        "config_hash": config_hash(cfg),
        "data_fingerprint": s.data.fingerprint,
        "worker_chunk": s.model.chunk_used,  # workers per vectorised pass (speed only, byzrun/chunking.py)
    }
    row.update(reproducible.summary_fields(cfg))  # the code path: pinned or not, kernels, threads
    row.update(s.attack.summary_fields())
    for column in ("backdoor_acc", "backdoor_acc_own"):
        if column in metrics:
            values = metrics[column].dropna()
            row[f"max_{column}"] = values.max() if len(values) else math.nan
            row[f"final_{column}"] = values.iloc[-1] if len(values) and diverged_round is None else math.nan
    return row


def run(cfg: DictConfig) -> dict | None:
    """Validate, build and train; returns the summary row (None if the run had already finished)."""
    setup = prepare(cfg)
    if setup is None:
        return None
    return train(setup)
