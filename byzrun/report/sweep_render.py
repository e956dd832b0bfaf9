"""The generic table and the worst case as markdown, CSV and LaTeX text (the paper tables' formats:
'mean ± std (seeds)', '–' missing; byzrun.report.render), a cell with a diverged run as 'diverged k/s'
(k of its s runs diverged; no mean: byzrun.report.sweep).

The CSV files are tidy: the generic table one line per cell (its section's settings, row, column,
metric, mean, std, seeds, diverged runs, per-seed values, settings hash), the worst case one line per
(defense, settings) with the attack that gave it and how many of that cell's runs diverged (`diverged`;
0 when the worst is an accuracy, worst_mean empty when it is a divergence).
"""

from __future__ import annotations

import pandas as pd

from byzrun.report.captions import alternatives, protocol_parts, seeds_text
from byzrun.report.collect import settings_hash
from byzrun.report.render import LATEX, MARKDOWN, Style, format_stat, latex_escape
from byzrun.report.specs import dataset_label
from byzrun.report.sweep import SweepSection, SweepTable, dimension_names
from byzrun.report.tables import per_seed_text
from byzrun.report.worst import WorstTable

POOLING = (
    "mean ± sample std over seeds (number of seeds), seeds pooled only among runs whose settings are all "
    "equal; diverged k/s: k of the cell's s runs diverged (non-finite aggregate), a broken defense, so "
    "no mean of the others is shown (the CSV's per_seed has them) and the worst case ranks it below every "
    "accuracy; – no run"
)


def caption(section: SweepSection) -> str:
    """What a section's runs have in common, from their own settings."""
    runs = section.runs
    attacked = [r for r in runs if r.text("attack") != "none"]
    dataset = alternatives(dataset_label(r.dataset) for r in runs)
    model = alternatives(r.settings.get("model.name") for r in runs)
    seeds = seeds_text([{r.seed for r in cell.runs} for cell in section.cells.values()])
    return ", ".join([f"{dataset}, model {model}", *protocol_parts(runs, attacked), seeds])


def diverged_text(diverged: int, runs: int) -> str:
    return f"diverged {diverged}/{runs}"


def stat_text(cell, style: Style) -> str:
    if cell is None:
        return style.missing
    s = cell.stats
    if s["diverged"]:
        return diverged_text(s["diverged"], s["seeds"])
    return format_stat(s["mean"], s["std"], s["seeds"], 0, style)


def section_grid(table: SweepTable, section: SweepSection, style: Style) -> tuple[list[str], list[list[str]]]:
    """Header and rows of one section: row label, then one statistic per column."""
    header = [f"{table.rows.name} / {table.cols.name}", *section.cols]
    rows = [
        [row, *(stat_text(section.cells.get((row, col)), style) for col in section.cols)]
        for row in section.rows
    ]
    return [style.text(h) for h in header], [[style.text(r[0]), *r[1:]] for r in rows]


def pipe_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def heading(table: SweepTable) -> str:
    return (
        f"{table.metric.name} test accuracy (%), rows: {table.rows.name}, columns: {table.cols.name}, "
        f"a section per {', '.join(f.name for f in table.facets) or 'nothing (one section)'}"
    )


def markdown(table: SweepTable, curves: dict[str, str] | None = None) -> str:
    """sweep.md: a heading, then per section its title, caption, table and curves file."""
    runs = sum(len(s.runs) for s in table.sections)
    lines = [f"# byzrun sweep: {heading(table)}", ""]
    varying = ", ".join(dimension_names(table.varying)) or "none"
    lines += [f"{runs} run(s); settings that vary: {varying}.", ""]
    lines += [f"Cells: {table.metric.description}, {POOLING}.", ""]
    for section in table.sections:
        lines += [f"## {section.title}", "", caption(section), ""]
        lines += [*pipe_table(*section_grid(table, section, MARKDOWN)), ""]
        if curves and section.title in curves:
            lines += [f"Curves: {curves[section.title]}", ""]
    return "\n".join(lines)


