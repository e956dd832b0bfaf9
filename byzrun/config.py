"""Checks on the top-level settings, before anything is built, and the config's identity (its hash).

The defense and attack groups are built, and their options checked, in byzrun.build.
"""

from __future__ import annotations

import hashlib
import json
import re

import torch
from omegaconf import DictConfig, OmegaConf

from byzrun.errors import ConfigError
from byzrun.speed import RESULT_CHANGING_GPU_OPTIONS

# keys that do not change a run's results, left out of its identity (hash)
NON_SEMANTIC_KEYS = ("device", "results_dir", "progress", "eval_batch_size", "worker_chunk", "plan", "hydra")


def _int(cfg: DictConfig, key: str, low: int) -> int:
    value = OmegaConf.select(cfg, key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key} must be an integer, got {value!r}")
    if value < low:
        raise ConfigError(f"{key} must be >= {low}, got {value}")
    return value


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError (one line naming the fix) for invalid top-level settings."""
    n = _int(cfg, "n", 1)
    m = _int(cfg, "m", 0)
    if m >= n:
        raise ConfigError(f"m={m} Byzantine workers out of n={n}: need m < n (at least one honest worker)")
    _int(cfg, "batch_size", 1)
    _int(cfg, "rounds", 1)
    _int(cfg, "eval_every", 1)
    if cfg.get("eval_first") is not None:
        _int(cfg, "eval_first", 1)
    _int(cfg, "eval_batch_size", 1)
    _int(cfg, "bn_calibration", 0)
    if cfg.diagnostics.every is not None:
        _int(cfg, "diagnostics.every", 1)
    sign_z = cfg.diagnostics.sign_flip_z
    if sign_z is not None and any(z < 0 for z in sign_z):
        raise ConfigError(f"diagnostics.sign_flip_z must hold values >= 0, got {list(sign_z)}")
    if cfg.worker_chunk not in (None, "auto"):
        if isinstance(cfg.worker_chunk, str) or isinstance(cfg.worker_chunk, bool):
            raise ConfigError(f"worker_chunk must be auto, null or an integer >= 1, got {cfg.worker_chunk!r}")
        _int(cfg, "worker_chunk", 1)
    if not cfg.lr > 0:
        raise ConfigError(f"lr must be > 0, got {cfg.lr}")
    if cfg.lr_schedule not in ("constant", "inverse"):
        raise ConfigError(f"unknown lr_schedule {cfg.lr_schedule!r}; choose constant or inverse")
    if cfg.lr_schedule == "inverse" and not cfg.lr_decay > 0:
        raise ConfigError(f"lr_decay must be > 0 for lr_schedule=inverse, got {cfg.lr_decay}")
    if cfg.weight_decay < 0:
        raise ConfigError(f"weight_decay must be >= 0, got {cfg.weight_decay}")
    if cfg.grad_clip is not None and not cfg.grad_clip > 0:
        raise ConfigError(f"grad_clip must be > 0 or null, got {cfg.grad_clip}")
    if cfg.sampling not in ("iid", "shards", "alie_code"):
        raise ConfigError(f"unknown sampling {cfg.sampling!r}; choose iid, shards or alie_code")
    if cfg.momentum.placement not in ("server", "worker", "none"):
        raise ConfigError(
            f"unknown momentum.placement {cfg.momentum.placement!r}; choose server, worker or none"
        )
    if not 0 <= cfg.momentum.beta < 1:
        raise ConfigError(f"momentum.beta must be in [0, 1), got {cfg.momentum.beta}")
    resolve_device(cfg.device)


def resolve_device(spec: str) -> torch.device:
    """auto -> cuda when available, else cpu; anything else must name an available device."""
    spec = str(spec)
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", spec)
    if not match:
        raise ConfigError(f"unknown device {spec!r}; use auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise ConfigError(f"device={spec} but CUDA is not available here; use device=auto or device=cpu")
    index = int(match.group(1) or 0)
    if index >= torch.cuda.device_count():
        raise ConfigError(f"device={spec} but only {torch.cuda.device_count()} CUDA device(s) exist")
    return torch.device(spec)


def config_hash(cfg: DictConfig) -> str:
    """A short stable hash of everything that determines a run's results."""
    container = OmegaConf.to_container(cfg, resolve=True)
    for key in NON_SEMANTIC_KEYS:
        container.pop(key, None)
    # gpu.*: speed only, except tf32 and bf16, which change results: kept when not at their defaults
    gpu = container.pop("gpu", None) or {}
    changed = {
        k: gpu[k] for k, default in RESULT_CHANGING_GPU_OPTIONS.items() if gpu.get(k, default) != default
    }
    if changed:
        container["gpu"] = changed
    if isinstance(container.get("dataset"), dict):
        container["dataset"].pop("root", None)  # where the files are does not change the result
        container["dataset"].pop("download", None)
    text = json.dumps(container, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:10]
