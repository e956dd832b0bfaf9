"""Sections as markdown, CSV and LaTeX text.

A statistic reads 'mean ± std (seeds)' (no ± for one seed) with † when a run of the cell diverged (its
maximum is the one before divergence); per-seed values read 's1 81.5 · s2 80.4'. Missing values are
'–' in markdown, empty in CSV and '--' in LaTeX. Numbers have fixed formats (one decimal in the tables,
four in the CSV) so that the same runs always give the same bytes. A paper section with runs of the
authors' code (byzrun.report.code_runs) has, for each metric the code reports, three more columns: its
max over runs as 'mean ± std (runs)', its per-run values 'out_krum_5 81.5 · out_krum_6 86.3' and
Δ vs code = byzrun's mean - the code's mean; the CSV has them as code_* columns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from byzrun.report.captions import fmt
from byzrun.report.specs import MOMENTUM_SOURCE, dataset_label
from byzrun.report.tables import Section

PAPER_SUBS = ("max", "max per seed", "final", "final per seed", "paper", "Δ")
CODE_SUBS = ("authors' code max", "authors' code per run", "Δ vs code")


@dataclass(frozen=True)
class Style:
    """How one output format writes a missing value, ±, a signed difference, a mark and plain text."""

    missing: str
    pm: str
    dagger: str
    signed: Callable[[str], str]
    text: Callable[[str], str]


LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "Δ": r"$\Delta$",
    "α": r"$\alpha$",
    "−": "$-$",
    "–": "--",
    "±": r"$\pm$",
    "†": r"$^\dagger$",
    "·": r"$\cdot$",
}


def latex_escape(text: str) -> str:
    """Plain text (labels, headers) for LaTeX: special characters escaped, Greek/minus in math mode."""
    return "".join(LATEX_SPECIAL.get(ch, ch) for ch in text)


MARKDOWN = Style(missing="–", pm=" ± ", dagger="†", signed=lambda s: s, text=lambda s: s)
LATEX = Style(missing="--", pm=r" $\pm$ ", dagger=r"$^\dagger$", signed=lambda s: f"${s}$", text=latex_escape)


def missing(value) -> bool:
    return value is None or value == "" or pd.isna(value)


def format_stat(mean, std, seeds: int, diverged: int, style: Style) -> str:
    """'mean ± std (seeds)', no ± for one seed, † when a run diverged; missing when there is no value."""
    if missing(mean):
        return style.missing
    spread = "" if missing(std) else f"{style.pm}{std:.1f}"
    return f"{mean:.1f}{spread} ({int(seeds)}){style.dagger if diverged else ''}"


def format_value(value, style: Style) -> str:
    return style.missing if missing(value) else f"{value:.1f}"


def format_diff(value, style: Style) -> str:
    """Signed, one decimal; a difference that rounds to zero is shown as +0.0, never -0.0."""
    return style.missing if missing(value) else style.signed(f"{round(value, 1) + 0.0:+.1f}")


def format_text(value, style: Style) -> str:
    return style.missing if missing(value) else style.text(str(value))


Grid = tuple[list[tuple[str, str]], list[list[str]]]


def paper_subs(section: Section, metric: str) -> tuple[str, ...]:
    """A metric's columns: PAPER_SUBS, and CODE_SUBS when the section shows the code's runs for it."""
    return PAPER_SUBS + (CODE_SUBS if metric in section.code_metrics else ())


def paper_cells(c: dict, code: bool, style: Style) -> list[str]:
    """One row's cells for one metric (c: its line of the tidy frame)."""
    cells = [
        format_stat(c["mean"], c["std"], c["seeds"], c["diverged"], style),
        format_text(c["per_seed"], style),
        format_stat(c["final_mean"], c["final_std"], c["final_seeds"], 0, style),
        format_text(c["final_per_seed"], style),
        format_value(c["paper"], style),
        format_diff(c["diff"], style),
    ]
    if code:
        cells += [
            format_stat(c["code_mean"], c["code_std"], c["code_runs"], 0, style),
            format_text(c["code_per_run"], style),
            format_diff(c["code_diff"], style),
        ]
    return cells


def paper_grid(section: Section, style: Style) -> Grid:
    """Columns as (group, sub) pairs and rows of cells: per metric max, per seed, final, per seed,
    paper and Δ (and the authors' code's max, per run and Δ vs code)."""
    metrics = section.spec.metrics
    columns = [("", "Row")] + [(m.label, sub) for m in metrics for sub in paper_subs(section, m.best)]
    cells = {(line["row"], line["metric"]): line for line in section.frame.to_dict("records")}
    rows = []
    for row in section.rows:
        line = [style.text(row.label)]
        for metric in metrics:
            c = cells.get((row.label, metric.best))
            if c is None:
                line += [style.missing] * len(paper_subs(section, metric.best))
            else:
                line += paper_cells(c, metric.best in section.code_metrics, style)
        rows.append(line)
    return columns, rows


