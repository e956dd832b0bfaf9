"""Hydra's basic sweeper (every combination of the swept values, in the same order and batches), with a
cheaper check before the first run: `hydra/sweeper=covering`, byzrun's default (conf/config.yaml).

Before it launches a batch, Hydra's basic sweeper composes the config of every point of it, to stop a
sweep with a bad override before any run. One compose rereads and merges the config files (0.27 s of
CPU on the project's 2-core machine, Hydra's own cost), so a 900-point benchmark spent 4 minutes of one
core, 10-15 on a loaded machine, before its first run, while every job composes its own config again
when it starts. This sweeper composes a covering sample of the batch instead: its point i takes the i-th
value (modulo their number) of every swept key, so that every value of every key is composed at least
once, in max(values per key) composes (10 for the robustness benchmark). A bad value (a missing option,
a key the config has not, a wrong type) still stops the sweep before any run; only an error that needs
two particular values together (never the case in the presets) shows when its job starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hydra._internal.core_plugins import basic_sweeper
from hydra.plugins.sweeper import Sweeper


def covering_sample(batch: Sequence[Sequence[str]]) -> list[list[str]]:
    """Points whose overrides hold every `key=value` of the batch's points at its position; the batch
    itself when its points do not all override the same keys in the same order."""
    keys = [[override.split("=", 1)[0] for override in point] for point in batch]
    if not batch or any(k != keys[0] for k in keys):
        return [list(point) for point in batch]
    values = [list(dict.fromkeys(point[i] for point in batch)) for i in range(len(keys[0]))]
    width = max((len(v) for v in values), default=1)
    return [[v[i % len(v)] for v in values] for i in range(width)]


class CoveringSweeper(Sweeper):
    """A BasicSweeper that checks a covering sample of each batch (covering_sample) before launching it.

    It holds one rather than subclassing it: Hydra's plugin scan re-imports its core plugin modules, and
    BasicSweeper's own `super(BasicSweeper, self)` then refuses a subclass of the earlier class."""

    def __init__(self, max_batch_size: int | None = None, params: dict[str, str] | None = None) -> None:
        self.basic = basic_sweeper.BasicSweeper(max_batch_size=max_batch_size, params=params)
        self.basic.validate_batch_is_legal = self.validate_batch_is_legal

    def setup(self, **kwargs: Any) -> None:
        self.basic.setup(**kwargs)

    def sweep(self, arguments: list[str]) -> Any:
        return self.basic.sweep(arguments)

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        Sweeper.validate_batch_is_legal(self.basic, covering_sample(batch))
