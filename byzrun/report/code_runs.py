"""The ALIE authors' own code's runs, beside byzrun's "(ALIE code)" rows.

The authors' code (a separate program, not part of byzrun) writes one text log per run (its `-o FILE`
option): line 1 is a Python dict of the run's settings, then a `Test set: [ r] ... (a%)` line after
every fifth round (r the 0-based round) and the last, for a backdoor run also a `##Test malicious
net: [POST] ... (b%)` line after each test (the backdoor accuracy on the attacker's own 2,000 triggered
images; the other `##Test malicious net` lines are the attacker's training), and `Max accuracy: x` once
the run has finished.

- `read_logs` / `tidy` (scripts/alie_code_runs.py): every finished log as one line of a tidy CSV per
  byzrun row it stands for (a z=0 run has no attacker: the "No Attack" row of both tables);
- `read_code_runs` / `add_code_runs` (make tables): a paper-table section gets the runs of its table,
  dataset, n, m and rounds (attacked rows: and its z) in extra columns, see byzrun.report.render.
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from byzrun.report.captions import attack_z
from byzrun.report.collect import warn
from byzrun.report.tables import Row, Section, stats

CODE_RUNS = "alie_code_runs.csv"
COLUMNS = [
    "table", "dataset", "row", "run", "n", "m", "z", "rounds", "batch_size", "lr", "max_test_acc",
    "final_test_acc", "max_backdoor_acc_own", "final_backdoor_acc_own", "evaluations",
]  # fmt: skip
CODE_METRICS = ("max_test_acc", "max_backdoor_acc_own")
DEFENSE_ROWS = {"NoDefense": "No Defense", "TrimmedMean": "Trimmed Mean", "Krum": "Krum", "Bulyan": "Bulyan"}
TEST_LINE = re.compile(r"^Test set: \[\s*(\d+)\] .*\(([0-9.]+)%\)\s*$")
BACKDOOR_LINE = re.compile(r"^##Test malicious net: \[POST\] .*\(([0-9.]+)%\)\s*$")
FINISHED_LINE = re.compile(r"^Max accuracy: ([0-9.]+)\s*$")
OBJECT_REPR = re.compile(r"<[^<>']*>")  # innermost of <function main.<locals>.my_print at 0x7f...>


# ---------------------------------------------------------------- the logs


class Skipped(Exception):
    """A log that gives no finished run; the message says why."""


class NotALog(Skipped):
    """A file without the settings line (e.g. the run's stderr)."""


@dataclass(frozen=True)
class Log:
    """One finished run of the authors' code: its file stem, settings and printed percentages."""

    run: str
    settings: dict
    test: list[str]
    backdoor: list[str]


def read_settings(line: str) -> dict:
    """Line 1, the dict of main()'s arguments; the function object in it (not a literal) as None."""
    text, before = line.strip(), None
    while text != before:
        text, before = OBJECT_REPR.sub("None", text), text
    try:
        settings = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        settings = None
    if not isinstance(settings, dict) or "num_std" not in settings:
        raise NotALog("no settings line")
    return settings


def read_log(path: Path) -> Log:
    """A log's settings and the printed test and backdoor accuracies; Skipped when it has no settings
    line or has not finished (no 'Max accuracy' line: still running or killed). The code appends to
    its -o file: of a file written by several runs, the last run is read (with a warning)."""
    lines = path.read_text(errors="replace").splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("{")]
    if len(starts) > 1:
        warn(f"{path.name}: {len(starts)} runs appended to one file, the last one read")
    lines = lines[starts[-1] :] if starts and starts[0] == 0 else lines
    settings = read_settings(lines[0] if lines else "")
    finished = [m for m in map(FINISHED_LINE.match, lines) if m]
    if not finished:
        raise Skipped("unfinished (no 'Max accuracy' line)")
    test = [m[2] for m in map(TEST_LINE.match, lines) if m]
    if not test:
        raise Skipped("no 'Test set' line")
    backdoor = [m[1] for m in map(BACKDOOR_LINE.match, lines) if m]
    if abs(float(finished[-1][1]) - max(map(float, test))) > 0.01:
        warn(f"{path.name}: 'Max accuracy: {finished[-1][1]}' is not the highest 'Test set' value")
    return Log(path.stem, settings, test, backdoor)


