"""The papers' tables from the runs' summaries, beside the papers' own numbers, and the curves behind them.

`make tables` (scripts/make_tables.py) calls `main`. It reads every `summary.csv` under the results
directory (one row per run, see byzrun.train.summarize) and `paper_numbers.csv`, and writes next to
the runs:

- table1.{md,csv,tex}: ALIE Table 1 (runs with name=table1): max test accuracy per defense and dataset;
- table2.{md,csv,tex}: ALIE Table 2 (name=table2): benign (max_test_acc) and backdoor (max_backdoor_acc)
  accuracy under alie_backdoor;
- momentum.{md,csv,tex}: Distributed Momentum grid (name=momentum): max test accuracy with server and
  with worker momentum per (dataset, attack, defense, f=m), and worker - server;
- accuracy_<table>_<dataset>.png: test accuracy over rounds per defense (mean over seeds), attacked
  runs solid, unattacked dashed; variance_norm_<dataset>.png: the variance-norm ratio over rounds per
  momentum placement (log scale), when metrics.csv has that column.

Conventions. A cell is the mean ± sample standard deviation (ddof=1) over the seeds whose value is not
missing, their count in parentheses (one seed: no ±); † marks a cell with a diverged run (its maximum is
the one before divergence). Δ is ours - paper (the difference of the means for the momentum table).
Missing cells stay missing: "–" in markdown, empty in CSV, "--" in LaTeX. Runs with the same
config_hash found twice are counted once; a cell that holds the same seed twice (runs that differ in
some other setting, e.g. lr) is reported on stderr, since pooling them would be wrong.

Exit status of `main`: 0 when tables were written or when there was nothing to tabulate (a one-line
message says where it looked and how to produce runs); 1 when the results directory does not exist or
is not a directory, or the paper numbers cannot be read.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from byzrun.results import atomic_write_text  # noqa: E402

REPO_PAPER_NUMBERS = Path(__file__).resolve().parent.parent / "results" / "paper_numbers.csv"
SUMMARY_COLUMNS = (
    "dataset defense attack n m seed lr max_test_acc momentum diverged name config_hash "
    "max_backdoor_acc".split()
)
# read as text: a hex config_hash such as "12e4567890" must not become a number
TEXT_COLUMNS = ["dataset", "model", "defense", "attack", "momentum", "name", "config_hash"]
NUMERIC_COLUMNS = ["n", "m", "seed", "lr", "max_test_acc", "max_backdoor_acc"]
PAPER_DATASETS = ["mnist", "cifar10", "cifar100"]
DATASET_ORDER = ["mnist", "fashion_mnist", "cifar10", "cifar100", "digits"]
DATASET_LABELS = {
    "mnist": "MNIST",
    "fashion_mnist": "Fashion-MNIST",
    "cifar10": "CIFAR10",
    "cifar100": "CIFAR100",
    "digits": "digits",
}
PLACEMENTS = ["server", "worker"]


@dataclass(frozen=True)
class PaperTable:
    """One table of a paper: its rows (label, defense, attack) and metrics (summary column, label)."""

    key: str
    title: str
    source: str
    rows: tuple[tuple[str, str, str], ...]
    metrics: tuple[tuple[str, str], ...]


ALIE_ROWS = ("No Defense", "mean"), ("Trimmed Mean", "trimmed_mean"), ("Krum", "krum"), ("Bulyan", "bulyan")
TABLE1 = PaperTable(
    key="table1",
    title="ALIE Table 1: convergence prevention, maximal test accuracy (%), n=51, m=12, z=1.5",
    source="Baruch et al. 2019, A Little Is Enough, Table 1",
    rows=(("No Attack", "mean", "none"), *((label, d, "alie") for label, d in ALIE_ROWS)),
    metrics=(("max_test_acc", ""),),
)
TABLE2 = PaperTable(
    key="table2",
    title="ALIE Table 2: backdoor, maximal benign and backdoor accuracy (%), n=51, m=12, z=α=0.2",
    source="Baruch et al. 2019, A Little Is Enough, Table 2",
    rows=(("No Attack", "mean", "none"), *((label, d, "alie_backdoor") for label, d in ALIE_ROWS)),
    metrics=(("max_test_acc", "benign"), ("max_backdoor_acc", "backdoor")),
)
PAPER_TABLES = (TABLE1, TABLE2)
TABLE_NAMES = ("table1", "table2", "momentum")


def warn(message: str) -> None:
    print(f"byzrun tables: warning: {message}", file=sys.stderr)


# ---------------------------------------------------------------- collect


def find_summaries(results_dir: Path) -> list[Path]:
    """Every summary.csv below results_dir (runs/<label>/summary.csv), in a stable order."""
    return sorted(results_dir.rglob("summary.csv"))


def read_summary(path: Path) -> pd.DataFrame | None:
    """One run's summary with its run directory attached; None (and a warning) if unreadable."""
    try:
        frame = pd.read_csv(path, dtype=dict.fromkeys(TEXT_COLUMNS, str))
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        warn(f"skipped unreadable {path}: {err}")
        return None
    return frame.assign(run_dir=str(path.parent))


