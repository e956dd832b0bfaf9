"""The README's speed numbers against the committed bench run (results/bench; byzrun.report.bench), and
`make bench` writing that run's files where BENCH_OUT says."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import torch

from byzrun.bench.before import NOISE
from byzrun.bench.bf16 import compare
from byzrun.bench.machine import cpu_info
from byzrun.report import bench

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
BENCH = RESULTS / "bench"


class Out(dict):
    """A stand-in for byzrun.report.claims.Claims: key -> (value, text)."""

    def add(self, key, value, text):
        assert key not in self, key
        self[key] = (float(value), text(value) if callable(text) else text)

    def count(self, key, value):
        self.add(key, value, str(int(value)))


@pytest.fixture(scope="module")
def known() -> Out:
    out = Out()
    bench.add_bench(out, RESULTS)
    return out


def test_the_committed_run_has_every_file_the_readme_reads():
    """(aggregation.csv: no README number reads it yet.)"""
    names = (
        "machine.json",
        "rounds.csv",
        "deterministic.csv",
        "before.csv",
        "before_1thread.csv",
        "bf16.csv",
        "byzfl.csv",
    )
    assert [name for name in names if not (BENCH / name).exists()] == []


def test_the_machine_file_says_which_machine_and_how_busy():
    info = json.loads((BENCH / "machine.json").read_text())
    assert isinstance(info["avx512"], bool) and isinstance(info["avx2"], bool)
    assert info["cpu"] and info["torch"] and info["threads"] >= 1 and info["cores"] >= 1
    assert len(info["commit"]) >= 40
    for phase in ("start", "end"):
        assert len(info[phase]["load"]) == 3 and info[phase]["date"] < "9999"
    assert info["start"]["date"] <= info["end"]["date"]


def test_cpu_info_reads_the_avx512_flags(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("model name\t: Some Xeon\nflags\t\t: fpu avx2 avx512f avx512bw\n\nmodel name\t: x\n")
    assert cpu_info(cpuinfo) == {
        "cpu": "Some Xeon",
        "avx2": True,
        "avx512": True,
        "avx512_flags": ["avx512bw", "avx512f"],
    }
    cpuinfo.write_text("model name\t: AMD EPYC\nflags\t\t: fpu avx avx2\n")
    assert cpu_info(cpuinfo)["avx512"] is False


def test_round_claims_are_the_csv_times_ratios(known):
    """Each ratio recomputed from the CSV's times (ms), not from its ratio columns."""
    rounds = pd.read_csv(BENCH / "rounds.csv")
    assert set(rounds["model"].map(bench.model_key)) == {"mlp", "cnn", "wrn"}
    for line in rounds.to_dict("records"):
        key = f"bench.rounds.{bench.model_key(line['model'])}"
        assert known[f"{key}.chosen_over_loop"][0] == pytest.approx(line["loop_ms"] / line["chosen_ms"])
        assert known[f"{key}.chosen_over_full"][0] == pytest.approx(line["full_ms"] / line["chosen_ms"])
        assert known[f"{key}.chosen_time_over_single"][0] == pytest.approx(
            line["chosen_ms"] / line["single_ms"]
        )
    mlp = rounds[rounds["model"] == "mlp"].iloc[0]
    gap = known["bench.rounds.mlp.same_path_gap_pct"]
    assert gap[0] == pytest.approx(100 * abs(mlp["full_ms"] / mlp["chosen_ms"] - 1))


def test_deterministic_claims_are_the_pinned_times_over_the_default(known):
    cost = pd.read_csv(BENCH / "deterministic.csv")
    assert set(cost["model"]) == {"mlp", "cnn"}
    for line in cost.to_dict("records"):
        key = f"bench.deterministic.{line['model']}"
        assert known[f"{key}.slowdown"][0] == pytest.approx(line["deterministic_ms"] / line["default_ms"])
        assert known[f"{key}.slowdown_1thread"][0] == pytest.approx(
            line["deterministic_ms"] / line["default_1thread_ms"]
        )
        assert known[f"{key}.speed"][0] * known[f"{key}.slowdown"][0] == pytest.approx(1)
        assert known[f"{key}.threads_cost"][0] == pytest.approx(
            line["default_ms"] / line["default_1thread_ms"]
        )


def test_before_claims_cover_every_rule_at_both_thread_counts(known):
    frames = [pd.read_csv(BENCH / name) for name in ("before.csv", "before_1thread.csv")]
    assert frames[1]["threads"].eq(1).all() and frames[0]["threads"].gt(1).all()
    both = pd.concat(frames)
    for line in both.to_dict("records"):
        key = f"bench.before.{bench.rule_key(line['rule'])}.d{line['d']}.t{line['threads']}.speedup"
        assert known[key][0] == pytest.approx(line["before_ms"] / line["now_ms"])
    assert known["bench.before.rows"][0] == len(both)
    assert known["bench.before.slower"][0] == sum(both["before_ms"] / both["now_ms"] < 1 - NOISE)
    identical = (both["max_abs_diff"] == 0).all()
    assert (known["bench.before.max_abs_diff"][1] == "bit-identical") == identical


