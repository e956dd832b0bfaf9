"""The machine a bench run measured: written beside its CSVs so that its numbers say where they come from.

    python -m byzrun.bench.machine --out results/bench start   before the first step
    python -m byzrun.bench.machine --out results/bench end     after the last one

`start` writes <out>/machine.json and machine.txt afresh: the CPU model (/proc/cpuinfo), whether it has
AVX2 and AVX-512 (torch picks its kernels by them: README, "Reproducibility across machines"), torch's
version, CPU capability and thread count, the cores, the git commit, the date and the load averages.
`end` adds the date and load averages at the end, and `--note`: how the run deviated from `make bench`.
The load tells how busy the machine was: on a shared machine the times are noisy, the ratios within one
run less so.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository: byzrun/bench/machine.py


def cpu_info(path: Path = Path("/proc/cpuinfo")) -> dict:
    """The first CPU's model name and flags (Linux); empty where there is no /proc/cpuinfo."""
    if not path.exists():
        return {"cpu": platform.processor() or platform.machine(), "avx2": None, "avx512": None}
    fields = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    flags = fields.get("flags", "").split()
    return {
        "cpu": fields.get("model name", platform.machine()),
        "avx2": "avx2" in flags,
        "avx512": any(flag.startswith("avx512") for flag in flags),
        "avx512_flags": sorted(flag for flag in flags if flag.startswith("avx512")),
    }


def git_commit() -> str | None:
    done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    if done.returncode != 0:
        return None
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--", "byzrun"], capture_output=True
    )
    return done.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def now() -> dict:
    """The date (UTC) and the 1, 5 and 15 minute load averages (`uptime`)."""
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return {"date": stamp, "load": list(os.getloadavg())}


def start() -> dict:
    import torch  # here: `end` does not need it

    return {
        **cpu_info(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "commit": git_commit(),
        "start": now(),
    }


def text(info: dict) -> str:
    lines = [f"{key}: {value}" for key, value in info.items() if key not in ("start", "end")]
    for phase in ("start", "end"):
        if phase in info:
            load = ", ".join(f"{v:.2f}" for v in info[phase]["load"])
            lines.append(f"{phase}: {info[phase]['date']}, load average {load}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("phase", choices=["start", "end"])
    parser.add_argument("--out", default="bench/out", help="folder of the bench's CSVs")
    parser.add_argument("--note", default=None, help="how the run deviated from `make bench`, if it did")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.phase == "start":
        info = start()
    else:
        info = json.loads((out / "machine.json").read_text())
        info["end"] = now()
    if args.note:
        info["note"] = args.note
    (out / "machine.json").write_text(json.dumps(info, indent=1) + "\n")
    (out / "machine.txt").write_text(text(info))
    print(text(info), end="")


if __name__ == "__main__":
    main()
