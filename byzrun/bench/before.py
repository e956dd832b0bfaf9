"""Every aggregation rule now against the same rule at an earlier git revision, timed in one process.

    python -m byzrun.bench.before [--rev fe2263b] [--dims 79510 1000000] [--repeats 15]

A speed claim such as "every rule at least as fast as before" needs both versions timed in the same
run on the same machine: this one extracts the package at `--rev` (`git archive`) into a temporary
folder as the package `byzrun_before` (its own imports renamed), builds each rule from both, and times
them interleaved on the same [n, d] matrix (each repeat times before, then now; the median counts).
`max_abs_diff` is the largest difference between their outputs (0: bit-identical, so runs made
before reproduce exactly).
The default revision is where the issue "Fastest simulator for every model and device" started.

Besides every rule with its defaults, centered clipping is timed with center=zero and center=mean:
with the median as its centre, the median dominates its cost; ByzFL's implementation starts from zero.
Line per row: `rule=krum d=79510 before_ms=3.10 now_ms=3.05 speedup=1.02`.
"""

from __future__ import annotations

import argparse
import importlib
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

import pandas as pd
import torch

from byzrun.bench.aggregation import _matrix, _sync

#: the commit the speed issue was measured against ("today" in its targets)
DEFAULT_REV = "fe2263b"
ROOT = Path(__file__).resolve().parents[2]  # the repository: byzrun/bench/before.py
ALIAS = "byzrun_before"
#: how far apart identical code measures on a shared 2-core machine (Krum, unchanged: 0.97-1.01)
NOISE = 0.05
#: options that keep a rule's former default where the default has changed since (centered clipping
#: centres on the previous aggregate now: compare the median centre, the former default)
FORMER_DEFAULTS = {"centered_clipping": {"center": "median"}}
#: rule variants beyond the defaults: (label, registry name, options)
VARIANTS = [
    ("centered_clipping(center=zero)", "centered_clipping", {"center": "zero"}),
    ("centered_clipping(center=mean)", "centered_clipping", {"center": "mean"}),
]


class RevisionMissing(RuntimeError):
    """Not a git checkout, or one without the revision (a shallow clone)."""


def archive(rev: str) -> bytes:
    """The package folder at `rev` as a tar archive (`git archive`)."""
    try:
        done = subprocess.run(
            ["git", "-C", str(ROOT), "archive", "--format=tar", rev, "byzrun"],
            capture_output=True,
            check=False,
        )
    except FileNotFoundError as exc:
        raise RevisionMissing(f"cannot read revision {rev!r}: git is not installed") from exc
    if done.returncode != 0:
        raise RevisionMissing(f"cannot read revision {rev!r} here: {done.stderr.decode().strip()}")
    return done.stdout


def import_package(tar: bytes, into: Path):
    """Unpack a tar holding `byzrun/` into `into` as `byzrun_before` (its imports renamed) and import
    its defenses."""
    with tarfile.open(fileobj=BytesIO(tar)) as archive_file:
        archive_file.extractall(into, filter="data")
    package = into / ALIAS
    (into / "byzrun").rename(package)
    pattern = re.compile(r"\bbyzrun(?=[.\s])")
    for path in package.rglob("*.py"):
        path.write_text(pattern.sub(ALIAS, path.read_text()))
    for name in [m for m in sys.modules if m == ALIAS or m.startswith(ALIAS + ".")]:
        del sys.modules[name]  # an earlier call's revision
    sys.path.insert(0, str(into))
    try:
        return importlib.import_module(f"{ALIAS}.defenses")
    finally:
        sys.path.remove(str(into))


def load_revision(rev: str, into: Path):
    """byzrun as it was at `rev`, importable as `byzrun_before`."""
    return import_package(archive(rev), into)


def rule_pairs(before_defenses) -> list[tuple[str, object, object]]:
    """(label, rule before, rule now) for every rule present in both, then the VARIANTS."""
    from byzrun import defenses

    now, before = defenses.RULES.classes(), before_defenses.RULES.classes()
    defaults = {name: FORMER_DEFAULTS.get(name, {}) for name in now}
    pairs = [
        (name, before[name](**defaults[name]), now[name](**defaults[name]))
        for name in sorted(now)
        if name in before
    ]
    pairs += [(label, before[name](**opts), now[name](**opts)) for label, name, opts in VARIANTS]
    return pairs


def compare(before_defenses, dims, n: int, f: int, device: str, repeats: int) -> pd.DataFrame:
    rows = []
    for d in dims:
        G = _matrix(n, f, d, device)
        for label, old, new in rule_pairs(before_defenses):
            for rule in (old, new):  # FLTrust's server gradient (older revisions have no such hook)
                getattr(rule, "begin_round", lambda g: None)(G[: n - f].mean(0))
            times: dict[str, list[float]] = {"before": [], "now": []}
            diff = float((old(G, f) - new(G, f)).abs().max())  # also the warm-up
            for _ in range(repeats):
                for key, rule in (("before", old), ("now", new)):
                    _sync(device)
                    start = time.perf_counter()
                    rule(G, f)
                    _sync(device)
                    times[key].append(time.perf_counter() - start)
            before_ms, now_ms = (1e3 * sorted(t)[len(t) // 2] for t in (times["before"], times["now"]))
            rows.append(
                {
                    "rule": label,
                    "d": d,
                    "threads": torch.get_num_threads(),
                    "before_ms": before_ms,
                    "now_ms": now_ms,
                    "speedup": before_ms / now_ms,
                    "max_abs_diff": diff,
                }
            )
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rev", default=DEFAULT_REV, help="the earlier git revision (default: %(default)s)")
    parser.add_argument("--dims", type=int, nargs="+", default=[79_510, 1_000_000])
    parser.add_argument("--n", type=int, default=51)
    parser.add_argument("--f", type=int, default=12)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--out", default=None, help="write the table as CSV into this folder (see --name)")
    parser.add_argument("--name", default="before.csv", help="the CSV's file name (default: %(default)s)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            before = load_revision(args.rev, Path(tmp))
        except RevisionMissing as exc:
            print(f"bench.before skipped: {exc} (run it in a full git clone, or pass --rev)")
            return
        table = compare(before, tuple(args.dims), args.n, args.f, args.device, args.repeats)
    print(
        f"Every rule at {args.rev} (before) and now, n={args.n}, f={args.f}, {args.device}, "
        f"{torch.get_num_threads()} threads, median of {args.repeats} interleaved calls:"
    )
    print(
        table.to_string(
            index=False, float_format=lambda v: f"{v:.2f}", formatters={"max_abs_diff": lambda v: f"{v:.1e}"}
        )
    )
    for row in table.to_dict("records"):
        print(
            f"rule={row['rule']} d={row['d']} before_ms={row['before_ms']:.3g} "
            f"now_ms={row['now_ms']:.3g} speedup={row['speedup']:.3g} max_abs_diff={row['max_abs_diff']:.2g}"
        )
    slower = table[table.speedup < 1 - NOISE]
    listed = ", ".join(f"{r} (d={d})" for r, d in zip(slower.rule, slower.d)) or "none"
    print(f"slower than before by more than {NOISE:.0%} (what identical code measures apart): {listed}")
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        table.to_csv(Path(args.out) / args.name, index=False)


if __name__ == "__main__":
    main()
