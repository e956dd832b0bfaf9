"""Run directories and atomic writes: a finished result is never lost or half-written."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from byzrun.config import config_hash

_UMASK = os.umask(0o022)  # read once (os.umask can only be read by setting it), then put back
os.umask(_UMASK)


def atomic_write_text(path: Path, text: str | bytes) -> None:
    """Write text (or bytes: a PNG) to a temporary file in the same folder, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes it private (0600); results are meant to be shared
        with os.fdopen(fd, "wb" if isinstance(text, bytes) else "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_csv(path: Path, rows: list[dict], first: tuple[str, ...] = ()) -> None:
    """Write rows as CSV; the columns named in `first` lead (when present), the rest follow."""
    frame = pd.DataFrame(rows)
    lead = [c for c in first if c in frame.columns]
    frame = frame[lead + [c for c in frame.columns if c not in lead]]
    atomic_write_text(path, frame.to_csv(index=False))


def run_dir(cfg: DictConfig, defense: str, attack: str) -> Path:
    """results/runs/<dataset>-<defense>-<attack>-n<n>-m<m>-s<seed>-<hash>: readable and collision-free
    (the hash covers the whole resolved config, so runs differing in any option never share a folder)."""
    label = f"{cfg.dataset.name}-{defense}-{attack}-n{cfg.n}-m{cfg.m}-s{cfg.seed}-{config_hash(cfg)}"
    return Path(str(cfg.results_dir)) / "runs" / label


def is_finished(directory: Path) -> bool:
    return (directory / "summary.csv").is_file()


def start_run(directory: Path, cfg: DictConfig) -> None:
    """Clear what an interrupted earlier attempt left and save the resolved config."""
    for stale in ("metrics.csv", "summary.csv"):
        (directory / stale).unlink(missing_ok=True)
    atomic_write_text(directory / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