def test_rule_key_names_the_variants():
    assert bench.rule_key("centered_clipping(center=zero)") == "centered_clipping.zero"
    assert bench.rule_key("krum") == "krum"
    assert bench.model_key("wrn(depth=10,widen=1)") == "wrn"
    assert bench.model_label("wrn(depth=10,widen=1)") == "WRN-10-1" and bench.model_label("mlp") == "MLP"


BEFORE = pd.DataFrame(
    {
        "rule": ["krum", "median", "krum", "median", "krum", "median"],
        "d": [79510, 79510, 1_000_000, 1_000_000, 79510, 79510],
        "threads": [2, 2, 2, 2, 1, 1],
        "before_ms": [3.0, 10.0, 30.0, 100.0, 6.0, 20.0],
        "now_ms": [3.0, 5.0, 30.0, 40.0, 6.0, 8.0],
        "max_abs_diff": [0.0, 0.0, 0.0, 0.0, 0.0, 2.5e-7],
    }
)
BEFORE["speedup"] = BEFORE["before_ms"] / BEFORE["now_ms"]


def test_before_table_and_claims_of_a_known_run(tmp_path):
    (tmp_path / "bench").mkdir()
    BEFORE[BEFORE["threads"] == 2].to_csv(tmp_path / "bench" / "before.csv", index=False)
    BEFORE[BEFORE["threads"] == 1].to_csv(tmp_path / "bench" / "before_1thread.csv", index=False)
    assert bench.before_table(tmp_path) == (
        "| rule | d=79,510, 2 threads | d=1e6, 2 threads | d=79,510, 1 thread | max abs. difference |\n"
        "|---|---|---|---|---|\n"
        "| krum | 1.00 | 1.00 | 1.00 | 0 |\n"
        "| median | 2.00 | 2.50 | 2.50 | 2.5e-07 |\n"
    )
    out = Out()
    bench.add_bench(out, tmp_path)
    assert out["bench.before.median.d1000000.t2.speedup"] == (2.5, "2.50")
    assert out["bench.before.max_abs_diff"] == (2.5e-7, "2.5e-07")
    assert out["bench.before.faster"][0] == 3 and out["bench.before.slower"][0] == 0
    assert not any(key.startswith("bench.rounds") for key in out)  # no rounds.csv: no claims


def test_byzfl_table_lands_in_the_readme_block_from_its_csv(tmp_path):
    """byzfl.csv (what `make bench BENCH_OUT=results/bench` writes) becomes the README's table; an entry
    byzrun refuses reads `skipped`."""
    assert (
        bench.byzfl_table(tmp_path)
        == "(no results/bench/byzfl.csv yet: `make bench BENCH_OUT=results/bench` writes it)\n"
    )
    (tmp_path / "bench").mkdir()
    pd.DataFrame(
        {
            "entry": ["median", "median", "mda", "control(byzfl_mean)"],
            "kind": ["rule", "rule", "rule", "control"],
            "d": [79510, 1_000_000, 79510, 79510],
            "byzrun_torch_ms": [2.0, 20.0, math.nan, 1.0],
            "byzfl_torch_ms": [5.0, 30.0, math.nan, 1.03],
            "byzrun_numpy_ms": [2.0, 20.0, math.nan, 1.0],
            "byzfl_numpy_ms": [1.8, 40.0, math.nan, 0.98],
            "ratio_torch": [2.5, 1.5, math.nan, 1.03],
            "ratio_numpy": [0.9, 2.0, math.nan, 0.98],
            "skipped": [None, None, "f too large", None],
        }
    ).to_csv(tmp_path / "bench" / "byzfl.csv", index=False)
    assert bench.byzfl_table(tmp_path) == (
        "| entry | kind | torch's order, d=79,510 | numpy's order, d=79,510 | torch's order, d=1e6 "
        "| numpy's order, d=1e6 |\n|---|---|---|---|---|---|\n"
        "| median | rule | 2.50 | 0.90 | 1.50 | 2.00 |\n"
        "| mda | rule | skipped | skipped | skipped | skipped |\n"
        "| control(byzfl_mean) | control | 1.03 | 0.98 | skipped | skipped |\n"
    )
    out = Out()
    bench.add_bench(out, tmp_path)
    assert out["bench.byzfl.median.d79510.ratio_torch"] == (2.5, "2.50")
    assert out["bench.byzfl.median.d79510.ratio_numpy"] == (0.9, "0.90")
    assert out["bench.byzfl.entries"][0] == 2 and out["bench.byzfl.faster"][0] == 1  # 0.90: not both
    assert out["bench.byzfl.lowest_ratio"] == (0.9, "0.90")  # the control is not an entry
    assert out["bench.byzfl.control.d79510.ratio_numpy"] == (0.98, "0.98")
    assert out["bench.byzfl.faster_torch"][0] == 2 and out["bench.byzfl.faster_numpy"][0] == 1
    assert out["bench.byzfl.longer.lowest_ratio_numpy"] == (2.0, "2.00")  # the 2 ms call (0.90) is short