def diverged_flags(column: pd.Series) -> pd.Series:
    """The diverged column as booleans (CSV gives bools, or strings when mixed with missing values)."""
    return column.astype(str).str.strip().str.lower().isin(["true", "1", "1.0"])


def collect(results_dir: Path) -> pd.DataFrame:
    """All runs' summaries in one frame; missing optional columns are added as empty, numbers coerced,
    a run found twice (same config_hash) kept once."""
    frames = [f for f in map(read_summary, find_summaries(results_dir)) if f is not None]
    if not frames:
        return pd.DataFrame(columns=[*SUMMARY_COLUMNS, "run_dir"])
    frame = pd.concat(frames, ignore_index=True)
    frame = frame.reindex(columns=[*frame.columns, *(c for c in SUMMARY_COLUMNS if c not in frame)])
    for column in NUMERIC_COLUMNS:
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    frame["diverged"] = diverged_flags(frame["diverged"])
    twice = frame["config_hash"].notna() & frame.duplicated("config_hash")
    if twice.any():
        warn(f"{int(twice.sum())} run(s) found twice (same config_hash), counted once")
    return frame[~twice].reset_index(drop=True)


def load_paper_numbers(path: Path) -> pd.DataFrame:
    """The papers' numbers, tidy: paper, table, row, dataset, metric, value, source."""
    return pd.read_csv(path)


def paper_numbers_path(results_dir: Path) -> Path:
    """results_dir/paper_numbers.csv if there is one, else the copy committed in the repository."""
    local = results_dir / "paper_numbers.csv"
    return local if local.is_file() else REPO_PAPER_NUMBERS


# ---------------------------------------------------------------- aggregate


def dataset_order(present: pd.Series, always: list[str]) -> list[str]:
    """Datasets as columns: `always` first, then the others present, in byzrun's usual order."""
    extra = [d for d in dict.fromkeys(present.dropna()) if d not in always]
    rank = {d: i for i, d in enumerate(DATASET_ORDER)}
    return [*always, *sorted(extra, key=lambda d: (rank.get(d, len(rank)), d))]


def seed_stats(frame: pd.DataFrame, keys: list[str], metrics: list[str]) -> pd.DataFrame:
    """Per group of `keys` and metric: mean, sample std and count of the non-missing values over seeds,
    and how many runs of the group diverged."""
    long = frame.melt(id_vars=[*keys, "diverged"], value_vars=metrics, var_name="metric")
    return (
        long.groupby([*keys, "metric"], sort=False, dropna=False)
        .agg(
            mean=("value", "mean"),
            std=("value", "std"),
            seeds=("value", "count"),
            diverged=("diverged", "sum"),
        )
        .reset_index()
    )


def duplicate_seed_cells(frame: pd.DataFrame, keys: list[str]) -> list[str]:
    """Groups of `keys` that hold some seed more than once: runs differing in more than the seed."""
    dup = frame[frame.duplicated([*keys, "seed"], keep=False)]
    return [", ".join(f"{k}={v}" for k, v in zip(keys, group)) for group in dup.groupby(keys).groups]


def label_rows(runs: pd.DataFrame, spec: PaperTable) -> pd.DataFrame:
    """The runs launched for `spec` (name = spec.key) with their table row label; other runs dropped."""
    rows = pd.DataFrame(list(spec.rows), columns=["row", "defense", "attack"])
    return runs[runs["name"] == spec.key].merge(rows, on=["defense", "attack"])


