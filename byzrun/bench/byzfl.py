"""Every rule, pre-aggregation step and attack that byzrun and ByzFL (`byzfl==0.0.11`) both have, timed
against ByzFL's in one process (the third step of `make bench`).

    python -m byzrun.bench.byzfl [--dims 79510 1000000] [--repeats 15] [--out bench/out]

Like with like: byzrun's options are set to ByzFL's definition where they differ (the README's
"Differences from ByzFL"; tests/test_byzfl_*.py check the outputs agree), on the same float32 [n, d]
matrix as byzrun.bench.aggregation (n=51, f=12), and in the same float order. ByzFL accepts torch
tensors, where its means and deviations are torch's, or numpy arrays, where they are numpy's: byzrun in
its default `reductions=torch` is timed against ByzFL on torch tensors (ratio_torch), and with
`reductions=numpy` against ByzFL on numpy arrays (ratio_numpy); the entries without such reductions
run the same code in both. Each repeat times the four calls one after the other (interleaved, so
machine noise hits all alike), in an order drawn afresh for every repeat (seeded by the entry, so a
rerun draws the same orders: no call keeps the place right after another); the median of the repeats
counts.

An attack's time is that of writing the f Byzantine rows of the matrix, what a round needs:
byzrun's `replace_byzantine_rows` (the context, the call and the copy, as a round runs them), ByzFL's
`G[h:] = attack(G[:h])` (its attacks return one vector, which its ByzantineClient sends from all f
workers). ByzFL's
Gaussian draws one vector: it is compared with `gaussian shared=true`; its SignFlipping sends
-mean(honest), byzrun's `ipm factor=1`.

A last row, `control(byzfl_mean)`, times ByzFL's numpy mean in all four places: its ratios show the
noise floor of the run (an entry within it is a tie).

Line per entry: `byzfl=alie d=79510 ratio_torch=2.6 ratio_numpy=1.5 byzrun_ms=21 byzfl_ms=55`, with
ratio = ByzFL's time / byzrun's in that order (above 1: byzrun faster); the table goes to
`<out>/byzfl.csv`.
ByzFL is imported only here, inside the functions; without it the bench says so in one line.
"""

from __future__ import annotations

import argparse
import math
import random
import signal
import time
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from byzrun import attacks, cpu_reductions, defenses
from byzrun.attacks.base import replace_byzantine_rows
from byzrun.bench.aggregation import _matrix, _sync
from byzrun.errors import ConfigError
from byzrun.preaggregation.arc import AdaptiveRobustClipping
from byzrun.preaggregation.bucketing import Bucketing
from byzrun.preaggregation.clipping import Clipping
from byzrun.preaggregation.nnm import NearestNeighborMixing

#: the four timed calls per entry, and byzrun's reduction order in each (ByzFL's calls: torch's)
WAYS = {"byzrun_torch": "torch", "byzfl_torch": "torch", "byzrun_numpy": "numpy", "byzfl_numpy": "torch"}
#: the line search's aggregator, the same on both sides
OPTIMAL_AGGREGATORS = ("mean", "median")