def momentum_grid(section: Section, style: Style) -> Grid:
    """Columns and rows of a momentum section: keys, server, worker (with per-seed values), Δ."""
    labels = ["Dataset", "Attack", "Defense", "f", "lr", "server", "server per seed", "worker"]
    labels += ["worker per seed", "Δ (worker − server)"]
    rows = []
    for r in section.frame.to_dict("records"):
        defense = " ".join(filter(None, [str(r["defense"]), r["variant"]]))
        line = [dataset_label(r["dataset"]), str(r["attack"]), defense]
        line = [style.text(text) for text in line]
        line += [style.missing if missing(r[k]) else fmt(r[k]) for k in ("f", "lr")]
        for p in ("server", "worker"):
            stat = format_stat(r[f"{p}_mean"], r[f"{p}_std"], r[f"{p}_seeds"], r[f"{p}_diverged"], style)
            line += [stat, format_text(r[f"{p}_per_seed"], style)]
        rows.append([*line, format_diff(r["diff"], style)])
    return [("", c) for c in labels], rows


def legend(section: Section) -> list[str]:
    """The lines under a table: what the cells mean, and for a paper table its convention note."""
    stat = "mean ± sample std over seeds (number of seeds); per seed: s<seed> value; † a run diverged"
    if section.spec is None:
        return [
            f"server/worker: max test accuracy (%) with momentum at the server / at the workers, {stat}; "
            f"Δ = worker − server (means); – missing. Source: {MOMENTUM_SOURCE}."
        ]
    delta = "Δ = max − paper" + (", left out: the section is shortened" if section.shortened else "")
    return [
        f"max / final: maximal / final accuracy (%) over the evaluations, {stat}; paper: "
        f"{section.spec.source}; {delta}; – missing.",
        *([code_legend(section)] if section.code_metrics else []),
        section.spec.convention_note,
    ]


def code_legend(section: Section) -> str:
    """What the authors' code columns are."""
    own = (
        "; backdoor (attacker's images): on the code's attacker's own 2,000 triggered images"
        if "max_backdoor_acc_own" in section.code_metrics
        else ""
    )
    return (
        f"authors' code: the ALIE authors' public code, unmodified, on the same "
        f"{dataset_label(section.dataset)} files; max over its evaluations, mean ± sample std over its "
        f"runs (number of runs); per run: <run> value; only runs with this section's table, dataset, n, m "
        f"and rounds (attacked rows: and z){own}; Δ vs code = max − authors' code max (means)."
    )


def grid(section: Section, style: Style) -> Grid:
    return momentum_grid(section, style) if section.spec is None else paper_grid(section, style)


def markdown(section: Section) -> str:
    """A markdown section: heading, notes, pipe table (header 'group sub'), legend lines."""
    columns, rows = grid(section, MARKDOWN)
    header = [" ".join(filter(None, col)) for col in columns]
    lines = [f"## {section.title}", ""]
    lines += [*section.notes, ""] if section.notes else []
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join([*lines, "", *(f"{line}\n" for line in legend(section))])


def latex(section: Section) -> str:
    """A tabular (to \\input inside a table environment), the column groups as a \\multicolumn line;
    title, notes and legend as comments above it."""
    columns, rows = grid(section, LATEX)
    spans: list[list] = []
    for group, _ in columns:
        if spans and spans[-1][0] == group:
            spans[-1][1] += 1
        else:
            spans.append([group, 1])
    lines = [f"% {latex_escape(text)}" for text in [section.title, *section.notes, *legend(section)]]
    lines += [rf"\begin{{tabular}}{{l{'r' * (len(columns) - 1)}}}", r"\hline"]
    if any(group for group, _ in columns):
        heads = [
            rf"\multicolumn{{{n}}}{{c}}{{{latex_escape(g)}}}" if g else " & ".join([""] * n) for g, n in spans
        ]
        lines.append(" & ".join(heads) + r" \\")
    lines.append(" & ".join(latex_escape(sub) for _, sub in columns) + r" \\")
    lines.append(r"\hline")
    lines += [" & ".join(row) + r" \\" for row in rows]
    lines += [r"\hline", r"\end{tabular}", ""]
    return "\n".join(lines)


def csv(section: Section) -> str:
    """The tidy table: one line per row x metric (paper tables) or per row (momentum), numbers rounded
    to four decimals, missing values empty."""
    return section.frame.round(4).to_csv(index=False, lineterminator="\n")


def document(sections: list[Section]) -> str:
    """tables.md: every section's markdown, in the given order."""
    return "\n".join(["# byzrun tables", "", *(markdown(s) for s in sections)])
