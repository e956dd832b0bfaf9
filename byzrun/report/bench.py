"""The README's speed numbers: claims and summary tables from a committed `make bench` run (results/bench).

`make bench BENCH_OUT=results/bench` writes, besides machine.json (byzrun.bench.machine):

    rounds.csv          per model, byzrun's round against a plain loop, one vmap pass, one backward
    deterministic.csv   the cost of deterministic=true (rounds/s pinned over the default)
    aggregation.csv     every rule's time at n=51, f=12, against simple reference code for some
    before.csv          every rule against BENCH_BEFORE on all threads; before_1thread.csv on one
    byzfl.csv           every shared entry against ByzFL (ratio = ByzFL's time / byzrun's, per float order)
    bf16.csv            how far gpu.bf16=true moves the gradients and ALIE's statistics (not a time)

Every time is a ratio of two times measured in the same process (the machine's noise hits both), shown
with two decimals; claims name `bench.<file>.<row>...`, e.g. `bench.before.median.d79510.t2.speedup`.
A missing file gives no claims, and its table says which command writes it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

#: the folder, under the results root, of the committed bench run
BENCH = "bench"
#: how the README's model names read
MODEL_LABELS = {"mlp": "MLP", "cnn": "CIFAR-10 CNN", "wrn": "WRN"}
COMMAND = "make bench BENCH_OUT=results/bench"


def ratio(value: float) -> str:
    return f"{value:.2f}"


def one_decimal(value: float) -> str:
    return f"{value:.1f}"


def whole(value: float) -> str:
    return f"{value:.0f}"


def thousands(value: float) -> str:
    return f"{value:,.0f}"


def dimension(d: int) -> str:
    """How the README writes a dimension: 79,510; 1e6."""
    return "1e6" if d == 1_000_000 else f"{d:,}"


def read(bench: Path, name: str) -> pd.DataFrame | None:
    path = bench / name
    return pd.read_csv(path) if path.exists() else None


def model_key(model: str) -> str:
    """`wrn(depth=10,widen=1)` -> `wrn`."""
    return model.split("(")[0]


def model_label(model: str) -> str:
    """`wrn(depth=10,widen=1)` -> `WRN-10-1`, `cnn` -> `CIFAR-10 CNN`."""
    key, _, options = model.partition("(")
    values = [o.split("=")[1] for o in options.rstrip(")").split(",") if o]
    return "-".join([MODEL_LABELS.get(key, key), *values])


def rule_key(rule: str) -> str:
    """`centered_clipping(center=zero)` -> `centered_clipping.zero`."""
    name, _, options = rule.partition("(")
    return name + "".join("." + o.split("=")[1] for o in options.rstrip(")").split(",") if o)


# ---------------------------------------------------------------- claims


def add_machine(out, bench: Path) -> None:
    """The 1-minute load average at the start and at the end of the run (how busy the machine was)."""
    path = bench / "machine.json"
    if not path.exists():
        return
    info = json.loads(path.read_text())
    for phase in ("start", "end"):
        if phase in info:
            out.add(f"bench.load_{phase}", info[phase]["load"][0], one_decimal)
    out.count("bench.cores", info["cores"])


def add_rounds(out, frame: pd.DataFrame) -> None:
    """Per model: the three ratios of its round, d, the chunk; for the MLP, whose chosen and full paths
    are one path, how far they measured apart (%): the noise of identical code in this run."""
    for line in frame.to_dict("records"):
        key = f"bench.rounds.{model_key(line['model'])}"
        for column in ("chosen_over_loop", "chosen_over_full", "chosen_time_over_single"):
            out.add(f"{key}.{column}", line[column], ratio)
        out.add(f"{key}.d", line["d"], thousands)
        out.count(f"{key}.b", line["b"])
    mlp = frame[frame["model"].map(model_key) == "mlp"]
    if len(mlp):
        out.add("bench.rounds.mlp.same_path_gap_pct", 100 * abs(mlp["chosen_over_full"].iloc[0] - 1), whole)


def add_deterministic(out, frame: pd.DataFrame) -> None:
    """Per model: rounds/s pinned over the default (all threads, one thread) and its inverse, how many
    times as long a deterministic round takes; the default's time on all threads over one thread."""
    for line in frame.to_dict("records"):
        key = f"bench.deterministic.{line['model']}"
        for column, part in (("deterministic_speed", ""), ("deterministic_speed_1thread", "_1thread")):
            out.add(f"{key}.speed{part}", line[column], ratio)
            out.add(f"{key}.slowdown{part}", 1 / line[column], one_decimal)
        # above 1: the default round was slower on all threads than on one (a busy machine)
        out.add(f"{key}.threads_cost", line["default_ms"] / line["default_1thread_ms"], one_decimal)


