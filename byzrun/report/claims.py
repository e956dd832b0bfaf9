"""The numbers the READMEs' sentences about results quote, computed from the committed runs.

Every count, mean, spread, per-seed value and share that results/paper/README.md, results/evidence/
README.md and README.md quote is a *claim*: a key (`t1.krum_code.s2.final`), its value at full precision
and the text a README shows. The text follows the tables' rounding (byzrun.report.render): Python's
correctly rounded fixed-point format of the float64 value, one decimal for accuracies and differences
(a difference signed, +0.0 never -0.0), two for variance-norm ratios, none for counts and percentages.
So 97.25 reads 97.2 in a table and in a sentence alike. byzrun.report.quotes checks the READMEs.

    python -m byzrun.report.claims [RESULTS]      print every claim: key, value, text (RESULTS: results)

Definitions the sentences rely on:

- a momentum cell (attack, rule, f, lr) is *broken* when both placements' mean maximal accuracy is at
  most BROKEN (twice chance on ten classes): neither trains, so its difference is no gain; the gains
  summary counts the other cells;
- a (cell, seed) pair is *won* by worker momentum when its maximal accuracy is strictly higher;
- the variance-norm ratio of a run is the median over its evaluations of `variance_norm_ratio`
  (metrics.csv, measured on the honest submissions); a cell's ratio is the mean of that over seeds;
- a run has *collapsed* when its final accuracy is more than COLLAPSE points below its maximum;
- a Krum run's *capture rate* is the share of its evaluations at which Krum selected a Byzantine row
  (`byz_selected` > 0; metrics.csv logs it at evaluations only, not at every round).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pandas as pd

from byzrun.report.bench import BENCH, add_bench
from byzrun.report.code_runs import CODE_RUNS, add_code_runs, read_code_runs
from byzrun.report.collect import Run, collect
from byzrun.report.render import MARKDOWN as STYLE
from byzrun.report.render import format_diff
from byzrun.report.specs import PAPER_NUMBERS, PAPER_TABLES, TABLE_ORDER, load_paper_numbers
from byzrun.report.tables import Row, Section, build_sections

__all__ = ["Claim", "claims", "sections", "BROKEN"]

#: a momentum cell whose placements both reach at most this mean max accuracy (%) does not train
BROKEN = 20.0
#: the folder (under the results root) of runs repeated on a CPU without AVX-512
MACHINE = "no_avx512"
#: the folder (under the results root) of the README's first run, `byzrun dataset=digits` as committed
FIRST_RUN = "first_run"
#: a run whose final accuracy is more than this many points below its maximum has collapsed
COLLAPSE = 10.0
ROW_KEYS = {
    "No Attack": "no_attack",
    "No Defense": "no_defense",
    "No Defense (paper)": "no_defense_paper",
    "No Defense (ALIE code)": "no_defense_code",
    "Trimmed Mean (paper)": "tm_paper",
    "Trimmed Mean (ALIE code)": "tm_code",
    "Krum (paper)": "krum_paper",
    "Krum (ALIE code)": "krum_code",
    "Bulyan (paper)": "bulyan_paper",
    "Bulyan (ALIE code)": "bulyan_code",
}
#: Table 2's metrics: key part, max column, final column
TABLE2_METRICS = (
    ("benign", "max_test_acc", "final_test_acc"),
    ("backdoor", "max_backdoor_acc", "final_backdoor_acc"),
    ("own", "max_backdoor_acc_own", "final_backdoor_acc_own"),
)
TABLE1_METRICS = (("", "max_test_acc", "final_test_acc"),)


@dataclass(frozen=True)
class Claim:
    key: str
    value: float
    text: str


def acc(value: float) -> str:
    """An accuracy or a spread as the tables show it: one decimal."""
    return f"{value:.1f}"


def signed(value: float) -> str:
    return format_diff(value, STYLE)


def two_decimals(value: float) -> str:
    return f"{value:.2f}"


def whole(value: float) -> str:
    return f"{value:.0f}"


class Claims(dict):
    """key -> Claim, filled by `add`; a key given twice is a bug in this module."""

    def add(self, key: str, value: float, text=acc) -> None:
        if key in self:
            raise KeyError(f"claim {key} defined twice")
        self[key] = Claim(key, float(value), text(value) if callable(text) else text)

    def count(self, key: str, value: int) -> None:
        self.add(key, value, str(int(value)))


# ---------------------------------------------------------------- reading


@cache
def sections(results_dir: Path) -> tuple[Section, ...]:
    """The sections `make tables` builds from results_dir (with the authors' code's runs beside)."""
    known = [r for r in collect(results_dir) if r.settings.get("name") in TABLE_ORDER]
    built = build_sections(known, load_paper_numbers(PAPER_NUMBERS), PAPER_TABLES)
    code = read_code_runs(results_dir / CODE_RUNS)
    if code is not None:
        add_code_runs(built, code)
    return tuple(built)


def section(results_dir: Path, stem: str) -> Section:
    return next(s for s in sections(results_dir) if s.stem == stem)


@cache
def read_metrics(directory: Path) -> pd.DataFrame:
    return pd.read_csv(directory / "metrics.csv")


def metrics(run: Run) -> pd.DataFrame:
    return read_metrics(run.directory)


def capture_rate(run: Run) -> tuple[int, int]:
    """(evaluations at which a Byzantine row was selected, evaluations logged)."""
    selected = pd.to_numeric(metrics(run)["byz_selected"], errors="coerce").dropna()
    return int((selected > 0).sum()), len(selected)


def variance_norm(run: Run) -> float:
    return float(pd.to_numeric(metrics(run)["variance_norm_ratio"], errors="coerce").median())


def row_of(sec: Section, label: str) -> Row:
    return next(r for r in sec.rows if r.label == label)


def seeded(runs: list[Run]) -> list[Run]:
    return sorted(runs, key=lambda r: r.seed)


# ---------------------------------------------------------------- ALIE tables


def add_cell(out: Claims, key: str, runs: list[Run], best: str, final: str) -> None:
    """A cell's mean ± std (max and final), its seed count and every seed's max and final."""
    for part, column in (("max", best), ("final", final)):
        values = [r.value(column) for r in runs]
        out.add(f"{key}.{part}", statistics.fmean(values))
        if len(values) > 1:
            out.add(f"{key}.{part}_sd", statistics.stdev(values))
        out.add(f"{key}.{part}_min", min(values))
        out.add(f"{key}.{part}_max", max(values))
        for run in runs:
            out.add(f"{key}.s{run.seed}.{part}", run.value(column))
    out.count(f"{key}.seeds", len(runs))
    drops = [r.value(best) - r.value(final) for r in runs]
    out.count(f"{key}.collapsed", sum(d > COLLAPSE for d in drops))
    kept = [d for d in drops if d <= COLLAPSE]
    out.count(f"{key}.kept", len(kept))
    if kept:
        out.add(f"{key}.kept_drop_max", max(kept))


def add_paper_section(out: Claims, prefix: str, sec: Section, table_metrics) -> None:
    """Every row of a paper-table section: its cell per metric, the paper's number, Δ, the code's runs."""
    frame = sec.frame.set_index(["row", "metric"])
    for row in sec.rows:
        if not row.runs:
            continue
        slug = ROW_KEYS.get(row.label, row.label)
        for part, best, final in table_metrics:
            if (row.label, best) not in frame.index:
                continue
            key = f"{prefix}.{slug}" + (f".{part}" if part else "")
            add_cell(out, key, seeded(row.runs), best, final)
            line = frame.loc[(row.label, best)]
            if not pd.isna(line["paper"]):
                out.add(f"{key}.paper", line["paper"])
                out.add(f"{key}.diff", line["diff"], signed)
            if line.get("code_runs", 0) and not pd.isna(line.get("code_runs")):
                out.add(f"{key}.code", line["code_mean"])
                if not pd.isna(line["code_std"]):
                    out.add(f"{key}.code_sd", line["code_std"])
                out.count(f"{key}.code_runs", line["code_runs"])
                out.add(f"{key}.code_diff", line["code_diff"], signed)


def add_code_runs_claims(out: Claims, results_dir: Path) -> None:
    """Each of the authors' code's runs (max and final), and how far its Krum runs end below their max."""
    code = read_code_runs(results_dir / CODE_RUNS)
    for line in code.to_dict("records"):
        key = f"code.{line['run']}"
        column = "max_backdoor_acc_own" if line["table"] == "table2" and line["row"] != "No Attack" else None
        if key + ".max" in out:  # a No Attack run stands for both tables' row
            continue
        out.add(f"{key}.max", line[column or "max_test_acc"])
        out.add(f"{key}.final", line[(column or "max_test_acc").replace("max_", "final_")])
    krum = code[(code["row"] == "Krum (ALIE code)") & (code["table"] == "table1")]
    out.add("code.krum.max_drop", (krum["max_test_acc"] - krum["final_test_acc"]).max())


def add_krum_capture(out: Claims, prefix: str, runs: list[Run]) -> None:
    """Evaluations logged, evaluations with a Byzantine row selected, per-seed and extreme rates (%)."""
    counts = {run.seed: capture_rate(run) for run in seeded(runs)}
    out.count(f"{prefix}.evaluations", sum(total for _, total in counts.values()))
    out.count(f"{prefix}.captured", sum(hit for hit, _ in counts.values()))
    rates = {seed: 100 * hit / total for seed, (hit, total) in counts.items()}
    for seed, rate in rates.items():
        out.add(f"{prefix}.s{seed}.capture_pct", rate, whole)
    out.add(f"{prefix}.capture_pct_min", min(rates.values()), whole)
    out.add(f"{prefix}.capture_pct_max", max(rates.values()), whole)


def add_table1_summary(out: Claims, t1: Section) -> None:
    """The attacked rows' extremes: lowest max, range of the final accuracy of the rules that collapse."""
    attacked = [row for row in t1.rows if row.attacked and row.runs]
    means = {row.label: statistics.fmean(r.value("max_test_acc") for r in row.runs) for row in attacked}
    lowest = min(means, key=means.get)
    out.add("t1.lowest_max", means[lowest], lowest)
    collapsing = [row for row in attacked if not row.label.startswith("Krum")]
    finals = [statistics.fmean(r.value("final_test_acc") for r in row.runs) for row in collapsing]
    out.add("t1.collapsing.final_min", min(finals))
    out.add("t1.collapsing.final_max", max(finals))
    out.add("t1.krum_code.below_bulyan_code", means["Bulyan (ALIE code)"] - means["Krum (ALIE code)"])
    for rule in ("Trimmed Mean", "Bulyan"):
        gap = means[f"{rule} (paper)"] - means[f"{rule} (ALIE code)"]
        out.add(f"t1.convention_gap.{ROW_KEYS[rule + ' (paper)'].split('_')[0]}", gap)
    diffs = t1.frame["code_diff"].dropna()
    out.add("t1.code_diff_abs_max", diffs.abs().max())


