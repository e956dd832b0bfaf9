"""The worst case over attacks, ByzFL's headline metric: per defense (with its pre-aggregation) and per
combination of the other settings that vary (f = m, the heterogeneity of the split, lr, ...), the
lowest accuracy over the attacks of the sweep.

Seeds first, then attacks: each (defense, attack, settings) cell is the mean over its seeds of the
chosen metric (byzrun.report.scores), and the worst case is the lowest of these means over the attacks
run with that defense and those settings. attack=none is no attack and is left out; a defense without
an attacked run for some settings has no worst case there.

A diverged cell (a run of it diverged: the defense broke, byzrun.report.sweep) ranks below every
accuracy: the worst case is then that divergence, with its attack and how many of the cell's runs
diverged; among several diverged cells, the one where the largest share of runs diverged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from byzrun.report.collect import Run
from byzrun.report.scores import Metric
from byzrun.report.sweep import Dimension, SweepTable, build_table


@dataclass(frozen=True)
class Worst:
    """One worst case: the lowest mean over attacks (NaN when the worst is a divergence), its std and seed
    count, the attack that gave it, how many attacks were compared, and how many of the worst cell's
    runs diverged (0: the worst is an accuracy)."""

    mean: float
    std: float
    seeds: int
    attack: str
    attacks: int
    diverged: int


@dataclass
class WorstTable:
    """Worst cases by (defense, settings): defenses as rows, the combinations of the other varying
    settings (the sections of the defense x attack table) as columns."""

    table: SweepTable
    rows: list[str]
    cols: list[str]
    cells: dict[tuple[str, str], Worst]


def worst_case(runs: list[Run], metric: Metric) -> WorstTable | None:
    """The worst cases of the runs, or None when no run is attacked."""
    table = build_table(runs, Dimension("defense"), Dimension("attack"), metric)
    if not any(entry.attacked for entry in table.col_entries.values()):
        return None
    labels = {row for section in table.sections for row in section.rows}
    rows = sorted(labels, key=lambda label: (table.row_entries[label].order, label))
    cells = {}
    for section in table.sections:
        for row in section.rows:
            worst = lowest(section.cells, row, [c for c in section.cols if table.col_entries[c].attacked])
            if worst is not None:
                cells[row, section.title] = worst
    return WorstTable(table, rows, [s.title for s in table.sections], cells)


def lowest(cells: dict, row: str, attacks: list[str]) -> Worst | None:
    """The worst attack of a row: a diverged cell first (the largest share of diverged runs), else the
    lowest mean; the first in column order among equals."""
    found = [(cells[row, a].stats, a) for a in attacks if (row, a) in cells]
    ranked = [(s, a) for s, a in found if s["diverged"] or not math.isnan(s["mean"])]
    if not ranked:
        return None
    stats, attack = min(ranked, key=lambda sa: badness(sa[0]))
    return Worst(stats["mean"], stats["std"], stats["seeds"], attack, len(ranked), stats["diverged"])


def badness(stats: dict) -> tuple:
    """Sort key, worst first: diverged cells by the share of runs that diverged, then means."""
    if stats["diverged"]:
        return (0, -stats["diverged"] / stats["seeds"])
    return (1, stats["mean"])


def matrix(worst: WorstTable) -> tuple[np.ndarray, list[list[str]], np.ndarray]:
    """The heatmap's values (rows x cols, NaN where missing or diverged), the attack named in each cell,
    and how many runs of each cell diverged."""
    values = np.full((len(worst.rows), len(worst.cols)), np.nan)
    diverged = np.zeros(values.shape, dtype=int)
    attacks = [[""] * len(worst.cols) for _ in worst.rows]
    for i, row in enumerate(worst.rows):
        for j, col in enumerate(worst.cols):
            cell = worst.cells.get((row, col))
            if cell is not None:
                values[i, j], attacks[i][j], diverged[i, j] = cell.mean, cell.attack, cell.diverged
    return values, attacks, diverged