def code_rows(settings: dict) -> list[tuple[str, str]]:
    """The (table, byzrun row label) pairs a run stands for; Skipped when none."""
    defense, z = str(settings.get("defense")), float(settings["num_std"])
    if z == 0:
        if defense != "NoDefense":
            raise Skipped(f"z=0 with defense {defense}: no byzrun row")
        return [("table1", "No Attack"), ("table2", "No Attack")]
    if defense not in DEFENSE_ROWS:
        raise Skipped(f"defense {defense}: no byzrun row")
    table = "table2" if settings.get("backdoor_attack") else "table1"
    plain = table == "table1" and defense == "NoDefense"
    return [(table, DEFENSE_ROWS[defense] + ("" if plain else " (ALIE code)"))]


def highest(values: list[str]) -> str:
    """The largest of printed percentages, as printed ('' for none)."""
    return max(values, key=float) if values else ""


def code_lines(log: Log) -> list[dict]:
    """A log's lines of the tidy CSV, one per (table, row) it stands for."""
    s = log.settings
    users = int(s["users_count"])
    common = {
        "dataset": str(s["dataset"]).lower(),
        "run": log.run,
        "n": users,
        "m": int(float(s["mal_prop"]) * users),
        "z": float(s["num_std"]),
        "rounds": int(s["epochs"]),
        "batch_size": int(s["batch_size"]),
        "lr": float(s["learning_rate"]),
        "max_test_acc": highest(log.test),
        "final_test_acc": log.test[-1],
        "max_backdoor_acc_own": highest(log.backdoor),
        "final_backdoor_acc_own": log.backdoor[-1] if log.backdoor else "",
        "evaluations": len(log.test),
    }
    return [{"table": table, "row": row, **common} for table, row in code_rows(s)]


def natural(text: str) -> tuple:
    """Sort key: digit runs as numbers (out_krum_9 before out_krum_10)."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text))


def read_logs(logs: Path) -> tuple[list[dict], list[str], list[str]]:
    """The tidy lines of every finished *.txt log in `logs` (sorted by table, dataset, row, run), one
    'name: reason' per log skipped, and the names of the *.txt files without a settings line."""
    lines, skipped, ignored = [], [], []
    for path in sorted(logs.glob("*.txt")):
        try:
            lines += code_lines(read_log(path))
        except NotALog:
            ignored.append(path.name)
        except Skipped as why:
            skipped.append(f"{path.name}: {why}")
        except (KeyError, ValueError, TypeError) as err:
            skipped.append(f"{path.name}: settings without {err}")
    lines.sort(key=lambda c: (c["table"], c["dataset"], c["row"], natural(c["run"])))
    return lines, skipped, ignored


def tidy(lines: list[dict]) -> str:
    """The CSV text (the header alone when there is no line)."""
    return pd.DataFrame(lines, columns=COLUMNS).to_csv(index=False, lineterminator="\n")


# ---------------------------------------------------------------- the report


def read_code_runs(path: Path) -> pd.DataFrame | None:
    """alie_code_runs.csv, or None when absent or unusable (with a warning)."""
    if not path.is_file():
        return None
    try:
        frame = pd.read_csv(path, dtype={"table": str, "dataset": str, "row": str, "run": str})
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        warn(f"{path}: unreadable ({type(err).__name__}), authors' code runs left out")
        return None
    absent = [c for c in COLUMNS if c not in frame]
    if absent:
        warn(f"{path}: missing column(s) {', '.join(absent)}, authors' code runs left out")
        return None
    return frame


def same(a, b) -> bool:
    number_a, number_b = pd.to_numeric(a, errors="coerce"), pd.to_numeric(b, errors="coerce")
    return not pd.isna(number_a) and not pd.isna(number_b) and math.isclose(number_a, number_b)


def section_z(section: Section) -> list:
    """The z of the section's attacked runs (empty when none has one)."""
    values = (attack_z(r.settings) for row in section.rows if row.attacked for r in row.runs)
    return [v for v in values if v is not None]