def rule_pairs(byzfl, f: int) -> dict[str, tuple]:
    """(byzrun's rule or step, ByzFL's) per shared entry, byzrun's options set to ByzFL's definition."""
    return {
        "mean": (defenses.Mean(), byzfl.Average()),
        "median": (defenses.Median(), byzfl.Median()),
        "trimmed_mean": (defenses.TrimmedMean(variant="trim_extremes"), byzfl.TrMean(f)),
        "meamed": (defenses.MeaMed(), byzfl.Meamed(f)),
        "krum": (defenses.Krum(neighbours="dm_code"), byzfl.Krum(f)),
        "multi_krum": (defenses.MultiKrum(neighbours="dm_code"), byzfl.MultiKrum(f)),
        # ByzFL's defaults; both stateful (each call starts at the previous output)
        "centered_clipping": (
            defenses.CenteredClipping(tau=100.0, iterations=1, center="previous"),
            byzfl.CenteredClipping(L=1, tau=100.0),
        ),
        # ByzFL's 3 Weiszfeld steps, no early stop (its start is 0, byzrun's the mean)
        "geometric_median": (
            defenses.GeometricMedian(iterations=3, tol=0.0, nu=0.1),
            byzfl.GeometricMedian(nu=0.1, T=3),
        ),
        "monna": (defenses.NearestNeighbourAveraging(pivot=0), byzfl.MoNNA(f, idx=0)),
        # definitions differ (ByzFL: one power step from a random vector; README): the same work, roughly
        "caf": (defenses.CovarianceFilter(), byzfl.CAF(f)),
        "mda": (defenses.MinimumDiameterAveraging(), byzfl.MDA(f)),
        "smea": (defenses.SmallestMaxEigenvalueAveraging(), byzfl.SMEA(f)),
        "nnm": (NearestNeighborMixing(), byzfl.NNM(f)),
        "bucketing": (Bucketing(s=2), byzfl.Bucketing(s=2)),
        "clipping": (Clipping(c=2.0), byzfl.Clipping(c=2.0)),
        "arc": (AdaptiveRobustClipping(), byzfl.ARC(f)),
    }


def attack_pairs(byzfl, f: int) -> dict[str, tuple]:
    """(byzrun's attack, its AttackContext's defense, ByzFL's attack) per shared entry."""
    mean = defenses.Mean()
    pairs = {
        "alie": (
            attacks.ALIE(factor=1.5, knowledge="omniscient", std="unbiased", direction="plus"),
            mean,
            byzfl.ALittleIsEnough(tau=1.5),
        ),
        "ipm": (attacks.IPM(factor=2.0), mean, byzfl.InnerProductManipulation(tau=2.0)),
        "sign_flip(ipm_factor=1)": (attacks.IPM(factor=1.0), mean, byzfl.SignFlipping()),
        "mimic": (attacks.Mimic(target=0), mean, byzfl.Mimic(epsilon=0)),
        "gaussian(shared)": (  # ByzFL's mu=0 is byzrun's center=zero: N(0, sigma^2), no added +0.0
            attacks.Gaussian(sigma=1.0, center="zero", shared=True),
            mean,
            byzfl.Gaussian(mu=0.0, sigma=1.0),
        ),
        "inf": (attacks.NonFinite(value=float("inf")), mean, byzfl.Inf()),
    }
    ours = {"mean": (mean, byzfl.Average()), "median": (defenses.Median(), byzfl.Median())}
    for agg in OPTIMAL_AGGREGATORS:
        rule, theirs = ours[agg]
        common = {"agg": theirs, "pre_agg_list": [], "f": f}
        pairs[f"optimal_alie({agg})"] = (
            attacks.ALIE(factor="optimal", knowledge="omniscient", std="unbiased", direction="plus"),
            rule,
            byzfl.Optimal_ALittleIsEnough(**common),
        )
        pairs[f"optimal_ipm({agg})"] = (
            attacks.IPM(factor="optimal"),
            rule,
            byzfl.Optimal_InnerProductManipulation(**common),
        )
    return pairs


def _refused(rule, n: int, f: int) -> str | None:
    """Why byzrun refuses the rule at n, f before training (MDA's and SMEA's C(n, f) subsets), or None."""
    try:
        getattr(rule, "check", lambda n, f: None)(n, f)
    except ConfigError as exc:
        return str(exc)
    return None