def add_krum_argument(out: Claims, runs: list[Run]) -> None:
    """The distance argument for Krum at n, m, z of the runs: a Byzantine row's neighbours are its m-1
    identical copies and n-f-2-(m-1) honest rows at about sqrt(1+z²)·σ√d; an honest row's n-f-2
    neighbours are honest at about sqrt(2)·σ√d. Squared distances: honest rows win when
    honest·(1+z²) > 2·(n-f-2), i.e. z above sqrt(2(n-f-2)/honest - 1); plain distances: the attackers
    win while honest·sqrt(1+z²) < sqrt(2)·(n-f-2)."""
    s = runs[0].settings
    n, m, z = int(s["n"]), int(s["m"]), float(s["attack.factor"])
    neighbours = n - m - 2
    honest = neighbours - (m - 1)
    out.count("krum_arg.neighbours", neighbours)
    out.count("krum_arg.honest", honest)
    out.count("krum_arg.twice_neighbours", 2 * neighbours)
    out.add("krum_arg.z_squared", math.sqrt(2 * neighbours / honest - 1), two_decimals)
    out.add("krum_arg.z_plain", math.sqrt(2 * (neighbours / honest) ** 2 - 1), two_decimals)
    out.add("krum_arg.z", z, acc)


# ---------------------------------------------------------------- momentum