def protocol_match(section: Section, code: pd.DataFrame) -> pd.Series:
    """Which code runs have the section's table, dataset, n, m and rounds (the section has runs)."""
    settings = next(r.settings for row in section.rows for r in row.runs)
    match = (code["table"] == section.table) & (code["dataset"] == section.dataset)
    for key in ("n", "m", "rounds"):
        match &= code[key].map(lambda v, key=key: same(v, settings.get(key)))
    return match


def row_match(section: Section, row: Row, code: pd.DataFrame) -> pd.Series:
    """Which of the section's code runs belong in a row: its label without a suffix and, for an attacked
    row, a z of its runs (a row without runs: of the section's attacked runs)."""
    match = code["row"] == row.base
    if row.attacked:
        own = [v for v in (attack_z(r.settings) for r in row.runs) if v is not None]
        z_values = own or section_z(section)
        match &= code["z"].map(lambda v: any(same(v, z) for z in z_values))
    return match


def code_cell(members: pd.DataFrame, column: str) -> dict:
    """The code's runs of one row for one metric: stats over runs and their values in run order."""
    values = [(run, float(v), False) for run, v in zip(members["run"], pd.to_numeric(members[column]))]
    numbers = stats(values)
    shown = " · ".join(f"{run} {'–' if math.isnan(v) else f'{v:.1f}'}" for run, v, _ in values)
    return {"code_mean": numbers["mean"], "code_std": numbers["std"], "code_runs": numbers["seeds"],
            "code_per_run": shown}  # fmt: skip


def add_to_section(section: Section, code: pd.DataFrame) -> set:
    """Code columns in a paper section's frame when a row has code runs; the placed indices of `code`."""
    if section.spec is None or not any(row.runs for row in section.rows):
        return set()
    code = code[protocol_match(section, code)]
    matches = {row.label: code[row_match(section, row, code)] for row in section.rows}
    placed = {i for members in matches.values() for i in members.index}
    if not placed:
        return placed
    metrics = tuple(m.best for m in section.spec.metrics if m.best in CODE_METRICS)
    extra = []
    for line in section.frame.to_dict("records"):
        members = matches.get(line["row"], code.iloc[:0])
        numbers = code_cell(members, line["metric"]) if line["metric"] in metrics else {"code_runs": 0}
        numbers = {"code_mean": math.nan, "code_std": math.nan, "code_per_run": "", **numbers}
        numbers["code_diff"] = line["mean"] - numbers["code_mean"]
        extra.append(numbers)
    columns = ["code_mean", "code_std", "code_runs", "code_per_run", "code_diff"]
    section.frame = pd.concat([section.frame, pd.DataFrame(extra, columns=columns)], axis=1)
    section.code_metrics = metrics
    return placed


def add_code_runs(sections: list[Section], code: pd.DataFrame) -> None:
    """Each paper section's code columns (a row's runs in run order); a warning names the code runs
    placed in no section."""
    code = code.loc[sorted(code.index, key=lambda i: natural(str(code.at[i, "run"])))]
    placed = set().union(*(add_to_section(section, code) for section in sections))
    left = [i for i in code.index if i not in placed]
    if left:
        names = ", ".join(f"{code.at[i, 'table']}/{code.at[i, 'row']}/{code.at[i, 'run']}" for i in left)
        warn(
            f"{len(left)} of {len(code)} authors' code run line(s) in {CODE_RUNS} match no section's "
            f"table, dataset, n, m, rounds (and z), left out: {names}"
        )
