"""Checks on the top-level settings, before anything is built, and the config's identity (its hash).

The defense and attack groups are built, and their options checked, in byzrun.build.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from byzrun import cpu_reductions
from byzrun.errors import ConfigError
from byzrun.paths import CONF_DIR
from byzrun.speed import RESULT_CHANGING_GPU_OPTIONS
from byzrun.split import check_split

# keys that do not change a run's results, left out of its identity (hash)
NON_SEMANTIC_KEYS = ("device", "results_dir", "progress", "eval_batch_size", "worker_chunk", "plan", "hydra")


def _int(cfg: DictConfig, key: str, low: int) -> int:
    value = OmegaConf.select(cfg, key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key} must be an integer, got {value!r}")
    if value < low:
        raise ConfigError(f"{key} must be >= {low}, got {value}")
    return value


def _number(cfg: DictConfig, key: str, optional: bool = False) -> None:
    value = OmegaConf.select(cfg, key)
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{key} must be a number{' or null' if optional else ''}, got {value!r}")


def _bool(cfg: DictConfig, key: str) -> None:
    value = OmegaConf.select(cfg, key)
    if not isinstance(value, bool):
        raise ConfigError(f"{key} must be true or false, got {value!r}")


def check_types(cfg: DictConfig) -> None:
    """Numbers where numbers belong, booleans where booleans do (`lr=abc`, `progress=maybe`)."""
    for key in ("lr", "lr_decay", "weight_decay", "momentum.beta"):
        _number(cfg, key)
    _number(cfg, "grad_clip", optional=True)
    for key in ("progress", "momentum.nesterov", "dataset.download", "dataset.augment"):
        if OmegaConf.select(cfg, key) is not None or key in ("progress", "momentum.nesterov"):
            _bool(cfg, key)
    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, int):
        raise ConfigError(f"seed must be an integer, got {cfg.seed!r}")
    for key in ("name", "row"):
        if not isinstance(cfg.get(key), (str, int, float, type(None))):
            raise ConfigError(f"{key} must be a label (text) or null, got {cfg.get(key)!r}")
    if not isinstance(OmegaConf.select(cfg, "defense.allow_out_of_bound", default=False), bool):
        raise ConfigError(
            f"defense.allow_out_of_bound must be true or false, got {cfg.defense.allow_out_of_bound!r}"
        )
    num_classes = OmegaConf.select(cfg, "dataset.num_classes")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ConfigError(f"dataset.num_classes must be an integer >= 2, got {num_classes!r}")
    for key in ("dataset.mean", "dataset.std"):
        values = OmegaConf.select(cfg, key)
        if (
            isinstance(values, (str, int, float))
            or values is None
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        ):
            raise ConfigError(f"{key} must be a list of numbers, one per channel, e.g. [0.5], got {values!r}")
    if not all(v > 0 for v in cfg.dataset.std):
        raise ConfigError(f"dataset.std must hold values > 0, got {list(cfg.dataset.std)}")
    sign_z = OmegaConf.select(cfg, "diagnostics.sign_flip_z")
    if sign_z is not None and (
        isinstance(sign_z, (str, int, float))
        or any(isinstance(z, bool) or not isinstance(z, (int, float)) for z in sign_z)
    ):
        raise ConfigError(
            f"diagnostics.sign_flip_z must be a list of numbers or null, e.g. [0.5,1,2], got {sign_z!r}"
        )


def check_model_options(cfg: DictConfig) -> None:
    """The model's options have the types of their defaults in conf/model/<name>.yaml (`model.hidden=abc`
    is caught before any data is loaded; the model itself is built once the data's shape is known)."""
    name = OmegaConf.select(cfg, "model.name")
    path = CONF_DIR / "model" / f"{name}.yaml"
    if not isinstance(name, str) or not path.is_file():
        return
    defaults = OmegaConf.to_container(OmegaConf.load(path))
    for key, default in defaults.items():
        value = OmegaConf.select(cfg, f"model.{key}")
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(default, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        else:
            continue
        if not ok:
            kind = "true or false" if isinstance(default, bool) else f"a number like {default}"
            raise ConfigError(f"model.{key} must be {kind}, got {value!r}")


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError (one line naming the fix) for invalid top-level settings."""
    check_types(cfg)
    check_model_options(cfg)
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
    if cfg.get("reductions", "torch") not in cpu_reductions.ORDERS:
        raise ConfigError(f"unknown reductions {cfg.reductions!r}; choose torch (the default) or numpy")
    check_split(cfg)
    resolve_device(cfg.device)
    check_results_dir(Path(str(cfg.results_dir)))


def check_results_dir(path: Path) -> None:
    """The results folder (or the nearest folder above it that exists) must be a writable directory:
    checked before any data is loaded, and without creating anything."""
    existing = path.expanduser().absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        what = "is a file" if existing == path.expanduser().absolute() else f"is under {existing}, a file"
        raise ConfigError(f"results_dir={path} {what}, not a folder; set results_dir to a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(
            f"results_dir={path}: cannot write in {existing}; set results_dir to a writable folder"
        )


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
    if container.get("split") == {"name": "iid"}:  # the default: runs from before `split` keep their hash
        container.pop("split")
    if container.get("reductions") == "torch":  # the default: runs from before the option keep their hash
        container.pop("reductions")
    if not container.get("deterministic"):  # the default leaves the hashes of earlier runs as they were
        container.pop("deterministic", None)
    if isinstance(container.get("dataset"), dict):
        container["dataset"].pop("root", None)  # where the files are does not change the result
        container["dataset"].pop("download", None)
    text = json.dumps(container, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:10]
