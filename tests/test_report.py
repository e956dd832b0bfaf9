"""byzrun.report on hand-made runs: cell values, paper numbers, missing cells, layouts, plots, the script."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from byzrun import report

ROOT = Path(__file__).resolve().parent.parent
TABLE1_HEADER = (
    "| Defense | MNIST ours | MNIST paper | MNIST Δ | CIFAR10 ours | CIFAR10 paper | CIFAR10 Δ "
    "| CIFAR100 ours | CIFAR100 paper | CIFAR100 Δ | digits ours | digits paper | digits Δ |"
)


def write_run(results: Path, metrics: list[dict] | None = None, drop: tuple[str, ...] = (), **fields) -> Path:
    """One run directory with a summary.csv (ALIE Table 1 defaults overridden by `fields`)."""
    row = {
        "dataset": "mnist", "model": "mlp", "defense": "mean", "attack": "alie", "n": 51, "m": 12,
        "z": 1.5, "alpha": math.nan, "seed": 0, "max_test_acc": 90.0, "final_test_acc": 89.0, "rounds": 20,
        "wall_seconds": 1.0, "momentum": "server", "beta": 0.9, "diverged": False, "diverged_round": None,
        "name": "table1",
    }  # fmt: skip
    row.update(fields)
    keys = ("name", "dataset", "defense", "attack", "momentum", "m", "seed", "config_hash")
    label = "-".join(str(row[k]) for k in keys if k in row)
    row.setdefault("config_hash", label)
    for key in drop:
        row.pop(key)
    directory = results / "runs" / label
    directory.mkdir(parents=True)
    pd.DataFrame([row]).to_csv(directory / "summary.csv", index=False)
    if metrics is not None:
        pd.DataFrame(metrics).to_csv(directory / "metrics.csv", index=False)
    return directory


def curve(final: float, **extra) -> list[dict]:
    return [
        {"round": r, "test_acc": final * r / 20, **{k: v * r for k, v in extra.items()}} for r in (5, 10, 20)
    ]


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """Runs for all three tables, with gaps (missing cells) and runs that must be ignored."""
    res = tmp_path / "results"
    t1 = dict(name="table1")
    for seed, acc in enumerate([95.0, 96.0, 97.0]):
        write_run(res, curve(acc), attack="none", m=0, seed=seed, max_test_acc=acc, **t1)
    for seed, acc in enumerate([90.0, 92.0]):
        write_run(res, curve(acc), defense="mean", seed=seed, max_test_acc=acc, **t1)
    write_run(res, curve(88.0), defense="trimmed_mean", max_test_acc=88.0, **t1)
    # Krum on MNIST missing; Bulyan with a diverged seed; one digits run (no paper number there)
    write_run(res, curve(85.0), defense="bulyan", seed=0, max_test_acc=85.0, **t1)
    write_run(
        res, curve(87.0), defense="bulyan", seed=1, max_test_acc=87.0, diverged=True, diverged_round=15, **t1
    )
    write_run(res, curve(50.0), dataset="digits", defense="krum", max_test_acc=50.0, **t1)
    # ignored: no table name, an attack that is not in the table, old summary without optional columns
    write_run(res, dataset="cifar10", defense="krum", max_test_acc=10.0, name=None)
    write_run(res, dataset="cifar10", defense="krum", attack="ipm", max_test_acc=11.0, **t1)
    write_run(res, dataset="cifar10", defense="krum", max_test_acc=20.0, drop=("momentum", "diverged"), **t1)

    t2 = dict(name="table2", z=0.2, alpha=0.2)
    write_run(res, curve(96.0), attack="none", seed=0, max_test_acc=96.0, **t2)
    write_run(res, curve(96.0), attack="none", seed=1, max_test_acc=97.0, **t2)
    for seed, (acc, backdoor) in enumerate([(95.0, 30.0), (97.0, 40.0)]):
        write_run(
            res,
            curve(acc),
            attack="alie_backdoor",
            seed=seed,
            max_test_acc=acc,
            max_backdoor_acc=backdoor,
            **t2,
        )
    write_run(res, attack="alie_backdoor", defense="krum", max_test_acc=94.0, max_backdoor_acc=100.0, **t2)

    mom = dict(name="momentum", defense="krum", m=24, lr=0.5)
    for placement, accs in (("server", [80.0, 82.0]), ("worker", [90.0, 94.0])):
        for seed, acc in enumerate(accs):
            ratio = 4.0 if placement == "server" else 0.5
            write_run(
                res,
                curve(acc, variance_norm_ratio=ratio),
                momentum=placement,
                seed=seed,
                max_test_acc=acc,
                **mom,
            )
    # the same cell at the paper's other learning rate: its own row, never pooled with lr=0.5
    write_run(res, momentum="worker", seed=0, max_test_acc=50.0, config_hash="lr002", **{**mom, "lr": 0.02})
    # an older summary without an lr column
    fashion = dict(dataset="fashion_mnist", defense="trimmed_mean", momentum="server", m=12, name="momentum")
    write_run(res, curve(70.0), max_test_acc=70.0, **fashion)
    return res


@pytest.fixture
def written(results: Path, capsys) -> tuple[Path, str]:
    assert report.main(["--results-dir", str(results)]) == 0
    return results, capsys.readouterr().out


def cell(table: pd.DataFrame, row: str, dataset: str, metric: str = "max_test_acc") -> pd.Series:
    hit = table[(table["row"] == row) & (table["dataset"] == dataset) & (table["metric"] == metric)]
    assert len(hit) == 1, (row, dataset, metric)
    return hit.iloc[0]


def md_rows(text: str) -> dict[str, list[str]]:
    """Markdown table rows by their first cell."""
    lines = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| Defense")]
    return {
        cells[0]: cells[1:] for cells in ([c.strip() for c in line.strip("|").split("|")] for line in lines)
    }


def test_collect_tolerates_missing_columns_and_counts_each_run_once(results: Path):
    runs = report.collect(results)
    assert len(runs) == 23
    old = runs[runs["max_test_acc"] == 20.0].iloc[0]
    assert pd.isna(old["momentum"]) and not old["diverged"] and pd.isna(old["max_backdoor_acc"])
    copy = results / "backup" / "runs" / "copy"
    copy.mkdir(parents=True)
    (copy / "summary.csv").write_text(
        (results / "runs" / "table1-mnist-trimmed_mean-alie-server-12-0" / "summary.csv").read_text()
    )
    assert len(report.collect(results)) == 23


def test_mean_std_over_seeds_with_paper_number_and_difference(results: Path):
    paper = report.load_paper_numbers(report.REPO_PAPER_NUMBERS)
    table = report.paper_table(report.collect(results), paper, report.TABLE1)
    no_attack = cell(table, "No Attack", "mnist")
    assert (no_attack["mean"], no_attack["std"], no_attack["seeds"]) == (96.0, 1.0, 3)
    assert no_attack["paper"] == 96.1 and no_attack["diff"] == pytest.approx(-0.1)
    no_defense = cell(table, "No Defense", "mnist")
    assert no_defense["mean"] == 91.0 and no_defense["std"] == pytest.approx(math.sqrt(2))
    assert no_defense["diff"] == pytest.approx(91.0 - 91.1)
    trimmed = cell(table, "Trimmed Mean", "mnist")
    assert trimmed["seeds"] == 1 and pd.isna(trimmed["std"]) and trimmed["diff"] == pytest.approx(-0.3)
    bulyan = cell(table, "Bulyan", "mnist")
    assert (bulyan["mean"], bulyan["diverged"], bulyan["paper"]) == (86.0, 1, 87.9)
    # the ipm run and the run without a table name are not in the Krum/CIFAR10 cell
    krum_cifar = cell(table, "Krum", "cifar10")
    assert (krum_cifar["mean"], krum_cifar["seeds"], krum_cifar["paper"]) == (20.0, 1, 20.3)


def test_markdown_layout_row_order_and_cells(written):
    results, out = written
    text = (results / "table1.md").read_text()
    lines = text.splitlines()
    assert lines[0] == f"## {report.TABLE1.title}"
    assert lines[2] == TABLE1_HEADER
    assert lines[3] == "|" + "|".join(["---"] * 13) + "|"
    rows = md_rows(text)
    assert list(rows) == ["No Attack", "No Defense", "Trimmed Mean", "Krum", "Bulyan"]
    assert rows["No Attack"][:3] == ["96.0 ± 1.0 (3)", "96.1", "-0.1"]
    assert rows["No Defense"][:3] == ["91.0 ± 1.4 (2)", "91.1", "-0.1"]
    assert rows["Trimmed Mean"][:3] == ["88.0 (1)", "88.3", "-0.3"]
    assert rows["Bulyan"][:3] == ["86.0 ± 1.4 (2)†", "87.9", "-1.9"]
    assert text in out  # printed to stdout too


def test_missing_cells_stay_missing(written):
    results, _ = written
    rows = md_rows((results / "table1.md").read_text())
    assert rows["Krum"][:3] == ["–", "78.5", "–"]  # no run: paper number only
    assert rows["No Attack"][3:6] == ["–", "59.6", "–"]  # CIFAR10 without runs
    assert rows["Krum"][9:12] == ["50.0 (1)", "–", "–"]  # digits: no paper number
    assert rows["No Attack"][9:12] == ["–", "–", "–"]
    csv = pd.read_csv(results / "table1.csv")
    krum = cell(csv, "Krum", "mnist")
    assert pd.isna(krum["mean"]) and pd.isna(krum["std"]) and pd.isna(krum["diff"]) and krum["seeds"] == 0
    assert krum["paper"] == 78.5
    raw = (results / "table1.csv").read_text().splitlines()
    assert "Krum,mnist,max_test_acc,,,0,0,78.5," in raw
    tex = (results / "table1.tex").read_text()
    krum_line = next(line for line in tex.splitlines() if line.startswith("Krum &"))
    assert krum_line.startswith("Krum & -- & 78.5 & --")


def test_table2_benign_and_backdoor_columns(written):
    results, _ = written
    text = (results / "table2.md").read_text()
    header = next(line for line in text.splitlines() if line.startswith("| Defense"))
    assert header.startswith(
        "| Defense | MNIST benign ours | MNIST benign paper | MNIST benign Δ "
        "| MNIST backdoor ours | MNIST backdoor paper | MNIST backdoor Δ |"
    )
    rows = md_rows(text)
    assert rows["No Attack"][:6] == ["96.5 ± 0.7 (2)", "96.1", "+0.4", "–", "–", "–"]
    assert rows["No Defense"][:6] == ["96.0 ± 1.4 (2)", "96.0", "+0.0", "35.0 ± 7.1 (2)", "36.9", "-1.9"]
    assert rows["Krum"][:6] == ["94.0 (1)", "95.2", "-1.2", "100.0 (1)", "100.0", "+0.0"]
    assert rows["Bulyan"][3:6] == ["–", "99.9", "–"]
    csv = pd.read_csv(results / "table2.csv")
    backdoor = cell(csv, "No Defense", "mnist", "max_backdoor_acc")
    assert backdoor["mean"] == 35.0 and backdoor["paper"] == 36.9 and backdoor["diff"] == pytest.approx(-1.9)
    assert csv[(csv["row"] == "No Attack") & (csv["metric"] == "max_backdoor_acc")].empty


def test_momentum_table_difference(written):
    results, _ = written
    csv = pd.read_csv(results / "momentum.csv")
    krum = csv[(csv["dataset"] == "mnist") & (csv["defense"] == "krum") & (csv["lr"] == 0.5)].iloc[0]
    assert (krum["attack"], krum["f"]) == ("alie", 24)
    assert (krum["server_mean"], krum["worker_mean"], krum["diff"]) == (81.0, 92.0, 11.0)
    assert krum["server_seeds"] == 2 and krum["worker_std"] == pytest.approx(math.sqrt(8), abs=1e-4)
    median = csv[csv["defense"] == "trimmed_mean"].iloc[0]
    assert median["server_mean"] == 70.0 and pd.isna(median["worker_mean"]) and pd.isna(median["diff"])
    lines = (results / "momentum.md").read_text().splitlines()
    assert lines[2] == "| Dataset | Attack | Defense | f | lr | server | worker | Δ (worker − server) |"
    assert lines[4] == "| MNIST | alie | krum | 24 | 0.02 | – | 50.0 (1) | – |"
    assert lines[5] == "| MNIST | alie | krum | 24 | 0.5 | 81.0 ± 1.4 (2) | 92.0 ± 2.8 (2) | +11.0 |"
    assert lines[6] == "| Fashion-MNIST | alie | trimmed_mean | 12 | – | 70.0 (1) | – | – |"


def test_latex_is_a_well_formed_tabular(written):
    results, _ = written
    for stem in ("table1", "table2", "momentum"):
        tex = (results / f"{stem}.tex").read_text()
        body = [line for line in tex.splitlines() if line.endswith(r"\\")]
        assert r"\begin{tabular}" in tex and tex.rstrip().endswith(r"\end{tabular}")
        assert not set("±Δ–−†α") & set(tex), stem  # written as $\pm$, $\Delta$, --, $-$, $^\dagger$
        text = re.sub(r"(?m)^% ", "", tex).replace(" & ", " ")  # leave out comment marks and separators
        assert not re.search(r"(?<!\\)[_%&]", text), stem  # _ % & escaped
        columns = len(tex.split(r"\begin{tabular}{")[1].split("}")[0])
        data = [line for line in body if r"\multicolumn" not in line]
        assert all(line.count(" & ") == columns - 1 for line in data), stem
    table1 = (results / "table1.tex").read_text()
    assert r"96.0 $\pm$ 1.0 (3) & 96.1 & $-0.1$" in table1
    assert r"\multicolumn{3}{c}{MNIST}" in table1 and r"86.0 $\pm$ 1.4 (2)$^\dagger$" in table1


def test_plots_are_written(written):
    results, out = written
    pngs = ["accuracy_table1_mnist", "accuracy_table1_digits", "accuracy_table2_mnist", "variance_norm_mnist"]
    for stem in pngs:
        path = results / f"{stem}.png"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"wrote {path}" in out
    # no metrics with the ratio for the Fashion-MNIST momentum run: no plot
    assert not (results / "variance_norm_fashion_mnist.png").exists()
    assert not list(results.glob(".*.tmp"))


def test_doubtful_runs_are_reported(results: Path, capsys):
    write_run(results, attack="none", m=0, seed=0, max_test_acc=90.0, name="table1", config_hash="other-lr")
    assert report.main(["--results-dir", str(results)]) == 0
    err = capsys.readouterr().err
    assert "table1: row=No Attack, dataset=mnist holds the same seed more than once" in err
    assert "table1: 1 run(s) with a defense/attack pair not in the table left out" in err  # the ipm run


def test_paper_numbers_file_holds_the_alie_tables():
    paper = pd.read_csv(report.REPO_PAPER_NUMBERS)
    assert list(paper.columns) == ["paper", "table", "row", "dataset", "metric", "value", "source"]
    assert not paper.duplicated(["paper", "table", "row", "dataset", "metric"]).any()
    assert len(paper) == 15 + 27
    value = paper.set_index(["table", "row", "dataset", "metric"])["value"]
    assert value[("table1", "Krum", "cifar100", "max_test_acc")] == 16.9
    assert value[("table2", "No Defense", "cifar100", "max_backdoor_acc")] == 0.0
    assert value[("table2", "Bulyan", "cifar10", "max_backdoor_acc")] == 84.3
    assert set(paper["source"]) == {
        "Baruch et al. 2019, A Little Is Enough (NeurIPS), Table 1",
        "Baruch et al. 2019, A Little Is Enough (NeurIPS), Table 2",
    }


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_tables.py"), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


def test_script_writes_the_tables(results: Path):
    done = run_script("--results-dir", str(results))
    assert done.returncode == 0, done.stderr
    assert TABLE1_HEADER in done.stdout
    for stem in ("table1", "table2", "momentum"):
        for ext in ("md", "csv", "tex"):
            assert f"wrote {results / f'{stem}.{ext}'}" in done.stdout


def test_script_without_runs_or_without_a_results_dir(tmp_path: Path):
    empty = run_script("--results-dir", str(tmp_path))
    assert empty.returncode == 0
    assert empty.stdout.strip().splitlines() == [
        f"byzrun tables: no runs found (no summary.csv under {tmp_path}/runs/); produce some with "
        "e.g. `byzrun -m experiment=table1_mnist`, then run `make tables` again."
    ]
    assert not list(tmp_path.iterdir())
    gone = run_script("--results-dir", str(tmp_path / "nowhere"))
    assert gone.returncode == 1 and "does not exist" in gone.stderr
