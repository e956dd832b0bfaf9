"""`make tables`: the papers' tables from the runs' settings and summaries, beside the papers' numbers.

`main` (scripts/make_tables.py) reads every run under the results directory (a folder with summary.csv
and config.yaml, see byzrun.report.collect), splits the runs of each table into sections that never mix
settings (byzrun.report.tables) and writes next to the runs, for each section with stem <table>_<dataset>
(a second protocol of the same table and dataset: <table>_<dataset>-<6-character settings hash>):

- <stem>.md, <stem>.csv (tidy), <stem>.tex (a tabular);
- <stem>_curves.png for a paper table (ALIE Tables 1 and 2), <stem>_variance_norm.png for a momentum
  section whose runs logged the variance-norm ratio;
- tables.md: every section's markdown, tables in the order table1, table2, momentum.

When <results-dir>/alie_code_runs.csv exists (the ALIE authors' own code's runs, written by
scripts/alie_code_runs.py), a paper section shows the runs of its table, dataset, n, m, rounds (and z)
beside byzrun's rows (byzrun.report.code_runs); a section without such runs keeps its layout.

The same runs always give the same bytes. Exit status: 0 when tables were written or there was nothing
to tabulate; 1 when the results directory is missing or the paper numbers cannot be read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from byzrun.report.code_runs import CODE_RUNS, add_code_runs, read_code_runs
from byzrun.report.collect import MixedData, check_same_data
from byzrun.report.collect import collect as collect_runs
from byzrun.report.plots import plot_section, plot_variance_norm
from byzrun.report.render import csv, document, latex, markdown
from byzrun.report.specs import PAPER_NUMBERS, PAPER_TABLES, TABLE_ORDER, load_paper_numbers
from byzrun.report.tables import Section, build_sections
from byzrun.results import atomic_write_text

__all__ = ["main", "build_report", "write_section"]


def write_section(section: Section, results_dir: Path) -> list[Path]:
    """A section's .md, .csv and .tex and its plot, written atomically; returns the paths written."""
    texts = {"md": markdown(section), "csv": csv(section), "tex": latex(section)}
    written = []
    for ext, text in texts.items():
        path = results_dir / f"{section.stem}.{ext}"
        atomic_write_text(path, text)
        written.append(path)
    if section.spec is not None:
        path = results_dir / f"{section.stem}_curves.png"
        drawn = plot_section(section, path)
    else:
        path = results_dir / f"{section.stem}_variance_norm.png"
        drawn = plot_variance_norm(section, path)
    return written + ([path] if drawn else [])


def build_report(results_dir: Path, paper_path: Path) -> int:
    """Collect, tabulate, plot and write; prints the tables and one line per file written."""
    runs = collect_runs(results_dir)
    if not runs:
        print(
            f"byzrun tables: no runs found (no summary.csv under {results_dir}/runs/); produce some with "
            "e.g. `byzrun -m experiment=table1_mnist`, then run `make tables` again."
        )
        return 0
    known = [r for r in runs if r.settings.get("name") in TABLE_ORDER]
    try:
        check_same_data(known)
    except MixedData as err:
        print(f"byzrun tables: error: {err}", file=sys.stderr)
        return 1
    print(
        f"byzrun tables: {len(runs)} run(s) under {results_dir}; {len(runs) - len(known)} without a table "
        f"name ({'|'.join(TABLE_ORDER)}) ignored"
    )
    if not known:
        print(
            "byzrun tables: no run was launched for a table (name=table1|table2|momentum); use the presets, "
            "e.g. `byzrun -m experiment=table1_mnist`."
        )
        return 0
    try:
        paper = load_paper_numbers(paper_path)
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        print(f"byzrun tables: error: cannot read the paper numbers {paper_path}: {err}", file=sys.stderr)
        return 1
    sections = build_sections(known, paper, PAPER_TABLES)
    code = read_code_runs(results_dir / CODE_RUNS)
    if code is not None:
        add_code_runs(sections, code)
    written = []
    for section in sections:
        print(markdown(section))
        written += write_section(section, results_dir)
    summary = results_dir / "tables.md"
    atomic_write_text(summary, document(sections))
    for path in [*written, summary]:
        print(f"wrote {path}")
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="make_tables",
        description="Collect <results-dir>/runs/*/ (summary.csv, config.yaml) into the papers' tables "
        "and plots.",
        epilog="Exit status: 0 when tables were written or no runs were found; 1 when the results directory "
        "is missing or the paper numbers cannot be read.",
    )
    parser.add_argument(
        "--results-dir", type=Path, default=Path("results"), help="where runs are (default: results)"
    )
    parser.add_argument(
        "--paper-numbers",
        type=Path,
        default=None,
        help="the papers' numbers (default: <results-dir>/paper_numbers.csv if present, else the copy "
        "shipped with byzrun.report)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results_dir: Path = args.results_dir
    if not results_dir.is_dir():
        print(
            f"byzrun tables: error: results directory {results_dir} does not exist (pass --results-dir DIR)",
            file=sys.stderr,
        )
        return 1
    local = results_dir / "paper_numbers.csv"
    paper_path = args.paper_numbers or (local if local.is_file() else PAPER_NUMBERS)
    try:
        return build_report(results_dir, paper_path)
    except OSError as err:  # a table or plot that cannot be written
        print(f"byzrun tables: error: {err}", file=sys.stderr)
        return 1
