"""The numbers results/benchmark/README.md quotes, computed from the runs at full precision: how many
runs, their summed wall time, which ones diverged, and every cell of the worst-case heatmap (the same
computation as `python -m byzrun.report`, byzrun.report.worst, printed unrounded).

Usage: python scripts/benchmark_numbers.py [--results-dir results/benchmark] [--metric last-k] [--k 5]
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import Counter
from pathlib import Path

from byzrun.report.collect import collect
from byzrun.report.presets import attack_label
from byzrun.report.scores import DEFAULT_K, DEFAULT_METRIC, METRICS, Metric
from byzrun.report.worst import worst_case


def numbers(results_dir: Path, metric: Metric) -> list[str]:
    """One line per quoted number: `key: value`."""
    runs = collect(results_dir)
    lines = [f"runs: {len(runs)}", f"seeds: {sorted({r.seed for r in runs})}"]
    seconds = sum(r.value("wall_seconds") for r in runs)
    lines.append(f"summed wall_seconds: {seconds!r} ({seconds / 60!r} min)")
    diverged = Counter((r.text("defense"), attack_label(r)) for r in runs if r.diverged)
    lines.append(f"diverged runs: {sum(diverged.values())}")
    lines += [
        f"  diverged: {defense} / {attack}: {count}" for (defense, attack), count in sorted(diverged.items())
    ]
    worst = worst_case(runs, metric)
    if worst is None:
        return lines
    lines.append(f"worst case ({metric.name}), per defense and section:")
    for (row, col), cell in sorted(worst.cells.items()):
        if cell.diverged:
            value = f"diverged in {cell.diverged} of {cell.seeds} seeds"
        else:
            std = "nan" if math.isnan(cell.std) else repr(float(cell.std))
            value = f"{float(cell.mean)!r} ± {std} ({cell.seeds} seeds)"
        lines.append(f"  {row} | {col}: {value}, by {cell.attack}, over {cell.attacks} attacks")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results-dir", type=Path, default=Path("results/benchmark"))
    parser.add_argument("--metric", choices=METRICS, default=DEFAULT_METRIC)
    parser.add_argument("--k", type=int, default=DEFAULT_K)
    args = parser.parse_args(argv)
    print("\n".join(numbers(args.results_dir, Metric(args.metric, args.k))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