def paper_table(runs: pd.DataFrame, paper: pd.DataFrame, spec: PaperTable) -> pd.DataFrame:
    """Tidy table: one line per (row, dataset, metric) cell of the paper's layout with our mean, std,
    seeds, diverged count, the paper's value and ours - paper. A backdoor metric exists only for
    attacked rows."""
    labelled = label_rows(runs, spec)
    unmatched = int((runs["name"] == spec.key).sum()) - len(labelled)
    if unmatched:
        warn(f"{spec.key}: {unmatched} run(s) with a defense/attack pair not in the table left out")
    for cell in duplicate_seed_cells(labelled, ["row", "dataset"]):
        warn(f"{spec.key}: {cell} holds the same seed more than once (runs differing in other settings)")
    datasets = dataset_order(runs.loc[runs["name"] == spec.key, "dataset"], PAPER_DATASETS)
    grid = pd.DataFrame(
        [
            (label, dataset, metric)
            for label, _, attack in spec.rows
            for dataset in datasets
            for metric, _ in spec.metrics
            if metric == "max_test_acc" or attack != "none"
        ],
        columns=["row", "dataset", "metric"],
    )
    stats = seed_stats(labelled, ["row", "dataset"], [m for m, _ in spec.metrics])
    keys = ["row", "dataset", "metric"]
    reference = paper.loc[paper["table"] == spec.key, [*keys, "value"]].rename(columns={"value": "paper"})
    table = grid.merge(stats, how="left", on=keys).merge(reference, how="left", on=keys)
    table["seeds"] = table["seeds"].fillna(0).astype(int)
    table["diverged"] = table["diverged"].fillna(0).astype(int)
    table["diff"] = table["mean"] - table["paper"]
    return table[["row", "dataset", "metric", "mean", "std", "seeds", "diverged", "paper", "diff"]]


