"""One number per run for the generic tables: its test accuracy by a chosen metric over its evaluations.

- `last-k` (the default, k=5): the mean of the last k evaluations' test accuracy (all of them when a run
  has fewer). The default because an attacked run can peak early and then collapse: its maximum
  flatters it, its final value alone is one noisy evaluation.
- `final`: the last evaluation's test accuracy.
- `max`: the highest test accuracy over the evaluations (what the paper tables report).

The values come from the run's metrics.csv (`test_acc`), or from summary.csv's max_test_acc and
final_test_acc when metrics.csv is missing. A diverged run (non-finite aggregate, its model NaN) has no
final accuracy: `final` and `last-k` are undefined for it (NaN, left out of the mean), `max` is the
maximum before divergence, as in summary.csv.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from byzrun.report.collect import Run, curve

METRICS = ("last-k", "final", "max")
DEFAULT_METRIC = "last-k"
DEFAULT_K = 5


@dataclass(frozen=True)
class Metric:
    """Which accuracy of a run a generic table shows: kind in METRICS, k for `last-k`."""

    kind: str = DEFAULT_METRIC
    k: int = DEFAULT_K

    @property
    def name(self) -> str:
        """Short, for headings and the CSV's metric column: 'last-5 mean', 'final', 'max'."""
        return f"last-{self.k} mean" if self.kind == "last-k" else self.kind

    @property
    def description(self) -> str:
        return {
            "last-k": f"mean test accuracy (%) over the last {self.k} evaluations",
            "final": "test accuracy (%) at the last evaluation",
            "max": "highest test accuracy (%) over the evaluations",
        }[self.kind]

    def of(self, run: Run) -> float:
        """The run's value (NaN when undefined: no evaluation, or final/last-k of a diverged run)."""
        if run.diverged and self.kind != "max":
            return math.nan
        acc = curve(run, "test_acc")["test_acc"]
        if acc.empty:
            fallback = {"max": "max_test_acc", "final": "final_test_acc"}.get(self.kind)
            return run.value(fallback) if fallback else math.nan
        if self.kind == "max":
            return float(acc.max())
        if self.kind == "final":
            return float(acc.iloc[-1])
        return float(acc.iloc[-self.k :].mean())
