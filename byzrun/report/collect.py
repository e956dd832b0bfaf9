"""Find the runs under a results directory and read what identifies them.

A run is a directory holding summary.csv (one row, written by byzrun.train) and config.yaml (the full
resolved config). Its *settings* are the config flattened into dotted keys (`defense.neighbours`,
`momentum.beta`), less the keys that do not change a result: the seed (runs that differ only in it are
pooled), where and how the run was executed, and logging-only diagnostics. Two runs share a table cell
only if their settings are equal. A key set to null counts as absent, so that a key added to the config
later (null by default) does not split old runs from new ones.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml
from omegaconf._utils import get_yaml_loader

IGNORED_KEYS = frozenset(
    "seed device results_dir progress eval_batch_size worker_chunk dataset.root dataset.download plan "
    "gpu.channels_last gpu.compile".split()
)
#: result-changing options at their defaults count as absent (runs from before they existed share cells)
DEFAULTS_AS_ABSENT = {
    "gpu.tf32": None,
    "gpu.bf16": False,
    "split.name": "iid",
    "deterministic": False,
    "reductions": "torch",
}
IGNORED_PREFIXES = ("hydra.", "diagnostics.")
TEXT_COLUMNS = [
    "dataset",
    "model",
    "defense",
    "attack",
    "momentum",
    "name",
    "row",
    "config_hash",
    "data_fingerprint",
]


def warn(message: str) -> None:
    print(f"byzrun tables: warning: {message}", file=sys.stderr)


@dataclass(frozen=True)
class Run:
    """One finished run: where it is (relative to the results directory), its summary row, its seed
    and its result-changing settings."""

    directory: Path
    name: str
    summary: dict
    seed: int | None
    settings: dict

    def value(self, column: str) -> float:
        """A numeric summary column as a float (NaN when absent or not a number)."""
        number = pd.to_numeric(self.summary.get(column), errors="coerce")
        return math.nan if number is None or pd.isna(number) else float(number)

    def text(self, column: str, default: str = "") -> str:
        value = self.summary.get(column)
        return default if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)

    @property
    def diverged(self) -> bool:
        return str(self.summary.get("diverged", "")).strip().lower() in ("true", "1", "1.0")

    @property
    def dataset(self) -> str:
        return str(self.settings.get("dataset.name", self.text("dataset", "?")))


def flatten(tree: dict, prefix: str = "") -> dict:
    """{'a': {'b': 1}, 'c': [1, 2]} -> {'a.b': 1, 'c': [1, 2]}: nested mappings become dotted keys,
    lists stay values."""
    flat = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


def is_ignored(key: str) -> bool:
    return key in IGNORED_KEYS or key.startswith(IGNORED_PREFIXES)


def result_settings(config: dict) -> dict:
    """The settings that change a run's result, as a flat dict sorted by key (null values left out)."""
    flat = flatten(config)
    return {
        k: flat[k]
        for k in sorted(flat)
        if not is_ignored(k) and flat[k] is not None and DEFAULTS_AS_ABSENT.get(k, ...) != flat[k]
    }


def show(value) -> str:
    """A setting's value as text: strings as they are, everything else as JSON (1.5, true, [0, 0])."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def settings_hash(settings: dict, length: int = 10) -> str:
    """A stable short hash of a settings dict (the same settings give the same hash everywhere)."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:length]


def without(settings: dict, keys: tuple[str, ...] = (), prefixes: tuple[str, ...] = ()) -> dict:
    """settings less the named keys and every key starting with one of the prefixes."""
    return {k: v for k, v in settings.items() if k not in keys and not k.startswith(prefixes)}


class Unreadable(Exception):
    """A run file that cannot be used; the message says why."""


def config_loader() -> type:
    """OmegaConf's YAML loader (its float syntax such as 1e-3, no timestamps, a duplicate key an error) on
    libyaml's C parser where PyYAML has it: the dicts OmegaConf.load gives, about ten times faster (the pure
    Python parser and OmegaConf's node tree were most of the time a report of many runs took)."""
    omegaconf_loader = get_yaml_loader()
    if not yaml.__with_libyaml__:
        return omegaconf_loader

    class Loader(yaml.cyaml.CParser, omegaconf_loader):
        def __init__(self, stream):
            yaml.cyaml.CParser.__init__(self, stream)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)

    return Loader


CONFIG_LOADER = config_loader()


def read_config(path: Path) -> dict:
    """config.yaml as a plain dict, as OmegaConf.load reads it (an empty file: no settings); Unreadable
    when missing, unreadable or not a mapping."""
    try:
        with open(path, encoding="utf-8") as file:
            config = yaml.load(file, Loader=CONFIG_LOADER)
    except FileNotFoundError:
        raise Unreadable("no config.yaml (its settings are unknown)") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError) as err:
        raise Unreadable(f"unreadable config.yaml ({type(err).__name__})") from None
    config = {} if config is None else config
    if not isinstance(config, dict):
        raise Unreadable("config.yaml is not a mapping")
    return config