def before_frame(bench: Path) -> pd.DataFrame | None:
    """before.csv and before_1thread.csv as one table (their `threads` column tells them apart)."""
    frames = [f for f in (read(bench, "before.csv"), read(bench, "before_1thread.csv")) if f is not None]
    return pd.concat(frames, ignore_index=True) if frames else None


def add_before(out, frame: pd.DataFrame) -> None:
    """Every rule's speed-up over BENCH_BEFORE per d and threads; whether every output is bit-identical
    (text `bit-identical`, else the largest difference); how many rows are faster or slower than the
    noise of identical code (byzrun.bench.before.NOISE)."""
    from byzrun.bench.before import NOISE

    for line in frame.to_dict("records"):
        key = f"bench.before.{rule_key(line['rule'])}.d{line['d']}.t{line['threads']}.speedup"
        out.add(key, line["speedup"], ratio)
    largest = float(frame["max_abs_diff"].max())
    out.add("bench.before.max_abs_diff", largest, "bit-identical" if largest == 0 else f"{largest:.1e}")
    out.count("bench.before.rows", len(frame))
    out.count("bench.before.faster", int((frame["speedup"] > 1 + NOISE).sum()))
    out.count("bench.before.slower", int((frame["speedup"] < 1 - NOISE).sum()))
    out.add("bench.before.noise_pct", 100 * NOISE, whole)


def add_aggregation(out, frame: pd.DataFrame) -> None:
    """Each rule with simple reference code: that code's time over byzrun's (a speed-up)."""
    for line in frame.dropna(subset=["speedup"]).to_dict("records"):
        out.add(f"bench.rules.{line['rule']}.d{line['d']}.naive_speedup", line["speedup"], ratio)


#: byzfl.csv: calls of byzrun up to this many milliseconds count as short (README, Speed)
SHORT_CALL_MS = 3.0


def add_byzfl(out, frame: pd.DataFrame) -> None:
    """Every timed entry's two ratios (ByzFL's time / byzrun's, in torch's and in numpy's float order),
    and how many entries are at least 1 in both."""
    timed = frame.dropna(subset=["ratio_torch", "ratio_numpy"])
    control = timed[timed["kind"] == "control"]
    for line in control.to_dict("records"):
        for order in ("torch", "numpy"):
            out.add(f"bench.byzfl.control.d{line['d']}.ratio_{order}", line[f"ratio_{order}"], ratio)
    timed = timed[timed["kind"] != "control"]
    for line in timed.to_dict("records"):
        for order in ("torch", "numpy"):
            key = f"bench.byzfl.{line['entry']}.d{line['d']}.ratio_{order}"
            out.add(key, line[f"ratio_{order}"], ratio)
    out.count("bench.byzfl.entries", len(timed))
    out.count("bench.byzfl.faster", int(((timed["ratio_torch"] >= 1) & (timed["ratio_numpy"] >= 1)).sum()))
    out.add("bench.byzfl.lowest_ratio", float(timed[["ratio_torch", "ratio_numpy"]].min().min()), ratio)
    for order in ("torch", "numpy"):
        out.count(f"bench.byzfl.faster_{order}", int((timed[f"ratio_{order}"] >= 1).sum()))
        # a call's fixed cost (the attack's context, torch's views) weighs only on the calls of a few
        # milliseconds: the lowest ratio of the longer ones
        longer = timed[timed[f"byzrun_{order}_ms"] > SHORT_CALL_MS]
        out.add(f"bench.byzfl.longer.lowest_ratio_{order}", float(longer[f"ratio_{order}"].min()), ratio)


def add_bf16(out, frame: pd.DataFrame) -> None:
    """Per model: the relative changes in percent (one decimal), the std ratio's percentiles (four
    decimals: they sit within a few thousandths of 1) and the shares with |mu| < sigma (%)."""
    for line in frame.to_dict("records"):
        key = f"bench.bf16.{line['model']}"
        out.add(f"{key}.grad_rel_pct", 100 * line["grad_rel_error"], one_decimal)
        out.add(f"{key}.mean_rel_pct", 100 * line["mean_rel_error"], one_decimal)
        for part in ("p10", "p50", "p90"):
            out.add(f"{key}.std_ratio_{part}", line[f"std_ratio_{part}"], lambda v: f"{v:.4f}")
        out.add(f"{key}.small_mu_pct", 100 * line["small_mu_share"], one_decimal)
        out.add(f"{key}.small_mu_pct_bf16", 100 * line["small_mu_share_bf16"], one_decimal)


def add_fresh_clone(out, bench: Path) -> None:
    """`make install` and `make test` in a fresh clone (byzrun.bench.fresh_clone): minutes of wall clock
    and of CPU, the tests passed, the load average before and after."""
    path = bench / "fresh_clone.json"
    if not path.exists():
        return
    info = json.loads(path.read_text())
    for step in ("install", "test"):
        out.add(f"bench.fresh_clone.{step}.wall_min", info[step]["wall_s"] / 60, one_decimal)
        out.add(f"bench.fresh_clone.{step}.cpu_min", info[step]["cpu_s"] / 60, one_decimal)
    out.add("bench.fresh_clone.test.passed", info["test"]["passed"], thousands)
    out.count("bench.fresh_clone.cores", info["cores"])
    for phase in ("start", "end"):
        out.add(f"bench.fresh_clone.load_{phase}", info[phase]["load"][0], one_decimal)


