"""The worst case over attacks, ByzFL's headline metric: per defense (with its pre-aggregation) and per
combination of the other settings that vary (f = m, the heterogeneity of the split, lr, ...), the
lowest accuracy over the attacks of the sweep.

Seeds first, then attacks: each (defense, attack, settings) cell is the mean over its seeds of the
chosen metric (byzrun.report.scores), and the worst case is the lowest of these means over the attacks
run with that defense and those settings. attack=none is no attack and is left out; a defense without
an attacked run for some settings has no worst case there.
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
    """One worst case: the lowest mean over attacks, its std and seed count, the attack that gave it,
    how many attacks were compared, and whether a run compared diverged."""

    mean: float
    std: float
    seeds: int
    attack: str
    attacks: int
    diverged: bool


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
    """The attack (in column order; the first of equal means) with the lowest mean in a row."""
    found = [(cells[row, a].stats, a) for a in attacks if (row, a) in cells]
    valued = [(s, a) for s, a in found if not math.isnan(s["mean"])]
    if not valued:
        return None
    best, attack = min(valued, key=lambda sa: sa[0]["mean"])
    diverged = any(s["diverged"] for s, _ in found)
    return Worst(best["mean"], best["std"], best["seeds"], attack, len(valued), diverged)


def matrix(worst: WorstTable) -> tuple[np.ndarray, list[list[str]]]:
    """The heatmap's values (rows x cols, NaN where missing) and the attack named in each cell."""
    values = np.full((len(worst.rows), len(worst.cols)), np.nan)
    attacks = [[""] * len(worst.cols) for _ in worst.rows]
    for i, row in enumerate(worst.rows):
        for j, col in enumerate(worst.cols):
            cell = worst.cells.get((row, col))
            if cell is not None:
                values[i, j], attacks[i][j] = cell.mean, cell.attack
    return values, attacks