#: read as missing, as pandas.read_csv reads them by default (its na_values)
MISSING = frozenset(
    ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A"]
    + ["NA", "NULL", "NaN", "None", "n/a", "nan", "null"]
)
BOOLEANS = {"True": True, "TRUE": True, "true": True, "False": False, "FALSE": False, "false": False}
INTEGER = re.compile(r"[+-]?\d+")
FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(inf|Inf|INF|infinity|Infinity|INFINITY)")


def typed(column: str, text: str):
    """A summary field as pandas.read_csv types a one-row column: None when missing, text in the
    TEXT_COLUMNS, else a bool, int or float when it reads as one, else the text."""
    if text in MISSING:
        return None
    if column in TEXT_COLUMNS:
        return text
    if text in BOOLEANS:
        return BOOLEANS[text]
    if INTEGER.fullmatch(text):
        return int(text)
    return float(text) if FLOAT.fullmatch(text) else text


def read_summary(path: Path) -> dict:
    """The first row of summary.csv as pandas.read_csv would read it (missing values as None; read with
    the csv module, which takes a fiftieth of the time: it was most of what reading a run took once
    config.yaml was fast); Unreadable when unreadable or empty."""
    try:
        with open(path, newline="", encoding="utf-8") as file:
            lines = [line for line in csv.reader(file) if line]  # blank lines skipped, as pandas does
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise Unreadable(f"unreadable summary.csv ({type(err).__name__})") from None
    if not lines:
        raise Unreadable("unreadable summary.csv (empty)")
    if len(lines) < 2:
        raise Unreadable("summary.csv has no row")
    header, row = lines[0], lines[1]
    if len(row) > len(header):
        raise Unreadable("unreadable summary.csv (more fields than columns)")
    row += [""] * (len(header) - len(row))  # a short row: the rest missing, as pandas pads it
    return {column: typed(column, text) for column, text in zip(header, row)}


def curve(run: Run, column: str) -> pd.DataFrame:
    """One run's `column` over rounds from its metrics.csv (rows without a value dropped); empty when the
    file or the column is missing."""
    try:
        metrics = pd.read_csv(run.directory / "metrics.csv")
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return pd.DataFrame(columns=["round", column])
    if "round" not in metrics or column not in metrics:
        return pd.DataFrame(columns=["round", column])
    values = pd.to_numeric(metrics[column], errors="coerce")
    return pd.DataFrame({"round": metrics["round"], column: values}).dropna().sort_values("round")


def read_run(directory: Path, results_dir: Path) -> Run | None:
    """One run directory, or None (with a warning) when its summary or config cannot be read."""
    name = directory.relative_to(results_dir).as_posix()
    try:
        summary = read_summary(directory / "summary.csv")
        config = read_config(directory / "config.yaml")
    except Unreadable as err:
        warn(f"skipped {name}: {err}")
        return None
    seed = pd.to_numeric(config.get("seed", summary.get("seed")), errors="coerce")
    seed = None if seed is None or pd.isna(seed) else int(seed)
    return Run(directory, name, summary, seed, result_settings(config))


def runs_folder(results_dir: Path) -> Path:
    """Where the runs of a results directory are: <results_dir>/runs/, where byzrun writes them with
    results_dir=<results_dir>; a folder that itself holds run folders (results/runs) is used as it is.
    Nothing else under results_dir is read, so `results` never reaches into results/paper/runs."""
    runs = results_dir / "runs"
    if runs.is_dir() or not any(results_dir.glob("*/summary.csv")):
        return runs
    return results_dir


def collect(results_dir: Path) -> list[Run]:
    """Every run under runs_folder(results_dir) (any folder holding a summary.csv), in path order; a run
    found twice (same config_hash) is kept once."""
    runs, seen = [], {}
    folder = runs_folder(results_dir)
    for path in sorted(folder.rglob("summary.csv")) if folder.is_dir() else []:
        run = read_run(path.parent, results_dir)
        if run is None:
            continue
        key = run.text("config_hash")
        if key and key in seen:
            warn(f"{run.name}: same config_hash as {seen[key]}, counted once")
            continue
        seen[key] = run.name
        runs.append(run)
    return runs


class MixedData(Exception):
    """Runs that would be pooled (equal settings) trained on different copies of their dataset."""


def check_same_data(runs: list[Run]) -> None:
    """Raise MixedData when two runs of equal settings (pooled over seeds into one cell) record different
    data fingerprints (summary.csv's data_fingerprint; runs written before it existed are not checked)."""
    seen: dict[str, Run] = {}
    for run in runs:
        mark = run.text("data_fingerprint")
        if not mark:
            continue
        key = settings_hash(run.settings)
        first = seen.setdefault(key, run)
        if first.text("data_fingerprint") != mark:
            raise MixedData(
                f"{first.name} and {run.name} have the same settings but trained on different data "
                f"(fingerprints {first.text('data_fingerprint')} and {mark}); keep the runs of one copy of "
                "the dataset in a results directory, or move the others away"
            )