@contextmanager
def _deadline(seconds: float):
    """TimeoutError when the block runs longer than `seconds` (a ByzFL loop that does not end)."""

    def stop(signum, frame):
        raise TimeoutError

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _calls(byzfl, G: torch.Tensor, f: int, device: str, only: list[str] | None = None):
    """(name, entry) per entry in `only` (default: all): 'kind' and the four timed calls (WAYS).

    All four work on one matrix, X: torch's calls on X, numpy's on X.numpy(), the same memory. Before
    every call X is copied afresh from G, untimed ('fresh'): ByzFL's clipping steps write into their
    input, byzrun's too where the caller gives it up (as training does in the rounds without
    statistics), and the attacks write X's last f rows. One matrix for all, because a memory-bound
    call's time depends on which buffer it reads (the pages a buffer got: up to 15% between two
    buffers of the same shape here), which would otherwise count for or against one side."""
    n = len(G)
    h = n - f
    X = G.clone()
    fresh = {"fresh": lambda: X.copy_(G), "matrix": X}
    on_numpy = X.numpy() if X.device.type == "cpu" else X.cpu().numpy()  # a copy off the CPU
    # one ByzFL object per input type: its centered clipping keeps the last output as the next start
    for_numpy = rule_pairs(byzfl, f)
    for name, (ours, theirs) in rule_pairs(byzfl, f).items():
        if only is not None and name not in only:
            continue
        in_place = getattr(ours, "can_overwrite", False)
        mine = (lambda ours=ours: ours(X, f, overwrite=True)) if in_place else (lambda ours=ours: ours(X, f))
        yield (
            name,
            {
                "kind": "rule" if isinstance(ours, defenses.Defense) else "pre-aggregation",
                "skipped": _refused(ours, n, f),
                "byzrun_torch": mine,
                "byzrun_numpy": mine,
                "byzfl_torch": lambda theirs=theirs: theirs(X),
                "byzfl_numpy": lambda theirs=for_numpy[name][1]: theirs(on_numpy),
                **fresh,
            },
        )
    for_numpy = attack_pairs(byzfl, f)
    for name, (attack, rule, theirs) in attack_pairs(byzfl, f).items():
        if only is not None and name not in only:
            continue
        attack.validate(n=n, m=f)

        def ours(attack=attack, rule=rule):
            replace_byzantine_rows(X, f, attack, round=0, defense=rule, model=None, lr=0.1)  # as a round

        def on(A, theirs):
            A[h:] = theirs(A[:h])

        yield (
            name,
            {
                "kind": "attack",
                "byzrun_torch": ours,
                "byzrun_numpy": ours,
                "byzfl_torch": lambda theirs=theirs: on(X, theirs),
                "byzfl_numpy": lambda theirs=for_numpy[name][2]: on(on_numpy, theirs),
                **fresh,
            },
        )


def _control(byzfl, G: torch.Tensor):
    """The noise floor: ByzFL's numpy mean in all four places, on the entries' shared matrix. Its two
    ratios differ from 1 only by the machine's noise and the place in the interleaving; an entry whose
    ratio is within that of the control is a tie."""
    X = G.clone()
    mean = byzfl.Average()
    return (
        "control(byzfl_mean)",
        {
            "kind": "control",
            "fresh": lambda: X.copy_(G),
            "matrix": X,
            **dict.fromkeys(WAYS, lambda: mean(X.numpy())),
        },
    )


def _call(entry: dict, way: str) -> None:
    """One of the entry's calls, byzrun's in its reduction order."""
    cpu_reductions.use(WAYS[way])
    try:
        entry[way]()
    finally:
        cpu_reductions.use("torch")


