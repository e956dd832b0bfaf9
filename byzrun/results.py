"""Run directories and atomic writes: a finished result is never lost or half-written."""

from __future__ import annotations

import os
import socket
import tempfile
import time
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from byzrun.config import config_hash

_UMASK = os.umask(0o022)  # read once (os.umask can only be read by setting it), then put back
os.umask(_UMASK)


#: temporary files are named .<file>.<host>-<pid>.<random>.tmp, so that the next start of a run can tell
#: those of a process that is gone (killed) from those of one still writing
HOST = socket.gethostname().split(".")[0]
STALE_FOREIGN_SECONDS = 24 * 3600  # another host's temporary file: removed when this old


def atomic_write_text(path: Path, text: str | bytes) -> None:
    """Write text (or bytes: a PNG) to a temporary file in the same folder, then rename it over `path`.
    Any exception, KeyboardInterrupt and SIGTERM (byzrun.cli raises on it) included, removes it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.{HOST}-{os.getpid()}.", suffix=".tmp"
        )
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes it private (0600); results are meant to be shared
        with os.fdopen(fd, "wb" if isinstance(text, bytes) else "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if tmp is not None:
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


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_stale(tmp: Path) -> bool:
    """A temporary file of atomic_write_text whose writer is gone: this host's and its process has ended
    (or is this one, which is not writing it), or another host's and a day old."""
    tag = tmp.name[:-4].rsplit(".", 2)[-2] if tmp.name.count(".") >= 3 else ""
    host, _, pid = tag.rpartition("-")
    if host == HOST and pid.isdigit():
        return int(pid) == os.getpid() or not alive(int(pid))
    try:
        return time.time() - tmp.stat().st_mtime > STALE_FOREIGN_SECONDS
    except OSError:
        return False


def remove_stale_temporaries(directory: Path) -> list[Path]:
    """Remove the temporary files a killed earlier attempt (SIGKILL, power loss) left in `directory`."""
    removed = []
    for tmp in directory.glob(".*.tmp"):
        if is_stale(tmp):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def start_run(directory: Path, cfg: DictConfig) -> None:
    """Clear what an interrupted earlier attempt left and save the resolved config."""
    for stale in ("metrics.csv", "summary.csv"):
        (directory / stale).unlink(missing_ok=True)
    if directory.is_dir():
        remove_stale_temporaries(directory)
    atomic_write_text(directory / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
