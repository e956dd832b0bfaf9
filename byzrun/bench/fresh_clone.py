"""How long a new user's first two commands take here: `make install && make test` in a fresh clone.

    python -m byzrun.bench.fresh_clone [--out results/bench/fresh_clone.json] [--keep]

Clones this checkout's HEAD into a temporary folder, runs `make install` and then `make test` there,
each timed (wall clock, and the CPU time of everything they started), and writes one JSON record with
the machine (byzrun.bench.machine: CPU, AVX-512, cores, load before and after) and the tests' count from
pytest's last line. The README's stated `make test` time is this record's (byzrun.report.bench checks
it). `make install` downloads what pip's cache does not hold, so its time depends on the network and
the cache: `pip_cache_dir` says which cache it used. A failing step stops the run with its log's tail;
nothing is written then.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from byzrun.bench.machine import cpu_info, git_commit, now
from byzrun.results import atomic_write_text

ROOT = Path(__file__).resolve().parents[2]
STEPS = ("install", "test")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(step: str, clone: Path, log: Path) -> dict:
    """`make <step>` in the clone: wall and CPU seconds; its output goes to `log`."""
    cpu, began = children_cpu(), time.perf_counter()
    with log.open("w") as out:
        done = subprocess.run(["make", step], cwd=clone, stdout=out, stderr=subprocess.STDOUT)
    record = {"wall_s": time.perf_counter() - began, "cpu_s": children_cpu() - cpu}
    if done.returncode != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-20:])
        sys.exit(f"fresh_clone: make {step} failed (exit {done.returncode}); the end of {log}:\n{tail}")
    return record


def passed(log: Path) -> int:
    """The count in pytest's summary line ('1,363 passed in ...' or '1363 passed, 2 warnings in ...')."""
    found = re.findall(r"(\d+) passed", log.read_text())
    if not found:
        sys.exit(f"fresh_clone: no 'N passed' line in {log}")
    return int(found[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="results/bench/fresh_clone.json", help="the JSON record")
    parser.add_argument("--keep", action="store_true", help="keep the clone and its logs (printed)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="byzrun-fresh-"))
    clone = work / "byzrun"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    info = {**cpu_info(), "cores": os.cpu_count(), "commit": git_commit(), "start": now()}
    info["pip_cache_dir"] = subprocess.run(
        [sys.executable, "-m", "pip", "cache", "dir"], capture_output=True, text=True
    ).stdout.strip()
    for step in STEPS:
        print(f"fresh_clone: make {step} in {clone} ...", flush=True)
        info[step] = timed(step, clone, work / f"{step}.log")
        print(f"fresh_clone: make {step}: {info[step]['wall_s']:.0f} s wall, {info[step]['cpu_s']:.0f} s CPU")
    info["test"]["passed"] = passed(work / "test.log")
    info["end"] = now()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(args.out), json.dumps(info, indent=1) + "\n")
    print(f"written: {args.out}" + (f"; clone and logs kept in {work}" if args.keep else ""))
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
