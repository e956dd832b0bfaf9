"""The READMEs' numbers about results against the committed runs (byzrun.report.claims, .quotes)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from byzrun.report import quotes
from byzrun.report.claims import Claim, claims

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
READMES = quotes.checked_files(ROOT)  # every markdown file whose numbers are checked


@pytest.fixture(scope="module")
def known() -> dict[str, Claim]:
    return claims(RESULTS)


def read_raw_runs() -> pd.DataFrame:
    """Every run of results/paper: its summary row and the config keys the checks below need, read
    without byzrun."""
    lines = []
    for summary in sorted((RESULTS / "paper").glob("runs/*/summary.csv")):
        config = yaml.safe_load((summary.parent / "config.yaml").read_text())
        row = pd.read_csv(summary).iloc[0].to_dict()
        row.update(
            directory=summary.parent,
            placement=config["momentum"]["placement"],
            lr_=config["lr"],
            f=config["m"],
            table=config.get("name"),
            label=config.get("row"),
        )
        lines.append(row)
    return pd.DataFrame(lines)


@pytest.fixture(scope="module")
def raw_runs() -> pd.DataFrame:
    return read_raw_runs()


def test_the_checked_files_include_every_readme_that_quotes_runs():
    names = {str(path.relative_to(ROOT)) for path in READMES}
    assert {"README.md", "results/paper/README.md", "results/no_avx512/README.md"} <= names


def test_the_readmes_quote_the_runs(known):
    """Every marked number in the READMEs is the runs' number, every result-looking number is marked,
    and the summary tables are the runs' (the messages say which number and where)."""
    problems = []
    for path in READMES:
        text = path.read_text()
        if quotes.with_tables(text, RESULTS) != text:
            problems.append(f"{path}: a summary table differs from the runs")
        problems += quotes.check_text(text, known, str(path.relative_to(ROOT)))
    assert problems == []


def test_momentum_counts_match_a_direct_count(known, raw_runs):
    """Pairs won by worker momentum and broken cells, recounted from summary.csv and config.yaml alone."""
    runs = raw_runs
    runs = runs[runs["table"] == "momentum"]
    for lr in (0.5, 0.02):
        at = runs[runs["lr_"] == lr]
        wide = at.pivot_table(
            index=["attack", "defense", "f", "seed"], columns="placement", values="max_test_acc"
        )
        cells = wide.groupby(level=[0, 1, 2]).mean()
        broken = cells[(cells["server"] <= 20) & (cells["worker"] <= 20)].index
        kept = wide[[index[:3] not in set(broken) for index in wide.index]]
        assert known[f"m.{lr:g}.broken"].value == len(broken) == 1
        assert known[f"m.{lr:g}.kept_pairs"].value == len(kept)
        assert known[f"m.{lr:g}.kept_pairs_won"].value == (kept["worker"] > kept["server"]).sum()
    # with the broken cells counted, as the reviewer counted: 106 and 104 of 110
    all_half = runs[runs["lr_"] == 0.5].pivot_table(
        index=["attack", "defense", "f", "seed"], columns="placement", values="max_test_acc"
    )
    assert (all_half["worker"] > all_half["server"]).sum() == 106 and len(all_half) == 110


def test_krum_capture_counts_match_the_metrics(known, raw_runs):
    """305 evaluations of Krum (paper) without a Byzantine row; the code's Krum's rates per seed."""
    runs = raw_runs
    for label, key in (("Krum (paper)", "t1.krum_paper"), ("Krum (ALIE code)", "t1.krum_code")):
        members = runs[(runs["table"] == "table1") & (runs["label"] == label)]
        selected = [pd.read_csv(d / "metrics.csv")["byz_selected"] for d in members["directory"]]
        assert known[f"{key}.evaluations"].value == sum(len(s) for s in selected)
        assert known[f"{key}.captured"].value == sum(int((s > 0).sum()) for s in selected)
        rates = [100 * (s > 0).mean() for s in selected]
        assert known[f"{key}.capture_pct_max"].value == pytest.approx(max(rates))
    assert known["t1.krum_paper.captured"].value == 0
    assert known["t1.krum_paper.evaluations"].value == 305


