"""The bucketing paper's MNIST numbers (exp2 of Karimireddy, He, Jaggi's code,
github.com/epfml/byzantine-robust-noniid-optimizer), read from the outputs that repository commits:
one CSV row per rule x bucketing x data x seed, with the metric their exp2.py reports (the mean of the
last 5 test accuracies, one per 30 rounds) and the honest worker their mimic attacker copied.

Usage: python scripts/bucketing_their_numbers.py REPO [--out results/bucketing/their_numbers.csv]
REPO is a clone of that repository (a work tree, or a bare git directory: read at HEAD).
"""

from __future__ import annotations

import argparse
import ast
import csv
import subprocess
import sys
from pathlib import Path

#: their --agg names and the rows of byzrun's preset (conf/cell/bucketing/)
RULES = {"avg": "Avg", "krum": "Krum", "cm": "CM", "rfa": "RFA", "cp": "CClip"}
RUNS_DIR = "outputs/exp2/all"  # run_exp2 in their run.sh: --identifier all -n 25 -f 5 --attack mimic
LAST = 5  # their exp2.py averages the last 5 evaluations


def read(repo: Path, path: str) -> str:
    """A file of the repository: from the work tree, else `git show HEAD:path` (a bare clone)."""
    if (repo / path).is_file():
        return (repo / path).read_text()
    return subprocess.run(
        ["git", "--git-dir", str(repo), "show", f"HEAD:{path}"], check=True, capture_output=True, text=True
    ).stdout


def commit(repo: Path) -> str:
    git = ["git", "-C", str(repo)] if (repo / ".git").exists() else ["git", "--git-dir", str(repo)]
    return subprocess.run(
        [*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()


def records(text: str) -> list[dict]:
    """Their `stats` log: one Python dict repr per line (nan written bare)."""
    return [ast.literal_eval(line.replace("nan", "None")) for line in text.splitlines() if line.strip()]


def rows(repo: Path) -> list[dict]:
    out = []
    source = commit(repo)
    for agg, rule in RULES.items():
        for noniid in (False, True):
            for s in (0, 2):
                for seed in (0, 1, 2):
                    path = f"{RUNS_DIR}/{agg}_{noniid}_s{s}_seed{seed}/stats"
                    log = records(read(repo, path))
                    accs = [r["top1"] for r in log if r["_meta"]["type"] == "validation"]
                    targets = {r["select"] for r in log if r["_meta"]["type"] == "mmc_count"}
                    out.append(
                        {
                            "rule": rule,
                            "bucketing": s,
                            "data": "noniid" if noniid else "iid",
                            "seed": seed,
                            "evaluations": len(accs),
                            "last5": sum(accs[-LAST:]) / len(accs[-LAST:]),
                            "final": accs[-1],
                            "max": max(accs),
                            "mimic_target": ";".join(map(str, sorted(targets))),
                            "test_samples": log[-1]["Length"],
                            "source": f"{path}@{source}",
                        }
                    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repo", type=Path)
    parser.add_argument("--out", type=Path, default=Path("results/bucketing/their_numbers.csv"))
    args = parser.parse_args(argv)
    table = rows(args.repo)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    print(f"{len(table)} runs -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
