"""Write the generic report of the runs not launched for a paper table, next to the paper tables:

- sweep.md, sweep.csv, sweep.tex: the generic table (byzrun.report.sweep), a section per combination
  of the settings that vary besides its rows and columns;
- sweep_curves.png (one section) or sweep_curves-<6-character hash of the section>.png: per section,
  test accuracy over rounds, a panel per cell, a line per seed (those of an earlier report that are no
  section now are removed, so that the folder shows this report only);
- worst_case.md, worst_case.csv, worst_case.tex, worst_case.png: the lowest accuracy over the attacks
  per defense and settings (byzrun.report.worst), when some run is attacked.
"""

from __future__ import annotations

from pathlib import Path

from byzrun.report.collect import Run, settings_hash
from byzrun.report.scores import Metric
from byzrun.report.sweep import Dimension, SweepTable, build_table
from byzrun.report.sweep_plots import plot_curves, plot_heatmap
from byzrun.report.sweep_render import csv, latex, markdown, worst_csv, worst_latex, worst_markdown
from byzrun.report.worst import worst_case
from byzrun.results import atomic_write_text


def curves_name(table: SweepTable, facets: dict) -> str:
    return "sweep_curves.png" if len(table.sections) == 1 else f"sweep_curves-{settings_hash(facets, 6)}.png"


def write_sweep(runs: list[Run], out: Path, rows: Dimension, cols: Dimension, metric: Metric) -> list[Path]:
    """Build, print and write the generic table and the worst case; returns the paths written."""
    table = build_table(runs, rows, cols, metric)
    curves, written = {}, []
    earlier = set(out.glob("sweep_curves*.png"))
    for section in table.sections:
        path = out / curves_name(table, section.facets)
        if plot_curves(table, section, path):
            curves[section.title] = path.name
            written.append(path)
    for stale in sorted(earlier - set(written)):  # sections of an earlier report: gone
        stale.unlink()
        print(f"removed {stale} (a section no longer in the table)")
    text = markdown(table, curves)
    print(text)
    for ext, content in (("md", text), ("csv", csv(table)), ("tex", latex(table))):
        atomic_write_text(out / f"sweep.{ext}", content)
        written.append(out / f"sweep.{ext}")
    worst = worst_case(runs, metric)
    if worst is None:
        print("byzrun tables: no attacked run (attack=none only): no worst case")
        return written
    heatmap = out / "worst_case.png"
    plot_heatmap(worst, heatmap)
    text = worst_markdown(worst, heatmap.name)
    print(text)
    for ext, content in (("md", text), ("csv", worst_csv(worst)), ("tex", worst_latex(worst))):
        atomic_write_text(out / f"worst_case.{ext}", content)
        written.append(out / f"worst_case.{ext}")
    return [*written, heatmap]