def test_table1_final_means_match_a_direct_mean(known, raw_runs):
    runs = raw_runs
    table1 = runs[runs["table"] == "table1"]
    for label, key in (("No Defense", "no_defense"), ("Bulyan (ALIE code)", "bulyan_code")):
        finals = table1[table1["label"] == label]["final_test_acc"]
        assert known[f"t1.{key}.final"].value == pytest.approx(finals.mean(), abs=1e-9)
        assert known[f"t1.{key}.final_sd"].value == pytest.approx(finals.std(ddof=1), abs=1e-9)


def test_one_rounding_rule_in_tables_and_text(known):
    """97.25 (exact in binary) reads 97.2 in the claims and in the committed table alike."""
    claim = known["code.out_bd_nodef_3.max"]
    assert claim.value == 97.25 and claim.text == "97.2"
    assert "out_bd_nodef_3 97.2 ·" in (RESULTS / "paper" / "table2_mnist.md").read_text()
    assert known["t2.no_defense_code.own.code_diff"].text == "+0.8"  # from the means, not rounded ones


def test_krum_is_lowest_on_max_only_and_within_one_spread_of_bulyan(known):
    assert known["t1.lowest_max"].text == "Krum (ALIE code)"
    gap = known["t1.krum_code.below_bulyan_code"].value
    assert 0 < gap < known["t1.krum_code.max_sd"].value
    assert known["t1.krum_code.final"].value > known["t1.collapsing.final_max"].value


def test_the_distance_argument_thresholds(known):
    """z above which squared-distance Krum shuns the attackers, and below which plain Krum picks them."""
    z_squared, z_plain = known["krum_arg.z_squared"].value, known["krum_arg.z_plain"].value
    assert 26 * (1 + z_squared**2) == pytest.approx(74)
    assert 26 * math.sqrt(1 + z_plain**2) == pytest.approx(37 * math.sqrt(2))


TEXT = {
    "a.max": Claim("a.max", 84.0, "84.0"),
    "a.n": Claim("a.n", 8, "8"),
    "a.of": Claim("a.of", 10, "10"),
    "a.d": Claim("a.d", 0.8, "+0.8"),
}


@pytest.mark.parametrize(
    "passage, wrong",
    [
        ("Krum reaches 84.0 (Δ +0.8) in 8 of 10 seeds. <!-- quotes: a.max a.d a.n a.of -->", []),
        ("Krum reaches 84.0 in 8 of 10 seeds. <!-- quotes: a.max a.n -->", ["10 is not a claim"]),
        ("Krum reaches 84.1. <!-- quotes: a.max -->", ["a.max is 84.0", "84.1 is not a claim"]),
        ("Krum reaches 84.0 and final 76.3. <!-- quotes: a.max -->", ["76.3 is not a claim"]),
        (
            "It won in 18 of 20 seeds. <!-- quotes: a.n -->",
            ["a.n is 8", "18 is not a claim", "20 is not a claim"],
        ),
        ("Krum reaches 84.0 and 76.3.", ["84.0 has no marker", "76.3 has no marker"]),
        ("n=51, z=1.5, lr 0.5 and `lr=0.02`. <!-- quotes: setup -->", []),
        ("Krum reaches 1.5% at z=1.5. <!-- quotes: a.max -->", ["a.max is 84.0", "1.5 is not a claim"]),
        ("Krum reaches 84.0. <!-- quotes: a.nothing -->", ["unknown claim a.nothing", "84.0 is not a claim"]),
    ],
)
def test_check_finds_every_wrong_or_unmarked_number(passage, wrong):
    problems = quotes.check_text(passage, TEXT, "README.md")
    assert len(problems) == len(wrong)
    for message, expected in zip(problems, wrong):
        assert expected in message


def test_summary_tables_show_the_committed_tables_cells():
    """The READMEs' summary tables read the same as the full tables `make tables` committed."""
    full = {}
    for line in (RESULTS / "paper" / "table1_mnist.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| ") and len(cells) > 4:
            full[cells[0]] = cells
    summary = quotes.table1(RESULTS).splitlines()[2:]
    assert len(summary) == 8
    for line in summary:
        row, best, final, code, paper, diff = (c.strip() for c in line.strip("|").split("|"))
        committed = full[row]
        assert (best, final, paper, diff, code) == (
            committed[1],
            committed[3],
            committed[5],
            committed[6],
            committed[7],
        )