def momentum_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, attack, defense, f, lr): max test accuracy over seeds with server and with worker
    momentum, and worker - server (difference of the means). The paper's grid has two learning rates,
    which must not be pooled."""
    grid = runs[(runs["name"] == "momentum") & runs["momentum"].isin(PLACEMENTS)].rename(columns={"m": "f"})
    keys = ["dataset", "attack", "defense", "f", "lr"]
    for cell in duplicate_seed_cells(grid, [*keys, "momentum"]):
        warn(f"momentum: {cell} holds the same seed more than once (runs differing in other settings)")
    stats = seed_stats(grid, [*keys, "momentum"], ["max_test_acc"]).drop(columns="metric")
    wide = stats.pivot(index=keys, columns="momentum")
    wide = wide.reindex(
        columns=pd.MultiIndex.from_product([["mean", "std", "seeds", "diverged"], PLACEMENTS])
    )
    wide.columns = [f"{placement}_{stat}" for stat, placement in wide.columns]
    table = wide.reset_index().astype({"f": "Int64"})
    for placement in PLACEMENTS:
        for stat in ("seeds", "diverged"):
            table[f"{placement}_{stat}"] = table[f"{placement}_{stat}"].fillna(0).astype(int)
    table["diff"] = table["worker_mean"] - table["server_mean"]
    rank = {d: i for i, d in enumerate(dataset_order(table["dataset"], []))}
    table = table.sort_values(keys, key=lambda c: c.map(rank) if c.name == "dataset" else c)
    columns = [f"{p}_{s}" for p in PLACEMENTS for s in ("mean", "std", "seeds", "diverged")]
    return table[[*keys, *columns, "diff"]].reset_index(drop=True)


# ---------------------------------------------------------------- format


@dataclass(frozen=True)
class Style:
    """How one output format writes a missing value, ±, a signed difference, a mark and plain text."""

    missing: str
    pm: str
    dagger: str
    signed: Callable[[str], str]
    text: Callable[[str], str]


def latex_escape(text: str) -> str:
    """Plain text (labels, headers) for LaTeX: special characters escaped, Greek/minus in math mode."""
    special = {
        "\\": r"\textbackslash{}",
        "&": r"\&",
        "%": r"\%",
        "$": r"\$",
        "#": r"\#",
        "_": r"\_",
        "{": r"\{",
        "}": r"\}",
        "~": r"\textasciitilde{}",
        "^": r"\textasciicircum{}",
        "Δ": r"$\Delta$",
        "α": r"$\alpha$",
        "−": "$-$",
        "–": "--",
        "±": r"$\pm$",
        "†": r"$^\dagger$",
    }
    return "".join(special.get(ch, ch) for ch in text)


MARKDOWN = Style(missing="–", pm=" ± ", dagger="†", signed=lambda s: s, text=lambda s: s)
LATEX = Style(missing="--", pm=r" $\pm$ ", dagger=r"$^\dagger$", signed=lambda s: f"${s}$", text=latex_escape)


def missing(value) -> bool:
    return value is None or pd.isna(value)


def format_stat(mean, std, seeds: int, diverged: int, style: Style) -> str:
    """'mean ± std (seeds)', no ± for one seed, † when a run diverged; missing when there is no value."""
    if missing(mean):
        return style.missing
    spread = "" if missing(std) else f"{style.pm}{std:.1f}"
    return f"{mean:.1f}{spread} ({int(seeds)}){style.dagger if diverged else ''}"


def format_value(value, style: Style) -> str:
    return style.missing if missing(value) else f"{value:.1f}"


def format_diff(value, style: Style) -> str:
    """Signed, one decimal; a difference that rounds to zero is shown as +0.0, never -0.0."""
    return style.missing if missing(value) else style.signed(f"{round(value, 1) + 0.0:+.1f}")


def paper_grid(
    table: pd.DataFrame, spec: PaperTable, style: Style
) -> tuple[list[tuple[str, str]], list[list[str]]]:
    """Columns as (group, sub) pairs and the rows of cells: per dataset and metric ours, paper, Δ."""
    datasets = list(dict.fromkeys(table["dataset"]))
    groups = [
        (metric, " ".join(filter(None, [DATASET_LABELS.get(d, d), label])), d)
        for d in datasets
        for metric, label in spec.metrics
    ]
    columns = [("", "Defense")] + [(g, sub) for _, g, _ in groups for sub in ("ours", "paper", "Δ")]
    cells = table.set_index(["row", "dataset", "metric"])
    rows = []
    for label, _, _ in spec.rows:
        line = [style.text(label)]
        for metric, _, dataset in groups:
            if (label, dataset, metric) not in cells.index:
                line += [style.missing] * 3
                continue
            c = cells.loc[(label, dataset, metric)]
            line += [
                format_stat(c["mean"], c["std"], c["seeds"], c["diverged"], style),
                format_value(c["paper"], style),
                format_diff(c["diff"], style),
            ]
        rows.append(line)
    return columns, rows


def momentum_grid(table: pd.DataFrame, style: Style) -> tuple[list[tuple[str, str]], list[list[str]]]:
    """Columns and rows of the momentum table: keys, server, worker, Δ (worker − server)."""
    labels = ("Dataset", "Attack", "Defense", "f", "lr", "server", "worker", "Δ (worker − server)")
    columns = [("", c) for c in labels]
    rows = []
    for r in table.itertuples(index=False):
        rows.append(
            [
                style.text(DATASET_LABELS.get(r.dataset, r.dataset)),
                style.text(str(r.attack)),
                style.text(str(r.defense)),
                style.missing if missing(r.f) else str(int(r.f)),
                style.missing if missing(r.lr) else f"{r.lr:g}",
                format_stat(r.server_mean, r.server_std, r.server_seeds, r.server_diverged, style),
                format_stat(r.worker_mean, r.worker_std, r.worker_seeds, r.worker_diverged, style),
                format_diff(r.diff, style),
            ]
        )
    return columns, rows


def format_markdown(title: str, columns: list[tuple[str, str]], rows: list[list[str]], legend: str) -> str:
    """A markdown section: heading, pipe table (header 'group sub'), legend."""
    header = [" ".join(filter(None, col)) for col in columns]
    lines = [f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join([*lines, "", legend, ""])


def format_latex(title: str, columns: list[tuple[str, str]], rows: list[list[str]], legend: str) -> str:
    """A tabular (to \\input inside a table environment), the column groups as a \\multicolumn line."""
    spans: list[list] = []
    for group, _ in columns:
        if spans and spans[-1][0] == group:
            spans[-1][1] += 1
        else:
            spans.append([group, 1])
    lines = [
        f"% {latex_escape(title)}",
        f"% {latex_escape(legend)}",
        rf"\begin{{tabular}}{{l{'r' * (len(columns) - 1)}}}",
    ]
    lines.append(r"\hline")
    if any(group for group, _ in columns):
        heads = [
            rf"\multicolumn{{{n}}}{{c}}{{{latex_escape(g)}}}" if g else " & ".join([""] * n) for g, n in spans
        ]
        lines.append(" & ".join(heads) + r" \\")
    lines.append(" & ".join(latex_escape(sub) for _, sub in columns) + r" \\")
    lines.append(r"\hline")
    lines += [" & ".join(row) + r" \\" for row in rows]
    lines += [r"\hline", r"\end{tabular}", ""]
    return "\n".join(lines)


def paper_legend(spec: PaperTable) -> str:
    return (
        "ours: max accuracy (%), mean ± sample std over seeds (number of seeds); † a run diverged; "
        f"paper: {spec.source}; Δ = ours − paper; – missing."
    )


MOMENTUM_TITLE = "Distributed Momentum: highest top-1 test accuracy (%), server vs worker momentum"
MOMENTUM_LEGEND = (
    "server/worker: max test accuracy (%) with momentum at the server / at the workers, mean ± sample std "
    "over seeds (number of seeds); † a run diverged; Δ = worker − server (means); – missing."
)


# ---------------------------------------------------------------- plot


def atomic_savefig(fig, path: Path) -> None:
    """Render a figure as PNG and write it atomically (see byzrun.results)."""
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    finally:
        plt.close(fig)
    atomic_write_text(path, buffer.getvalue())


def load_metrics(runs: pd.DataFrame) -> pd.DataFrame:
    """The metrics.csv of each run, with the run's defense, attack, seed and momentum attached."""
    frames = []
    for run in runs.itertuples(index=False):
        path = Path(run.run_dir) / "metrics.csv"
        try:
            metrics = pd.read_csv(path)
        except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError):
            continue
        frames.append(
            metrics.assign(defense=run.defense, attack=run.attack, seed=run.seed, momentum=run.momentum)
        )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def mean_curves(metrics: pd.DataFrame, keys: list[str], column: str) -> pd.DataFrame:
    """`column` averaged over seeds per round, for each group of `keys` (rows without a value dropped)."""
    if column not in metrics or "round" not in metrics:
        return pd.DataFrame(columns=[*keys, "round", column])
    values = metrics.assign(**{column: pd.to_numeric(metrics[column], errors="coerce")}).dropna(
        subset=[column]
    )
    return values.groupby([*keys, "round"])[column].mean().reset_index()