def latex(table: SweepTable) -> str:
    """sweep.tex: a tabular per section (to \\input inside a table environment), title and caption as
    comments above it."""
    lines = [f"% {latex_escape(heading(table))}", f"% {latex_escape(f'Cells: {table.metric.description}')}"]
    for section in table.sections:
        header, rows = section_grid(table, section, LATEX)
        lines += ["", f"% {latex_escape(section.title)}", f"% {latex_escape(caption(section))}"]
        lines += [rf"\begin{{tabular}}{{l{'r' * (len(header) - 1)}}}", r"\hline", " & ".join(header) + r" \\"]
        lines += [r"\hline", *(" & ".join(row) + r" \\" for row in rows), r"\hline", r"\end{tabular}"]
    return "\n".join([*lines, ""])


def csv(table: SweepTable) -> str:
    """sweep.csv: one line per cell, numbers rounded to four decimals."""
    lines = []
    for section in table.sections:
        for (row, col), cell in section.cells.items():
            line = {"section": section.title, **section.values}
            line[table.rows.name], line[table.cols.name] = (
                table.row_entries[row].value,
                table.col_entries[col].value,
            )
            line.update(metric=table.metric.name, **cell.stats, per_seed=per_seed_text(cell.values))
            line["settings_hash"] = settings_hash(cell.runs[0].settings)
            lines.append(line)
    return pd.DataFrame(lines).round(4).to_csv(index=False, lineterminator="\n")


def worst_text(worst: WorstTable, row: str, col: str, style: Style) -> str:
    cell = worst.cells.get((row, col))
    if cell is None:
        return style.missing
    if cell.diverged:
        stat = diverged_text(cell.diverged, cell.seeds)
    else:
        stat = format_stat(cell.mean, cell.std, cell.seeds, 0, style)
    return f"{stat}, {style.text(cell.attack)}"


def worst_grid(worst: WorstTable, style: Style) -> tuple[list[str], list[list[str]]]:
    header = [style.text(h) for h in ["defense", *worst.cols]]
    rows = [
        [style.text(row), *(worst_text(worst, row, col, style) for col in worst.cols)] for row in worst.rows
    ]
    return header, rows


def worst_legend(worst: WorstTable) -> str:
    return (
        f"Worst case over attacks: per defense and settings, the lowest over the attacks of the "
        f"{worst.table.metric.description} (mean over seeds first, then the minimum over attacks; "
        f"attack=none left out; a diverged cell below every accuracy), with the attack that gave it; "
        f"{POOLING}."
    )


def worst_markdown(worst: WorstTable, heatmap: str | None = None) -> str:
    lines = [f"# byzrun worst case over attacks: {worst.table.metric.name} test accuracy (%)", ""]
    lines += [worst_legend(worst), "", *pipe_table(*worst_grid(worst, MARKDOWN)), ""]
    return "\n".join(lines + ([f"Heatmap: {heatmap}", ""] if heatmap else []))


def worst_latex(worst: WorstTable) -> str:
    header, rows = worst_grid(worst, LATEX)
    lines = [f"% {latex_escape(worst_legend(worst))}", rf"\begin{{tabular}}{{l{'r' * (len(header) - 1)}}}"]
    lines += [r"\hline", " & ".join(header) + r" \\", r"\hline", *(" & ".join(r) + r" \\" for r in rows)]
    return "\n".join([*lines, r"\hline", r"\end{tabular}", ""])


def worst_csv(worst: WorstTable) -> str:
    facets = {s.title: s.values for s in worst.table.sections}
    lines = []
    for row in worst.rows:
        for col in worst.cols:
            cell = worst.cells.get((row, col))
            if cell is None:
                continue
            line = {"defense": row, "section": col, **facets[col], "metric": worst.table.metric.name}
            line.update(worst_mean=cell.mean, worst_std=cell.std, worst_seeds=cell.seeds)
            line.update(worst_attack=cell.attack, attacks=cell.attacks, diverged=cell.diverged)
            lines.append(line)
    return pd.DataFrame(lines).round(4).to_csv(index=False, lineterminator="\n")
