"""The digits benchmark rerun end to end: how long the whole command took and whether every rerun run
gave the committed run's numbers. Writes results/benchmark/rerun.json, which the README quotes.

    OMP_NUM_THREADS=1 /usr/bin/time -v byzrun -m experiment=robustness_benchmark_digits \\
        results_dir=<fresh folder> hydra/launcher=local hydra.launcher.n_jobs=2 2> time.txt
    python scripts/benchmark_rerun.py <fresh folder> time.txt --start <UTC> --end <UTC> [--note ...]

A run matches when its folder name (config hash) is a committed one and its metrics.csv equals the
committed one in every column but wall_seconds (the time each evaluation was reached).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pandas as pd

COMMITTED = Path("results/benchmark/runs")


def time_v(path: Path) -> dict:
    """Wall clock and CPU seconds from `/usr/bin/time -v`'s report (children included)."""
    text = path.read_text()

    def field(name: str) -> str:
        return re.search(rf"{re.escape(name)}: (.+)", text).group(1).strip()

    parts = [float(p) for p in field("Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":")]
    wall = sum(p * 60**i for i, p in enumerate(reversed(parts)))
    return {
        "wall_s": wall,
        "user_s": float(field("User time (seconds)")),
        "system_s": float(field("System time (seconds)")),
        "exit_status": int(field("Exit status")),
    }


def same_metrics(ours: Path, committed: Path) -> bool:
    a = pd.read_csv(ours / "metrics.csv").drop(columns="wall_seconds")
    b = pd.read_csv(committed / "metrics.csv").drop(columns="wall_seconds")
    return a.equals(b)


def compare(rerun: Path) -> dict:
    folders = sorted(p for p in (rerun / "runs").iterdir() if (p / "summary.csv").exists())
    matched = [p.name for p in folders if (COMMITTED / p.name).is_dir()]
    same = [name for name in matched if same_metrics(rerun / "runs" / name, COMMITTED / name)]
    return {
        "runs": len(folders),
        "committed_runs": sum(1 for p in COMMITTED.iterdir() if p.is_dir()),
        "same_folder": len(matched),
        "same_metrics": len(same),
        "different_metrics": sorted(set(matched) - set(same)),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("rerun", type=Path, help="the results_dir of the rerun")
    parser.add_argument("time_report", type=Path, help="/usr/bin/time -v's report of the sweep")
    parser.add_argument("--start", required=True)
    parser.add_argument("--end", required=True)
    parser.add_argument("--note", default="")
    parser.add_argument("--out", type=Path, default=Path("results/benchmark/rerun.json"))
    args = parser.parse_args(argv)
    record = {"start": args.start, "end": args.end, **time_v(args.time_report), **compare(args.rerun)}
    record["note"] = args.note
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