def defense_colors(defenses) -> dict[str, str]:
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {d: cycle[i % len(cycle)] for i, d in enumerate(sorted(set(defenses)))}


def plot_accuracy(runs: pd.DataFrame, spec: PaperTable, dataset: str, path: Path) -> bool:
    """Test accuracy over rounds, one line per (defense, attack), attacked solid, unattacked dashed."""
    curves = mean_curves(load_metrics(runs), ["defense", "attack"], "test_acc")
    if curves.empty:
        return False
    order = {(d, a): (i, label) for i, (label, d, a) in enumerate(spec.rows)}
    colors = defense_colors(curves["defense"])
    fig, ax = plt.subplots(figsize=(7, 4.5))
    lines = sorted(curves.groupby(["defense", "attack"]), key=lambda g: order.get(g[0], (len(order), "")))
    for (defense, attack), curve in lines:
        label = order.get((defense, attack), (0, f"{defense} / {attack}"))[1]
        style = "--" if attack == "none" else "-"
        ax.plot(curve["round"], curve["test_acc"], style, color=colors[defense], label=label)
    ax.set(
        xlabel="round",
        ylabel="test accuracy (%)",
        title=f"{spec.key}, {DATASET_LABELS.get(dataset, dataset)}",
    )
    ax.grid(alpha=0.3)
    ax.legend()
    atomic_savefig(fig, path)
    return True


def plot_variance_norm(runs: pd.DataFrame, dataset: str, path: Path) -> bool:
    """Variance-norm ratio over rounds (log scale): one panel per attack, a colour per defense,
    server momentum solid and worker momentum dashed; False when no run logged the ratio."""
    curves = mean_curves(load_metrics(runs), ["attack", "defense", "momentum"], "variance_norm_ratio")
    curves = curves[curves["variance_norm_ratio"] > 0] if not curves.empty else curves
    if curves.empty:
        return False
    attacks = sorted(curves["attack"].unique())
    colors = defense_colors(curves["defense"])
    fig, axes = plt.subplots(1, len(attacks), figsize=(6 * len(attacks), 4.5), squeeze=False)
    for ax, attack in zip(axes[0], attacks):
        for (defense, placement), curve in curves[curves["attack"] == attack].groupby(
            ["defense", "momentum"]
        ):
            style = "--" if placement == "worker" else "-"
            ax.plot(
                curve["round"],
                curve["variance_norm_ratio"],
                style,
                color=colors[defense],
                label=f"{defense}, {placement} momentum",
            )
        ax.set_yscale("log")
        ax.set(
            xlabel="round",
            ylabel="variance-norm ratio",
            title=f"{DATASET_LABELS.get(dataset, dataset)}, {attack}",
        )
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize="small")
    atomic_savefig(fig, path)
    return True