def add_bench(out, results: Path) -> None:
    """Every claim of the bench run under <results>/bench (none for a file that is not there)."""
    bench = results / BENCH
    add_machine(out, bench)
    add_fresh_clone(out, bench)
    for name, add in (
        ("rounds.csv", add_rounds),
        ("deterministic.csv", add_deterministic),
        ("aggregation.csv", add_aggregation),
        ("byzfl.csv", add_byzfl),
        ("bf16.csv", add_bf16),
    ):
        frame = read(bench, name)
        if frame is not None:
            add(out, frame)
    before = before_frame(bench)
    if before is not None:
        add_before(out, before)


# ---------------------------------------------------------------- summary tables


def missing_table(name: str) -> str:
    return f"(no results/{BENCH}/{name} yet: `{COMMAND}` writes it)\n"


def cell(value: float) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else ratio(value)


def rounds_table(results: Path) -> str:
    frame = read(results / BENCH, "rounds.csv")
    if frame is None:
        return missing_table("rounds.csv")
    lines = [
        "| model | d | batch | chosen over plain loop | chosen over one vmap pass "
        "| chosen time over one backward |",
        "|---|---|---|---|---|---|",
    ]
    for line in frame.to_dict("records"):
        lines.append(
            f"| {model_label(line['model'])} | {line['d']:,} | {line['b']} | "
            f"{cell(line['chosen_over_loop'])} | {cell(line['chosen_over_full'])} | "
            f"{cell(line['chosen_time_over_single'])} |"
        )
    return "\n".join(lines) + "\n"


def deterministic_table(results: Path) -> str:
    frame = read(results / BENCH, "deterministic.csv")
    if frame is None:
        return missing_table("deterministic.csv")
    threads = int(frame["threads"].iloc[0])
    lines = [
        f"| model | pinned over default, {threads} threads | pinned over default, 1 thread |",
        "|---|---|---|",
    ]
    for line in frame.to_dict("records"):
        label = MODEL_LABELS.get(line["model"], line["model"])
        lines.append(
            f"| {label} | {cell(line['deterministic_speed'])} | {cell(line['deterministic_speed_1thread'])} |"
        )
    return "\n".join(lines) + "\n"


def before_table(results: Path) -> str:
    frame = before_frame(results / BENCH)
    if frame is None:
        return missing_table("before.csv")
    columns = list(dict.fromkeys(zip(frame["d"], frame["threads"])))
    columns.sort(key=lambda c: (-c[1], c[0]))
    heads = [f"d={dimension(d)}, {t} thread{'s' if t > 1 else ''}" for d, t in columns]
    lines = ["| rule | " + " | ".join(heads) + " | max abs. difference |", "|---" * (len(heads) + 2) + "|"]
    by = frame.set_index(["rule", "d", "threads"])
    for rule in dict.fromkeys(frame["rule"]):
        cells = [
            cell(by.loc[(rule, d, t), "speedup"]) if (rule, d, t) in by.index else "–" for d, t in columns
        ]
        diff = float(frame[frame["rule"] == rule]["max_abs_diff"].max())
        lines.append(f"| {rule} | " + " | ".join(cells) + f" | {'0' if diff == 0 else f'{diff:.1e}'} |")
    return "\n".join(lines) + "\n"


def byzfl_table(results: Path) -> str:
    frame = read(results / BENCH, "byzfl.csv")
    if frame is None:
        return missing_table("byzfl.csv")
    dims = sorted(frame["d"].unique())
    orders = ("torch", "numpy")
    lines = [
        "| entry | kind | "
        + " | ".join(f"{order}'s order, d={dimension(d)}" for d in dims for order in orders)
        + " |"
    ]
    lines.append("|---" * (2 * len(dims) + 2) + "|")
    by = frame.set_index(["entry", "d"])
    for entry in dict.fromkeys(frame["entry"]):
        kind = frame[frame["entry"] == entry]["kind"].iloc[0]
        cells = []
        for d in dims:
            for order in orders:
                value = by.loc[(entry, d), f"ratio_{order}"] if (entry, d) in by.index else None
                cells.append("skipped" if value is None or math.isnan(value) else ratio(value))
        lines.append(f"| {entry} | {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


#: the README's `<!-- summary table: NAME -->` blocks this module writes
TABLES = {
    "bench_rounds": rounds_table,
    "bench_deterministic": deterministic_table,
    "bench_before": before_table,
    "bench_byzfl": byzfl_table,
}