def placements(row: Row) -> dict[str, list[Run]]:
    return {
        p: seeded([r for r in row.runs if r.settings["momentum.placement"] == p])
        for p in ("server", "worker")
    }


def mean_of(runs: list[Run], column: str) -> float:
    return statistics.fmean(r.value(column) for r in runs)


def momentum_key(row: Row) -> str:
    f = row.fields
    return f"m.{f['lr']:g}.{f['attack']}.{f['defense']}.f{f['f']}"


def add_momentum_cell(out: Claims, row: Row) -> None:
    """Per placement: max and final (mean ± std, per seed), the variance-norm ratio; Δ; pairs won."""
    key, by = momentum_key(row), placements(row)
    for placement, runs in by.items():
        add_cell(out, f"{key}.{placement}", runs, "max_test_acc", "final_test_acc")
        for run in runs:  # two decimals where one decimal would hide which placement is higher
            out.add(f"{key}.{placement}.s{run.seed}.max2", run.value("max_test_acc"), two_decimals)
        out.add(f"{key}.{placement}.max2", mean_of(runs, "max_test_acc"), two_decimals)
        ratios = [variance_norm(r) for r in runs]
        out.add(f"{key}.{placement}.vn", statistics.fmean(ratios), two_decimals)
    out.add(
        f"{key}.diff", mean_of(by["worker"], "max_test_acc") - mean_of(by["server"], "max_test_acc"), signed
    )
    won = sum(w.value("max_test_acc") > s.value("max_test_acc") for s, w in zip(by["server"], by["worker"]))
    out.count(f"{key}.pairs_won", won)
    tied = sum(w.value("max_test_acc") == s.value("max_test_acc") for s, w in zip(by["server"], by["worker"]))
    out.count(f"{key}.pairs_tied", tied)
    out.count(f"{key}.pairs_lost", len(by["server"]) - won - tied)