# ---------------------------------------------------------------- write


def write_table(results_dir: Path, stem: str, markdown: str, csv: pd.DataFrame, latex: str) -> list[Path]:
    """<stem>.md, .csv (numbers rounded to 4 decimals, missing values empty) and .tex, written atomically."""
    paths = [results_dir / f"{stem}.{ext}" for ext in ("md", "csv", "tex")]
    for path, text in zip(paths, (markdown, csv.round(4).to_csv(index=False), latex)):
        atomic_write_text(path, text)
    return paths


def report_paper_table(
    runs: pd.DataFrame, paper: pd.DataFrame, spec: PaperTable, results_dir: Path
) -> list[Path]:
    """One paper table (files and plots); prints its markdown. Nothing when no run was launched for it."""
    if not (runs["name"] == spec.key).any():
        return []
    table = paper_table(runs, paper, spec)
    markdown = format_markdown(spec.title, *paper_grid(table, spec, MARKDOWN), paper_legend(spec))
    latex = format_latex(spec.title, *paper_grid(table, spec, LATEX), paper_legend(spec))
    print(markdown)
    written = write_table(results_dir, spec.key, markdown, table, latex)
    labelled = label_rows(runs, spec)
    for dataset, group in labelled.groupby("dataset"):
        path = results_dir / f"accuracy_{spec.key}_{dataset}.png"
        if plot_accuracy(group, spec, dataset, path):
            written.append(path)
    return written


def report_momentum(runs: pd.DataFrame, results_dir: Path) -> list[Path]:
    """The momentum table and the variance-norm plots; nothing when no run has name=momentum."""
    grid = runs[(runs["name"] == "momentum") & runs["momentum"].isin(PLACEMENTS)]
    if grid.empty:
        return []
    table = momentum_table(runs)
    markdown = format_markdown(MOMENTUM_TITLE, *momentum_grid(table, MARKDOWN), MOMENTUM_LEGEND)
    latex = format_latex(MOMENTUM_TITLE, *momentum_grid(table, LATEX), MOMENTUM_LEGEND)
    print(markdown)
    written = write_table(results_dir, "momentum", markdown, table, latex)
    for dataset, group in grid.groupby("dataset"):
        path = results_dir / f"variance_norm_{dataset}.png"
        if plot_variance_norm(group, dataset, path):
            written.append(path)
    return written


def build_report(results_dir: Path, paper_path: Path) -> int:
    """Collect, tabulate, plot and write; prints the tables and one line per file written."""
    runs = collect(results_dir)
    if runs.empty:
        print(
            f"byzrun tables: no runs found (no summary.csv under {results_dir}/runs/); produce some with "
            "e.g. `byzrun -m experiment=table1_mnist`, then run `make tables` again."
        )
        return 0
    known = runs["name"].isin(TABLE_NAMES)
    print(
        f"byzrun tables: {len(runs)} run(s) under {results_dir}; "
        f"{int((~known).sum())} without a table name (table1|table2|momentum) ignored"
    )
    if not known.any():
        print(
            "byzrun tables: no run was launched for a table (name=table1|table2|momentum); use the presets, "
            "e.g. `byzrun -m experiment=table1_mnist`."
        )
        return 0
    paper = load_paper_numbers(paper_path)
    written = [p for spec in PAPER_TABLES for p in report_paper_table(runs, paper, spec, results_dir)]
    written += report_momentum(runs, results_dir)
    for path in written:
        print(f"wrote {path}")
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="make_tables",
        description="Collect <results-dir>/runs/*/summary.csv into the papers' tables and plots.",
        epilog="Exit status: 0 when tables were written or no runs were found; 1 when the results directory "
        "is missing or the paper numbers cannot be read.",
    )
    parser.add_argument(
        "--results-dir", type=Path, default=Path("results"), help="where runs are (default: results)"
    )
    parser.add_argument(
        "--paper-numbers",
        type=Path,
        default=None,
        help="the papers' numbers (default: <results-dir>/paper_numbers.csv, else the repository's copy)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results_dir: Path = args.results_dir
    if not results_dir.is_dir():
        print(
            f"byzrun tables: error: results directory {results_dir} does not exist (pass --results-dir DIR)",
            file=sys.stderr,
        )
        return 1
    paper_path = args.paper_numbers or paper_numbers_path(results_dir)
    try:
        return build_report(results_dir, paper_path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        print(f"byzrun tables: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
