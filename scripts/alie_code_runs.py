"""The ALIE authors' own code's runs as a tidy CSV, for `make tables` to show beside byzrun's rows.

Reads the text logs the authors' code (github.com/moranant/attacking_distributed_learning, a separate
program: nothing of it is in this repository) writes with its -o option, one per run, e.g.
  python main.py -d Krum -s MNIST -o out_krum_1.txt
  python main.py -d NoDefense -s MNIST -b pattern -z 0.2 -o out_bd_nodef_1.txt
Every *.txt in --logs that starts with the run's settings becomes one CSV line per byzrun row it stands
for (table, dataset, row, run = the file's stem, n, m, z, rounds, batch_size, lr, max/final test
accuracy, max/final backdoor accuracy on the attacker's own images, evaluations; percentages as
printed); a log without the final 'Max accuracy' line (running or killed) is skipped, and said so.
See byzrun.report.code_runs.

Usage: python scripts/alie_code_runs.py --logs DIR [--out CSV]
(default CSV: results/paper/alie_code_runs.csv, where `make tables` on results/paper looks for it).
Exit status: 0 when the CSV was written, 1 when DIR is not a folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from byzrun.report.code_runs import read_logs, tidy
from byzrun.results import atomic_write_text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="alie_code_runs", description=__doc__.splitlines()[0])
    parser.add_argument("--logs", type=Path, required=True, help="folder of the code's -o logs (*.txt)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("results/paper/alie_code_runs.csv"),
        help="the CSV to write (default: results/paper/alie_code_runs.csv)",
    )
    args = parser.parse_args(argv)
    if not args.logs.is_dir():
        print(f"alie_code_runs: error: {args.logs} is not a folder", file=sys.stderr)
        return 1
    lines, skipped, ignored = read_logs(args.logs)
    if ignored:
        print(f"alie_code_runs: {len(ignored)} *.txt without a settings line ignored: {', '.join(ignored)}")
    for reason in skipped:
        print(f"alie_code_runs: skipped {reason}")
    atomic_write_text(args.out, tidy(lines))
    runs = len({line["run"] for line in lines})
    print(f"alie_code_runs: {runs} finished run(s), {len(lines)} line(s); wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