def is_broken(row: Row) -> bool:
    return all(mean_of(runs, "max_test_acc") <= BROKEN for runs in placements(row).values())


def vn_higher(row: Row) -> tuple[bool, int, int, float]:
    """Whether the cell's ratio is higher with worker momentum, in how many seeds of how many, and
    worker / server."""
    by = placements(row)
    server, worker = ([variance_norm(r) for r in by[p]] for p in ("server", "worker"))
    seeds = sum(w > s for s, w in zip(server, worker))
    factor = statistics.fmean(worker) / statistics.fmean(server)
    return factor > 1, seeds, len(server), factor


def add_momentum_lr(out: Claims, rows: list[Row], lr: float) -> None:
    """One learning rate's summary: cells and pairs won (all, and without broken cells), the gains'
    range and median, per (attack, f): the range of Δ and the variance-norm comparison."""
    key = f"m.{lr:g}"
    kept = [row for row in rows if not is_broken(row)]
    diffs = [out[f"{momentum_key(r)}.diff"].value for r in kept]
    gains = [d for d in diffs if d > 0]
    pairs = [out[f"{momentum_key(r)}.pairs_won"].value for r in kept]
    out.count(f"{key}.cells", len(rows))
    out.count(f"{key}.broken", len(rows) - len(kept))
    out.count(f"{key}.kept", len(kept))
    out.count(f"{key}.kept_won", len(gains))
    out.count(f"{key}.kept_pairs", sum(len(placements(r)["server"]) for r in kept))
    out.count(f"{key}.kept_pairs_won", sum(pairs))
    out.count(f"{key}.kept_pairs_tied", sum(out[f"{momentum_key(r)}.pairs_tied"].value for r in kept))
    out.add(f"{key}.gain_min", min(gains), signed)
    out.add(f"{key}.gain_max", max(gains), signed)
    out.add(f"{key}.gain_median", statistics.median(gains), signed)
    for attack in ("little", "empire"):
        add_group(out, f"{key}.{attack}", [r for r in kept if r.fields["attack"] == attack])
        for f in (12, 24):
            group = [r for r in kept if r.fields["attack"] == attack and r.fields["f"] == f]
            add_group(out, f"{key}.{attack}.f{f}", group)


def add_group(out: Claims, key: str, group: list[Row]) -> None:
    """A group of cells that train: the range of Δ, pairs won, and in how many cells and (cell, seed)
    pairs the variance-norm ratio is higher with worker momentum (and by how much, in %)."""
    if not group:
        return
    d = [out[f"{momentum_key(r)}.diff"].value for r in group]
    out.add(f"{key}.diff_min", min(d), signed)
    out.add(f"{key}.diff_max", max(d), signed)
    out.count(f"{key}.cells", len(group))
    out.count(f"{key}.pairs_won", sum(out[f"{momentum_key(r)}.pairs_won"].value for r in group))
    comparisons = [vn_higher(r) for r in group]
    higher = [c for c in comparisons if c[0]]
    out.count(f"{key}.vn_higher_cells", len(higher))
    out.count(f"{key}.vn_higher_seeds", sum(c[1] for c in comparisons))
    out.count(f"{key}.vn_seeds", sum(c[2] for c in comparisons))
    out.count(f"{key}.vn_lower_cells", len(comparisons) - len(higher))
    out.count(f"{key}.vn_lower_seeds", sum(c[2] - c[1] for c in comparisons))
    if higher:
        out.add(f"{key}.vn_higher_pct_min", 100 * (min(c[3] for c in higher) - 1), whole)
        out.add(f"{key}.vn_higher_pct_max", 100 * (max(c[3] for c in higher) - 1), whole)