def test_make_bench_writes_every_file_into_bench_out():
    """Every step of `make bench` writes into BENCH_OUT (ByzFL's table too), between the two machine
    records."""
    if shutil.which("make") is None:
        pytest.fail("make is not installed")
    done = subprocess.run(
        ["make", "-n", "bench", "BENCH_OUT=somewhere/else"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    steps = [line for line in done.stdout.splitlines() if "byzrun." in line]
    assert [s.split(" -m ")[1].split()[0] for s in steps] == [
        "byzrun.bench.machine",
        "byzrun.bench",
        "byzrun.bench.before",
        "byzrun.bench.before",
        "byzrun.bench.byzfl",
        "byzrun.bench.bf16",
        "byzrun.bench.machine",
    ]
    assert all("--out somewhere/else" in step for step in steps)
    assert "OMP_NUM_THREADS=1" in steps[3] and "--name before_1thread.csv" in steps[3]


def test_bf16_columns_of_a_known_change():
    """Every row doubled: the gradients and their mean move by 100%, every std doubles, and the share of
    |mu| < sigma stays."""
    G = torch.tensor([[1.0, -2.0, 0.5], [3.0, 0.0, 0.5], [2.0, 1.0, 0.5]])
    columns = compare(G, 2 * G)
    assert columns["grad_rel_error"] == pytest.approx(1) and columns["mean_rel_error"] == pytest.approx(1)
    assert columns["std_ratio_p10"] == columns["std_ratio_p90"] == pytest.approx(2)  # sigma=0 left out
    mu, sigma = G.double().mean(0), G.double().std(0)
    assert (
        columns["small_mu_share"]
        == columns["small_mu_share_bf16"]
        == float((mu.abs() < sigma).double().mean())
    )


def test_bf16_claims_are_the_csv_in_percent(known):
    frame = pd.read_csv(BENCH / "bf16.csv")
    assert set(frame["model"]) == {"mlp", "cnn", "wrn"}
    for line in frame.to_dict("records"):
        key = f"bench.bf16.{line['model']}"
        assert known[f"{key}.grad_rel_pct"][0] == pytest.approx(100 * line["grad_rel_error"])
        assert 0 < line["grad_rel_error"] < 0.2  # bfloat16's 8-bit mantissa: close, not equal
        assert line["std_ratio_p10"] <= line["std_ratio_p50"] <= line["std_ratio_p90"]


def test_the_fresh_clone_record_gives_minutes_and_the_test_count(tmp_path):
    record = {
        "cores": 2,
        "install": {"wall_s": 150.0, "cpu_s": 90.0},
        "test": {"wall_s": 267.0, "cpu_s": 489.0, "passed": 1363},
        "start": {"date": "2026-12-02T03:00:00+00:00", "load": [0.5, 0.4, 0.3]},
        "end": {"date": "2026-12-02T03:08:00+00:00", "load": [2.0, 1.5, 1.0]},
    }
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "fresh_clone.json").write_text(json.dumps(record))
    out = Out()
    bench.add_bench(out, tmp_path)
    assert out["bench.fresh_clone.test.wall_min"] == (267.0 / 60, "4.5")
    assert out["bench.fresh_clone.test.cpu_min"] == (489.0 / 60, "8.2")
    assert out["bench.fresh_clone.install.wall_min"][1] == "2.5"
    assert out["bench.fresh_clone.test.passed"] == (1363.0, "1,363")
    assert out["bench.fresh_clone.load_end"][1] == "2.0"


def test_fresh_clone_reads_the_count_from_pytests_last_line(tmp_path):
    from byzrun.bench.fresh_clone import passed

    log = tmp_path / "test.log"
    log.write_text("12 passed in 3.1s\n....\n1363 passed, 2 warnings in 267.02s (0:04:27)\n")
    assert passed(log) == 1363
    log.write_text("3 failed\n")
    with pytest.raises(SystemExit, match="no 'N passed' line"):
        passed(log)
