"""The generic table of any sweep: rows and columns from the settings that vary among its runs.

Every run not launched for a paper table (name other than table1, table2, momentum) lands here. A
*dimension* is a setting or a group of settings: `defense` (every defense.* key: the rule, its options,
its pre-aggregation), `attack` (every attack.* key), `split` (every split.* key: the heterogeneity
level), or any dotted key or prefix (`m`, `lr`, `defense.pre`). The table has one row per distinct value
of the row dimension (default `defense`), one column per distinct value of the column dimension (default
`attack`), and one section per combination of the other settings that vary among the runs (each varying
defense.*, attack.* or split.* key left over counts as the one dimension `defense`, `attack` or
`split`). Since every varying setting is then fixed by a cell's section, row and column, the runs of a
cell differ in their seed only: a cell pools seeds, never settings (mean, sample std, count of one
Metric, byzrun.report.scores).

Divergence: a run that diverged (non-finite aggregate) is a broken run, not a missing value. A cell with
a diverged run is *diverged*: it shows how many of its runs diverged (`diverged 1/3`) and no mean, under
every metric, since averaging the seeds that survived would hide that the defense broke; the CSV keeps
the others' values in `per_seed`. The worst case (byzrun.report.worst) ranks a diverged cell below every
accuracy.

Labels: a defense by its label in summary.csv (`median`, `nnm+krum`), an attack by the conf/ preset its
settings match (byzrun.report.presets), the split (every split.* key, one dimension) by its level
(`iid`, `Dir(0.1)`: byzrun.report.split_label), any other dimension as key=value of its varying keys; two
distinct settings with the same label get a suffix naming what differs (byzrun.report.tables.suffixes).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from byzrun.report.captions import fmt
from byzrun.report.collect import Run, settings_hash, show
from byzrun.report.presets import attack_label
from byzrun.report.scores import Metric
from byzrun.report.split_label import split_label, split_order
from byzrun.report.tables import by_seed, sortable, stats, suffixes

GROUPS = ("defense", "attack", "split")  # dimensions labelled by name, not by their keys


class BadDimension(Exception):
    """A --rows/--cols choice that cannot be tabulated; the message names the fix."""


@dataclass(frozen=True)
class Dimension:
    """A setting (`m`) or a group of settings (`defense`: every defense.* key)."""

    name: str

    def covers(self, key: str) -> bool:
        return key == self.name or key.startswith(f"{self.name}.")

    def identity(self, run: Run) -> dict:
        return {k: v for k, v in run.settings.items() if self.covers(k)}

    def label(self, run: Run, varying: list[str]) -> str:
        """What a value of the dimension is called: the defense or attack name, else key=value of the
        dimension's varying keys ('all' when none varies)."""
        if self.name == "defense":
            return run.text("defense", "?")
        if self.name == "attack":
            return attack_label(run)
        if self.name == "split":
            return split_label(run)
        parts = [f"{k}={fmt(run.settings.get(k))}" for k in varying if self.covers(k)]
        return ", ".join(parts) or "all"

    def value(self, run: Run, varying: list[str]) -> str:
        """The value for a CSV column: the bare value when the dimension is one varying key, else the
        label."""
        keys = [k for k in varying if self.covers(k)]
        if self.name in GROUPS or len(keys) != 1:
            return self.label(run, varying)
        return fmt(run.settings.get(keys[0]))

    def order(self, run: Run, varying: list[str]) -> tuple:
        """Sort key of a value: attacks by name ('none' first), defenses by their number of
        pre-aggregation steps (the rules alone, then behind NNM, then behind ARC and NNM), then by name,
        splits from iid to extreme, settings by value."""
        if self.name == "split":
            return (split_order(run),)
        if self.name in GROUPS:
            label = self.label(run, varying)
            first = label.count("+") if self.name == "defense" else label != "none"
            return ((first, label),)
        return tuple(sortable(run.settings.get(k)) for k in varying if self.covers(k))


@dataclass
class Entry:
    """One value of a dimension: its label (suffixed when shared), a sort key, whether it is attacked
    and its value for the CSV."""

    label: str
    order: tuple
    attacked: bool = True
    value: str = ""


@dataclass
class Cell:
    """The runs of one (section, row, column), one per seed, and their metric's stats (cell_stats)."""

    runs: list[Run]
    values: list[tuple[int | None, float, bool]]
    stats: dict


@dataclass
class SweepSection:
    """The runs of one combination of the section dimensions: its label per dimension, rows and columns
    (those with a run in the section), cells by (row label, column label), and its value per dimension
    (for the CSV)."""

    facets: dict[str, str]
    runs: list[Run]
    rows: list[str]
    cols: list[str]
    cells: dict[tuple[str, str], Cell] = field(default_factory=dict)
    values: dict[str, str] = field(default_factory=dict)

    @property
    def title(self) -> str:
        parts = [f"{name}={label}" if name in GROUPS else label for name, label in self.facets.items()]
        return ", ".join(parts) or "all runs"