def compare(
    byzfl,
    dims=(79_510, 1_000_000),
    n: int = 51,
    f: int = 12,
    device: str = "cpu",
    repeats: int = 15,
    budget_s: float = 20.0,
    only: list[str] | None = None,
    timeout_s: float = 120.0,
):
    """One row per (entry, d): median times of the four calls (WAYS) and the two ratios (ByzFL's time over
    byzrun's in the same order).
    An entry stops after `budget_s` seconds of repeats, with at least 3 (the `repeats` column). A rule
    byzrun refuses at n, f is listed with the reason (`skipped`); a ByzFL call that gives no result
    within `timeout_s` is not timed (its time NaN, the reason in `skipped`)."""
    rows = []
    for d in dims:
        G = _matrix(n, f, d, device)
        control = [_control(byzfl, G)] if only is None else []
        for name, entry in [*_calls(byzfl, G, f, device, only), *control]:
            row = {"entry": name, "kind": entry["kind"], "d": d, "skipped": None}
            if entry.get("skipped"):
                rows.append(row | {"skipped": entry["skipped"]})
                continue
            ways, endless = [], []
            for way in WAYS:
                try:
                    with _deadline(timeout_s):
                        entry["fresh"]()
                        _call(entry, way)  # warm-up
                    ways.append(way)
                except TimeoutError:
                    endless.append(way)
            if endless:
                row["skipped"] = f"{', '.join(endless)}: no result in {timeout_s:g} s"
            times: dict[str, list[float]] = {way: [] for way in ways}
            began = time.perf_counter()
            order = random.Random(f"{name} {d}")  # each repeat its own order: no place favours a call
            for done in range(repeats):
                if done >= 3 and time.perf_counter() - began > budget_s:
                    break  # the slow entries (line searches at d=1e6): 3 repeats
                for way in order.sample(ways, len(ways)):
                    entry["fresh"]()
                    _sync(device)
                    cpu_reductions.use(WAYS[way])
                    start = time.perf_counter()
                    entry[way]()
                    _sync(device)
                    times[way].append(time.perf_counter() - start)
                    cpu_reductions.use("torch")
            ms = {
                f"{way}_ms": 1e3 * float(np.median(times[way])) if way in times else math.nan for way in WAYS
            }
            rows.append(
                row
                | ms
                | {
                    "ratio_torch": ms["byzfl_torch_ms"] / ms["byzrun_torch_ms"],
                    "ratio_numpy": ms["byzfl_numpy_ms"] / ms["byzrun_numpy_ms"],
                    "repeats": min(map(len, times.values()), default=0),
                }
            )
    table = pd.DataFrame(rows)
    return table[[c for c in table.columns if c != "skipped"] + ["skipped"]]  # the long reasons last


def load_byzfl():
    """ByzFL, or None when it is not installed (it is a test-only dependency: the [dev] extra)."""
    try:
        import byzfl
    except ImportError:
        return None
    return byzfl


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dims", type=int, nargs="+", default=[79_510, 1_000_000])
    parser.add_argument("--n", type=int, default=51)
    parser.add_argument("--f", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--budget", type=float, default=20.0, help="seconds of repeats per entry (>= 3)")
    parser.add_argument("--entries", nargs="+", default=None, help="only these entries (default: all)")
    parser.add_argument("--out", default="bench/out", help="folder of byzfl.csv")
    args = parser.parse_args(argv)
    byzfl = load_byzfl()
    if byzfl is None:
        print("bench.byzfl skipped: ByzFL is not installed (pip install -e '.[dev]')")
        return
    table = compare(byzfl, tuple(args.dims), args.n, args.f, "cpu", args.repeats, args.budget, args.entries)
    print(
        f"byzrun against ByzFL {version('byzfl')}, n={args.n}, "
        f"f={args.f}, float32, cpu, {torch.get_num_threads()} threads, median of up to {args.repeats} "
        "interleaved "
        "calls; ratio = ByzFL's time / byzrun's in the same float order (above 1: byzrun faster):"
    )
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    for row in table.to_dict("records"):
        if not isinstance(row.get("byzrun_torch_ms"), float) or math.isnan(row["byzrun_torch_ms"]):
            print(f"byzfl={row['entry']} d={row['d']} skipped: {row['skipped']}")  # refused at this n, f
            continue
        print(
            f"byzfl={row['entry']} d={row['d']} ratio_torch={row['ratio_torch']:.3g} "
            f"ratio_numpy={row['ratio_numpy']:.3g} byzrun_ms={row['byzrun_torch_ms']:.3g} "
            f"byzfl_ms={row['byzfl_torch_ms']:.3g}"
            + (f" ({row['skipped']})" if isinstance(row["skipped"], str) else "")
        )
    for order in ("torch", "numpy"):
        slower = table[(table[f"ratio_{order}"] < 1) & (table.kind != "control")]
        print(
            f"byzrun slower than ByzFL in {order}'s order: "
            + (", ".join(f"{e} (d={d})" for e, d in zip(slower.entry, slower.d)) or "none")
        )
    Path(args.out).mkdir(parents=True, exist_ok=True)
    table.to_csv(Path(args.out) / "byzfl.csv", index=False)
    print(f"written: {Path(args.out) / 'byzfl.csv'}")


if __name__ == "__main__":
    main()