def add_momentum(out: Claims, sec: Section) -> None:
    for row in sec.rows:
        add_momentum_cell(out, row)
    for lr in sorted({row.fields["lr"] for row in sec.rows}):
        add_momentum_lr(out, [r for r in sec.rows if r.fields["lr"] == lr], lr)
    out.add("m.broken_limit", BROKEN, whole)


# ---------------------------------------------------------------- all


def claims(results: Path = Path("results")) -> dict[str, Claim]:
    """Every claim, from <results>/paper, <results>/evidence, <results>/no_avx512 and <results>/bench."""
    paper, evidence = results / "paper", results / "evidence"
    out = Claims()
    t1, t2 = section(paper, "table1_mnist"), section(paper, "table2_mnist")
    add_paper_section(out, "t1", t1, TABLE1_METRICS)
    add_paper_section(out, "t2", t2, TABLE2_METRICS)
    add_code_runs_claims(out, paper)
    add_table1_summary(out, t1)
    add_krum_capture(out, "t1.krum_paper", row_of(t1, "Krum (paper)").runs)
    add_krum_capture(out, "t1.krum_code", row_of(t1, "Krum (ALIE code)").runs)
    add_krum_argument(out, row_of(t1, "Krum (paper)").runs)
    out.add("collapse_limit", COLLAPSE, whole)
    add_momentum(out, section(paper, "momentum_fashion_mnist"))
    add_evidence(out, evidence)
    if (results / MACHINE).is_dir():
        add_machine(out, results / MACHINE, t1)
    if (results / BENCH).is_dir():
        add_bench(out, results)
    if (results / FIRST_RUN).is_dir():
        add_first_run(out, results / FIRST_RUN)
    return dict(out)


def add_first_run(out: Claims, folder: Path) -> None:
    """The max and final test accuracy of the README's first run (`byzrun dataset=digits`)."""
    (run,) = collect(folder)
    out.add("first_run.max", run.value("max_test_acc"))
    out.add("first_run.final", run.value("final_test_acc"))


def add_machine(out: Claims, machine: Path, t1: Section) -> None:
    """Runs repeated on a CPU without AVX-512 (results/no_avx512): each one's max and final, how many of
    its evaluations repeat the committed run's test accuracy exactly, and the first round that differs."""
    committed = {(r.settings["row"], r.seed): r for row in t1.rows for r in row.runs}
    gaps = []
    for run in collect(machine):
        slug, base = ROW_KEYS[run.settings["row"]], committed[(run.settings["row"], run.seed)]
        key = f"mc.{slug}.s{run.seed}"
        out.add(f"{key}.max", run.value("max_test_acc"))
        out.add(f"{key}.final", run.value("final_test_acc"))
        ours, theirs = (
            metrics(run).set_index("round")["test_acc"],
            metrics(base).set_index("round")["test_acc"],
        )
        same = ours.round(2).eq(theirs.reindex(ours.index).round(2))  # older runs kept float32 digits
        gaps.append(abs(run.value("final_test_acc") - base.value("final_test_acc")))
        out.count(f"{key}.evaluations", len(ours))
        out.count(f"{key}.same", int(same.sum()))
        if not same.all():
            out.count(f"{key}.first_differs", int(same[~same].index[0]))
    out.add("mc.final_gap_max", max(gaps), whole)  # the largest difference in final accuracy (points)


def add_evidence(out: Claims, evidence: Path) -> None:
    """../evidence: Krum's distance form against its neighbour count, the batch of 83, Table 2's ten
    more seeds."""
    krum = section(evidence, "table1_mnist-d249b9")
    for row in krum.rows:
        if not row.runs:
            continue
        s = row.runs[0].settings
        key = f"ev.krum.{s['defense.distances']}.{s['defense.neighbours']}"
        add_cell(out, key, seeded(row.runs), "max_test_acc", "final_test_acc")
        add_krum_capture(out, key, row.runs)
    add_paper_section(out, "ev.b83", section(evidence, "table1_mnist"), TABLE1_METRICS)
    add_paper_section(out, "ev.t2", section(evidence, "table2_mnist"), TABLE2_METRICS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m byzrun.report.claims",
        description="Print every number the READMEs quote about results, computed from the runs.",
    )
    parser.add_argument("results", nargs="?", type=Path, default=Path("results"), help="default: results")
    args = parser.parse_args(argv)
    for claim in claims(args.results).values():
        print(f"{claim.key}\t{claim.value:.6g}\t{claim.text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
