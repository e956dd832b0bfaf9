"""The curves behind the tables, as PNG files written atomically and without dates or versions.

- a paper-table section: one small panel per row, test accuracy over rounds, a thin line per seed and a
  thick mean line (Table 2: also the backdoor accuracy on triggered test images, dashed);
- a momentum section: the variance-norm ratio over rounds (log scale), one panel per attack, a colour per
  row, server momentum solid and worker momentum dashed.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from byzrun.report.collect import Run, curve  # noqa: E402
from byzrun.report.tables import Row, Section  # noqa: E402
from byzrun.results import atomic_write_text  # noqa: E402

PNG_METADATA = {"Software": None}  # no matplotlib version in the file: same runs, same bytes


def save_png(fig, path: Path) -> None:
    """Render a figure as PNG and write it atomically (see byzrun.results)."""
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight", metadata=PNG_METADATA)
    finally:
        plt.close(fig)
    atomic_write_text(path, buffer.getvalue())


def draw_seeds(ax, runs: list[Run], column: str, color: str, style: str, label: str) -> bool:
    """A thin line per seed and a thick line for the mean over seeds per round; False when no data."""
    curves = [c for c in (curve(r, column) for r in runs) if not c.empty]
    if not curves:
        return False
    for c in curves:
        ax.plot(c["round"], c[column], style, color=color, linewidth=0.6, alpha=0.45)
    mean = pd.concat(curves).groupby("round")[column].mean()
    ax.plot(mean.index, mean.values, style, color=color, linewidth=2.0, label=label)
    return True


def plot_section(section: Section, path: Path) -> bool:
    """Panels of a paper-table section (rows with runs only); False when no run logged test accuracy."""
    rows: list[Row] = [row for row in section.rows if row.runs]
    backdoor = any(m.best == "max_backdoor_acc" for m in section.spec.metrics)
    if not rows:
        return False
    cols = min(3, len(rows))
    lines = math.ceil(len(rows) / cols)
    fig, axes = plt.subplots(
        lines, cols, figsize=(3.6 * cols, 2.6 * lines), sharex=True, sharey=True, squeeze=False
    )
    drawn = False
    for ax, row in zip(axes.flat, rows):
        drawn |= draw_seeds(ax, row.runs, "test_acc", "C0", "-", "test accuracy (thick: mean, thin: seeds)")
        if backdoor and row.attacked:
            draw_seeds(ax, row.runs, "backdoor_acc", "C3", "--", "backdoor accuracy, triggered test images")
        ax.set_title(row.label, fontsize=8)
        ax.grid(alpha=0.3)
    for i, ax in enumerate(axes.flat):
        if i >= len(rows):
            ax.set_visible(False)
        elif i + cols >= len(rows):  # the lowest panel of its column: round axis shown
            ax.xaxis.set_tick_params(labelbottom=True)
            ax.set_xlabel("round")
    for ax in axes[:, 0]:
        ax.set_ylabel("accuracy (%)")
    handles = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=2, fontsize=8)
    fig.suptitle(section.stem, fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    if not drawn:
        plt.close(fig)
        return False
    save_png(fig, path)
    return True


def plot_variance_norm(section: Section, path: Path) -> bool:
    """Variance-norm ratio over rounds of a momentum section (mean over seeds, log scale): one small panel
    per row (attack, defense, f, lr), server momentum solid and worker momentum dashed, a row of panels
    per (attack, lr); False when no run logged the ratio."""
    keys = sorted({(row.fields["attack"], str(row.fields["lr"])) for row in section.rows})
    by_attack = [
        [row for row in section.rows if (row.fields["attack"], str(row.fields["lr"])) == k] for k in keys
    ]
    attacks = [attack for attack, _ in keys]
    ncols = max(len(rows) for rows in by_attack)
    fig, axes = plt.subplots(
        len(attacks),
        ncols,
        figsize=(2.6 * ncols, 2.4 * len(attacks)),
        sharex=True,
        sharey=True,
        squeeze=False,
    )
    drawn = False
    for line, (attack, rows) in enumerate(zip(attacks, by_attack)):
        for ax, row in zip(axes[line], rows):
            for placement, style in (("server", "-"), ("worker", "--")):
                members = [r for r in row.runs if r.settings.get("momentum.placement") == placement]
                curves = [c for c in (curve(r, "variance_norm_ratio") for r in members) if not c.empty]
                values = pd.concat(curves) if curves else pd.DataFrame()
                values = values[values["variance_norm_ratio"] > 0] if curves else values
                if values.empty:
                    continue
                mean = values.groupby("round")["variance_norm_ratio"].mean()
                ax.plot(mean.index, mean.values, style, color="C0" if placement == "server" else "C1")
                drawn = True
            ax.set_yscale("log")
            ax.set_title(f"{attack}: {row.label}", fontsize="small")
            ax.grid(alpha=0.3, which="both")
        for ax in axes[line][len(rows) :]:
            ax.set_visible(False)
        axes[line][0].set_ylabel("variance-norm ratio")
    for ax in axes[-1]:
        ax.set_xlabel("round")
    if not drawn:
        plt.close(fig)
        return False
    handles = [plt.Line2D([], [], color="C0"), plt.Line2D([], [], color="C1", linestyle="--")]
    fig.legend(handles, ["server momentum", "worker momentum"], loc="lower center", ncol=2)
    fig.suptitle(f"{section.stem}: variance-norm ratio (mean over seeds)")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    save_png(fig, path)
    return True