@dataclass
class SweepTable:
    """A generic table: its row and column dimensions, the section dimensions, the metric, the settings
    that vary among the runs, and the sections in order."""

    rows: Dimension
    cols: Dimension
    facets: list[Dimension]
    metric: Metric
    varying: list[str]
    sections: list[SweepSection]
    row_entries: dict[str, Entry] = field(default_factory=dict)
    col_entries: dict[str, Entry] = field(default_factory=dict)


def varying_keys(runs: list[Run]) -> list[str]:
    """The settings with more than one value among the runs (a key absent from some runs varies)."""
    keys = sorted({k for r in runs for k in r.settings})
    return [k for k in keys if len({show(r.settings.get(k)) for r in runs}) > 1]


def check_dimensions(rows: Dimension, cols: Dimension, runs: list[Run]) -> None:
    """BadDimension when rows and columns overlap or one names no setting of the runs."""
    if rows.covers(cols.name) or cols.covers(rows.name):
        raise BadDimension(
            f"--rows {rows.name} and --cols {cols.name} overlap; choose two different settings"
        )
    keys = {k for r in runs for k in r.settings}
    varying = ", ".join(dimension_names(varying_keys(runs))) or "none"
    for flag, dim in (("--rows", rows), ("--cols", cols)):
        if not any(dim.covers(k) for k in keys):
            raise BadDimension(
                f"{flag} {dim.name}: no run has a setting {dim.name} or {dim.name}.*; settings that vary "
                f"among the runs: {varying}"
            )


def dimension_names(keys: Iterable[str]) -> list[str]:
    """The dimensions of some keys: defense.* and attack.* keys as `defense` and `attack`, others as
    themselves."""
    names = [next((g for g in GROUPS if Dimension(g).covers(k)), k) for k in keys]
    return list(dict.fromkeys(names))


def entries(dim: Dimension, runs: list[Run], varying: list[str], where: str) -> dict[str, Entry]:
    """Each run's entry (by run name) on a dimension: runs with equal settings of the dimension share
    one; a label that distinct settings share is suffixed."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(settings_hash(dim.identity(run)), []).append(run)
    firsts = [g[0] for g in groups.values()]
    labelled = [(dim.label(r, varying), dim.identity(r)) for r in firsts]
    found = {}
    for group, (label, _), suffix in zip(groups.values(), labelled, suffixes(labelled, where)):
        first = group[0]
        value = dim.value(first, varying) + suffix
        entry = Entry(label + suffix, dim.order(first, varying), first.text("attack") != "none", value)
        found.update({r.name: entry for r in group})
    return found


def build_table(runs: list[Run], rows: Dimension, cols: Dimension, metric: Metric) -> SweepTable:
    """The generic table of runs (all of them land in some cell)."""
    varying = varying_keys(runs)
    rest = [k for k in varying if not rows.covers(k) and not cols.covers(k)]
    facets = [Dimension(name) for name in dimension_names(rest)]
    row_of = entries(rows, runs, varying, f"rows ({rows.name})")
    col_of = entries(cols, runs, varying, f"columns ({cols.name})")
    facet_of = [entries(f, runs, varying, f"sections ({f.name})") for f in facets]
    by_section: dict[tuple, list[Run]] = {}
    for run in runs:
        by_section.setdefault(tuple(found[run.name].label for found in facet_of), []).append(run)
    order = {
        key: tuple(found[group[0].name].order for found in facet_of) for key, group in by_section.items()
    }
    sections = []
    for key in sorted(by_section, key=lambda k: (order[k], k)):
        members = by_section[key]
        section = SweepSection(dict(zip([f.name for f in facets], key)), members, [], [])
        section.values = {f.name: found[members[0].name].value for f, found in zip(facets, facet_of)}
        section.rows = ordered(members, row_of)
        section.cols = ordered(members, col_of)
        for row in section.rows:
            for col in section.cols:
                here = [r for r in members if row_of[r.name].label == row and col_of[r.name].label == col]
                if here:
                    section.cells[row, col] = make_cell(here, metric, f"{section.title}, {row}, {col}")
        sections.append(section)
    by_label = [{entry.label: entry for entry in found.values()} for found in (row_of, col_of)]
    return SweepTable(rows, cols, facets, metric, varying, sections, *by_label)


def ordered(runs: list[Run], found: dict[str, Entry]) -> list[str]:
    """The distinct labels of the runs' entries, in entry order."""
    distinct = {found[r.name].label: found[r.name] for r in runs}
    return sorted(distinct, key=lambda label: (distinct[label].order, label))


def make_cell(runs: list[Run], metric: Metric, where: str) -> Cell:
    kept = by_seed(runs, where)
    values = [(r.seed, metric.of(r), r.diverged) for r in kept]
    return Cell(kept, values, cell_stats(values))


def cell_stats(values: list[tuple[int | None, float, bool]]) -> dict:
    """mean, sample std, seeds (the runs counted) and diverged (how many of them diverged). A cell with a
    diverged run has no mean or std (NaN) and counts all its runs: the survivors alone would flatter a
    defense that broke."""
    found = stats(values)
    if found["diverged"]:
        return {**found, "mean": math.nan, "std": math.nan, "seeds": len(values)}
    return found
