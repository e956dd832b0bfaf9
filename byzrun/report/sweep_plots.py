"""The generic table's pictures, PNG files written as the paper plots are (byzrun.report.plots):

- curves: per section, one panel per cell (rows x columns of the table), test accuracy over rounds, one
  line per seed (the same colour for a seed in every panel);
- heatmap: the worst case over attacks, defenses x settings, in viridis (its lightness rises steadily,
  so it reads in grey too), the value and the attack written in every cell, missing cells light grey; a
  cell whose worst case is a divergence is black, darker than the lowest accuracy, and reads
  "div. k/s" (k of its s runs diverged) above the attack.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from byzrun.report.collect import curve  # noqa: E402
from byzrun.report.plots import PNG_METADATA, save_png  # noqa: E402
from byzrun.report.sweep import SweepSection, SweepTable  # noqa: E402
from byzrun.report.worst import WorstTable, matrix  # noqa: E402
from byzrun.results import atomic_write_text  # noqa: E402

PANEL = (2.6, 1.9)  # inches per panel
MARGINS = {"left": 0.75, "right": 0.15, "top": 0.55, "bottom": 0.95}  # inches: labels, title, legend


def save(fig, path: Path) -> None:
    """save_png without matplotlib's tight bounding box: the margins are fixed, and measuring every
    panel's extent doubled the time of a large grid."""
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=100, metadata=PNG_METADATA)
    finally:
        plt.close(fig)
    atomic_write_text(path, buffer.getvalue())


def plot_curves(table: SweepTable, section: SweepSection, path: Path) -> bool:
    """One panel per cell of a section; False (nothing written) when no run logged test accuracy."""
    nrows, ncols = len(section.rows), len(section.cols)
    width = PANEL[0] * ncols + MARGINS["left"] + MARGINS["right"]
    height = PANEL[1] * nrows + MARGINS["top"] + MARGINS["bottom"]
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), sharex=True, sharey=True, squeeze=False)
    fig.subplots_adjust(
        left=MARGINS["left"] / width,
        right=1 - MARGINS["right"] / width,
        top=1 - MARGINS["top"] / height,
        bottom=MARGINS["bottom"] / height,
        wspace=0.08,
        hspace=0.35,
    )
    seeds = sorted(
        {r.seed for c in section.cells.values() for r in c.runs}, key=lambda s: (s is None, s or 0)
    )
    colours = {seed: f"C{i % 10}" for i, seed in enumerate(seeds)}
    drawn = False
    for i, row in enumerate(section.rows):
        for j, col in enumerate(section.cols):
            ax = axes[i, j]
            cell = section.cells.get((row, col))
            for run in cell.runs if cell else []:
                acc = curve(run, "test_acc")
                if not acc.empty:
                    label = f"seed {run.seed}"
                    ax.plot(
                        acc["round"], acc["test_acc"], color=colours[run.seed], linewidth=1.0, label=label
                    )
                    drawn = True
            if cell is None:
                ax.text(0.5, 0.5, "no run", ha="center", va="center", transform=ax.transAxes, color="grey")
            ax.set_title(f"{row} / {col}", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
        axes[i, 0].set_ylabel("test accuracy (%)", fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("round", fontsize=8)
    if not drawn:
        plt.close(fig)
        return False
    handles = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    fig.legend(
        list(handles.values()), list(handles), loc="lower center", ncol=min(len(handles), 6), fontsize=8
    )
    fig.suptitle(f"{section.title}: rows {table.rows.name}, columns {table.cols.name}", fontsize=9)
    save(fig, path)
    return True


def plot_heatmap(worst: WorstTable, path: Path) -> None:
    """The worst-case heatmap, a cell per (defense, settings) with its value (or divergence) and attack."""
    values, attacks, diverged = matrix(worst)
    nrows, ncols = values.shape
    fig, ax = plt.subplots(figsize=(1.6 * ncols + 3.0, 0.6 * nrows + 1.8))
    cmap = plt.get_cmap("viridis").with_extremes(bad="#dddddd", under="black")
    finite = values[np.isfinite(values)]
    low, high = (finite.min(), finite.max()) if finite.size else (0.0, 100.0)
    shown = np.where(diverged > 0, low - 1.0, values)  # below the colour scale: the `under` colour
    image = ax.imshow(
        np.ma.masked_invalid(shown), cmap=cmap, vmin=low, vmax=max(high, low + 1e-9), aspect="auto"
    )
    for i in range(nrows):
        for j in range(ncols):
            if diverged[i, j]:
                runs = worst.cells[worst.rows[i], worst.cols[j]].seeds
                text, colour = f"div. {diverged[i, j]}/{runs}\n{attacks[i][j]}", "white"
            elif np.isfinite(values[i, j]):
                shade = (values[i, j] - low) / max(high - low, 1e-9)
                text, colour = f"{values[i, j]:.1f}\n{attacks[i][j]}", "black" if shade > 0.55 else "white"
            else:
                text, colour = "–", "black"
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color=colour)
    ax.set_xticks(range(ncols), worst.cols, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(nrows), worst.rows, fontsize=8)
    facets = ", ".join(f.name for f in worst.table.facets) or "all runs"
    ax.set_xlabel(f"settings ({facets})")
    ax.set_ylabel("defense")
    label = f"worst-case {worst.table.metric.name} accuracy (%)"
    if diverged.any():
        label += "; black: diverged"
    fig.colorbar(image, ax=ax, label=label, extend="min" if diverged.any() else "neither")
    ax.set_title(f"Lowest {worst.table.metric.name} test accuracy over attacks (mean over seeds)", fontsize=9)
    fig.tight_layout()
    save_png(fig, path)
