"""`make tables` / `python -m byzrun.report`: tables of the runs under a results directory.

`main` reads every run under <results-dir>/runs/ (a folder with summary.csv and config.yaml, see
byzrun.report.collect; nothing else under <results-dir>, so `results` never reaches into results/paper).
Runs launched for a paper table (name=table1|table2|momentum, the presets set it) go into the papers'
tables: their runs are split into sections that never mix settings (byzrun.report.tables), written for
each section with stem <table>_<dataset> (a second protocol of the same table and dataset:
<table>_<dataset>-<6-character settings hash>):

- <stem>.md, <stem>.csv (tidy), <stem>.tex (a tabular);
- <stem>_curves.png for a paper table (ALIE Tables 1 and 2), <stem>_variance_norm.png for a momentum
  section whose runs logged the variance-norm ratio;
- tables.md: every section's markdown, tables in the order table1, table2, momentum.

When <results-dir>/alie_code_runs.csv exists (the ALIE authors' own code's runs, written by
scripts/alie_code_runs.py), a paper section shows the runs of its table, dataset, n, m, rounds (and z)
beside byzrun's rows (byzrun.report.code_runs); a section without such runs keeps its layout.

Every other run goes into the generic table and the worst case over attacks (byzrun.report.sweep_report:
sweep.{md,csv,tex}, sweep_curves*.png, worst_case.{md,csv,tex,png}), rows and columns chosen by --rows
and --cols, each run's accuracy by --metric and --k. Files go to --out (default: the results directory).

The same runs always give the same bytes. Exit status: 0 when tables were written or there was nothing
to tabulate; 1 when the results directory is missing or the paper numbers cannot be read; 2 for a bad
--rows or --cols.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from byzrun.report.code_runs import CODE_RUNS, add_code_runs, read_code_runs
from byzrun.report.collect import MixedData, check_same_data, runs_folder
from byzrun.report.collect import collect as collect_runs
from byzrun.report.plots import plot_section, plot_variance_norm
from byzrun.report.render import csv, document, latex, markdown
from byzrun.report.scores import DEFAULT_K, DEFAULT_METRIC, METRICS, Metric
from byzrun.report.specs import PAPER_NUMBERS, PAPER_TABLES, TABLE_ORDER, load_paper_numbers
from byzrun.report.sweep import BadDimension, Dimension, check_dimensions
from byzrun.report.sweep_report import write_sweep
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


def build_report(results_dir: Path, paper_path: Path, args: argparse.Namespace) -> int:
    """Collect, tabulate, plot and write; prints the tables and one line per file written."""
    out: Path = args.out or results_dir
    runs = collect_runs(results_dir)
    if not runs:
        print(
            f"byzrun tables: no runs found (no summary.csv under {results_dir}/runs/); produce some with "
            "e.g. `byzrun -m experiment=table1_mnist`, then run `make tables` again."
        )
        return 0
    try:
        check_same_data(runs)
    except MixedData as err:
        print(f"byzrun tables: error: {err}", file=sys.stderr)
        return 1
    known = [r for r in runs if r.settings.get("name") in TABLE_ORDER]
    generic = [r for r in runs if r.settings.get("name") not in TABLE_ORDER]
    rows, cols = Dimension(args.rows), Dimension(args.cols)
    try:
        if generic:
            check_dimensions(rows, cols, generic)
    except BadDimension as err:
        print(f"byzrun tables: error: {err}", file=sys.stderr)
        return 2
    print(
        f"byzrun tables: {len(runs)} run(s) under {runs_folder(results_dir)}: {len(known)} for the paper "
        f"tables ({'|'.join(TABLE_ORDER)}), {len(generic)} for the generic table (sweep.md)"
    )
    written = []
    if known:
        try:
            paper = load_paper_numbers(paper_path)
        except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
            print(f"byzrun tables: error: cannot read the paper numbers {paper_path}: {err}", file=sys.stderr)
            return 1
        sections = build_sections(known, paper, PAPER_TABLES)
        code = read_code_runs(results_dir / CODE_RUNS)
        if code is not None:
            add_code_runs(sections, code)
        for section in sections:
            print(markdown(section))
            written += write_section(section, out)
        summary = out / "tables.md"
        atomic_write_text(summary, document(sections))
        written.append(summary)
    if generic:
        written += write_sweep(generic, out, rows, cols, Metric(args.metric, args.k))
    for path in written:
        print(f"wrote {path}")
    return 0


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m byzrun.report",
        description="Tabulate the runs under <results-dir>/runs/ (where `byzrun results_dir=<results-dir>` "
        "writes them; nothing else under <results-dir> is read): runs launched for a paper table (name="
        f"{'|'.join(TABLE_ORDER)}) into the papers' tables, every other run into the generic table "
        "sweep.{md,csv,tex} with its curves, and the worst case over attacks worst_case.{md,csv,tex,png}.",
        epilog="Exit status: 0 when tables were written or no runs were found; 1 when the results directory "
        "is missing or the paper numbers cannot be read; 2 for a bad option.",
    )
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=Path("results"),
        help="the results_dir the runs were started with: its runs/ folder is read, or the folder itself "
        "when it holds run folders (default: results, i.e. results/runs/ only)",
    )
    parser.add_argument("--out", type=Path, default=None, help="where to write (default: --results-dir)")
    parser.add_argument(
        "--paper-numbers",
        type=Path,
        default=None,
        help="the papers' numbers (default: <results-dir>/paper_numbers.csv if present, else the copy "
        "shipped with byzrun.report)",
    )
    parser.add_argument(
        "--rows",
        default="defense",
        help="generic table: the setting (or prefix) of its rows (default: defense)",
    )
    parser.add_argument(
        "--cols",
        default="attack",
        help="generic table: the setting (or prefix) of its columns (default: attack)",
    )
    parser.add_argument(
        "--metric",
        choices=METRICS,
        default=DEFAULT_METRIC,
        help=f"generic table and worst case: each run's accuracy, the mean of its last k evaluations, its "
        f"final or its highest one (default: {DEFAULT_METRIC})",
    )
    parser.add_argument(
        "--k",
        type=positive,
        default=DEFAULT_K,
        help=f"evaluations averaged by --metric last-k (default: {DEFAULT_K})",
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
        return build_report(results_dir, paper_path, args)
    except OSError as err:  # a table or plot that cannot be written
        print(f"byzrun tables: error: {err}", file=sys.stderr)
        return 1
