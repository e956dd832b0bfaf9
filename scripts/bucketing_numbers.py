"""The numbers results/bucketing/README.md quotes: the bucketing paper's MNIST cells (their code's
committed exp2 outputs, results/bucketing/their_numbers.csv) beside byzrun's runs of
`experiment=bucketing_mnist` under results/bucketing/runs/, both as their exp2.py computes a cell: the
mean of the last 5 evaluations per run, then mean ± sample std over the seeds (count).

Prints the README's table (two decimals, as their exp2.tex), then every cell at full precision.

Usage: python scripts/bucketing_numbers.py [--results-dir results/bucketing]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from pathlib import Path

from byzrun.report.collect import collect
from byzrun.report.scores import Metric

RULES = ("Avg", "Krum", "CM", "RFA", "CClip")
DATA = {"iid": "iid", "extreme": "noniid"}  # byzrun's split -> their name
LAST = Metric("last-k", 5)


def theirs(results_dir: Path) -> dict[tuple[str, int, str], list[float]]:
    cells: dict[tuple[str, int, str], list[float]] = {}
    with (results_dir / "their_numbers.csv").open() as f:
        for row in csv.DictReader(f):
            cells.setdefault((row["rule"], int(row["bucketing"]), row["data"]), []).append(
                float(row["last5"])
            )
    return cells


def cell_of(run) -> tuple[str, int, str]:
    """A byzrun run's cell in their terms: (rule, bucket size s or 0, iid or noniid)."""
    pre = run.settings.get("defense.pre") or []
    s = next((int(step.get("s", 2)) for step in pre if isinstance(step, dict)), 2 if pre else 0)
    return run.text("row"), s, DATA[str(run.settings.get("split.name", "iid"))]


def ours(results_dir: Path) -> dict[tuple[str, int, str], list[float]]:
    cells: dict[tuple[str, int, str], list[float]] = {}
    for run in collect(results_dir):
        cells.setdefault(cell_of(run), []).append(LAST.of(run))
    return cells


def cell(values: list[float] | None) -> str:
    if not values:
        return "–"
    if len(values) == 1:  # one seed: no spread to show
        return f"{values[0]:.2f} (1)"
    return f"{statistics.fmean(values):.2f} ± {statistics.stdev(values):.2f} ({len(values)})"


def table(results_dir: Path) -> list[str]:
    their, our = theirs(results_dir), ours(results_dir)
    lines = [
        "| rule | bucketing | iid, their code | iid, byzrun | non-iid, their code | non-iid, byzrun |",
        "|---|---|---|---|---|---|",
    ]
    for rule in RULES:
        for s in (0, 2):
            row = [rule, f"s={s}" if s else "no"]
            for data in ("iid", "noniid"):
                row += [cell(their.get((rule, s, data))), cell(our.get((rule, s, data)))]
            lines.append("| " + " | ".join(row) + " |")
    return lines


def runs_table(results_dir: Path) -> list[str]:
    """Each byzrun run beside their code's run of the same cell and seed: the last-5 mean, the honest
    worker the mimic attacker copied, and byzrun's wall time (summary.csv)."""
    with (results_dir / "their_numbers.csv").open() as f:
        their = {(r["rule"], int(r["bucketing"]), r["data"], int(r["seed"])): r for r in csv.DictReader(f)}
    lines = [
        "| rule | bucketing | data | seed | byzrun | their code | worker copied: byzrun | theirs "
        "| byzrun's wall time |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    rows = []
    for run in collect(results_dir):
        rule, s, data = cell_of(run)
        rows.append((RULES.index(rule), data, s, run.seed, run))
    for _, data, s, seed, run in sorted(rows, key=lambda r: r[:4]):
        rule = run.text("row")
        them = their[(rule, s, data, seed)]
        lines.append(
            f"| {rule} | {f's={s}' if s else 'no'} | {data} | {seed} | {LAST.of(run):.2f} "
            f"| {float(them['last5']):.2f} | {int(run.value('mimic_target'))} | {them['mimic_target']} "
            f"| {run.value('wall_seconds'):,.0f} s |"
        )
    return lines


def full_precision(results_dir: Path) -> list[str]:
    lines = []
    for source, cells in (("their code", theirs(results_dir)), ("byzrun", ours(results_dir))):
        for (rule, s, data), values in sorted(cells.items()):
            lines.append(f"{source} | {rule} | s={s} | {data}: {values!r}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results-dir", type=Path, default=Path("results/bucketing"))
    args = parser.parse_args(argv)
    print("\n".join(table(args.results_dir) + [""] + runs_table(args.results_dir)))
    print("\nfull precision (last-5 mean per run):")
    print("\n".join(full_precision(args.results_dir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
