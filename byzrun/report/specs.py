"""The tables byzrun reproduces, as data: rows in the paper's order, metrics, protocol rounds, notes.

A paper table's rows are matched by the run's `row` label. The paper's value for a row is looked up by
that label without a trailing convention tag (" (paper)" or " (ALIE code)"), so both conventions of a
rule sit beside the paper's one number. The papers' numbers live in paper_numbers.csv next to this
module (columns paper, table, row, dataset, metric, value, source).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

PAPER_NUMBERS = Path(__file__).resolve().with_name("paper_numbers.csv")
PAPER_COLUMNS = ["paper", "table", "row", "dataset", "metric", "value", "source"]
CONVENTION_TAGS = (" (paper)", " (ALIE code)")
DATASET_ORDER = ("mnist", "fashion_mnist", "cifar10", "cifar100", "digits")
DATASET_LABELS = {
    "mnist": "MNIST",
    "fashion_mnist": "Fashion-MNIST",
    "cifar10": "CIFAR10",
    "cifar100": "CIFAR100",
    "digits": "digits",
}
PLACEMENTS = ("server", "worker")


@dataclass(frozen=True)
class Metric:
    """One reported quantity: the summary columns of its maximum and final value, its column heading,
    its name in paper_numbers.csv, and whether unattacked rows have it."""

    best: str
    final: str
    label: str
    paper: str
    attacked_only: bool = False


@dataclass(frozen=True)
class TableSpec:
    """One paper table: key (the runs' `name`), title, source, row labels in order, metrics, the
    paper's number of rounds, and a one-line note on the convention behind the paper's numbers."""

    key: str
    title: str
    source: str
    rows: tuple[str, ...]
    metrics: tuple[Metric, ...]
    protocol_rounds: int
    convention_note: str


TEST_ACC = Metric("max_test_acc", "final_test_acc", "", "max_test_acc")
TABLE1 = TableSpec(
    key="table1",
    title="ALIE Table 1 (convergence prevention)",
    source="A Little Is Enough (Baruch et al. 2019), Table 1",
    rows=(
        "No Attack",
        "No Defense",
        "Trimmed Mean (paper)",
        "Trimmed Mean (ALIE code)",
        "Krum (paper)",
        "Krum (ALIE code)",
        "Bulyan (paper)",
        "Bulyan (ALIE code)",
    ),
    metrics=(TEST_ACC,),
    protocol_rounds=300,
    convention_note=(
        "The paper's numbers come from the ALIE authors' public code, whose rules are the (ALIE "
        "code) rows: byzrun matches that code step for step (scripts/compare_alie_code.py), and "
        "only its Krum, with plain distances, is captured by ALIE at z=1.5, as the paper's Krum is; "
        "with squared distances (Krum (paper)) no Byzantine row was selected at any evaluation "
        "(byz_selected is logged at evaluations only). "
        "Evidence: results/paper/README.md."
    ),
)
TABLE2 = TableSpec(
    key="table2",
    title="ALIE Table 2 (backdoor)",
    source="A Little Is Enough (Baruch et al. 2019), Table 2",
    rows=(
        "No Attack",
        "No Defense (paper)",
        "No Defense (ALIE code)",
        "Trimmed Mean (paper)",
        "Trimmed Mean (ALIE code)",
        "Krum (paper)",
        "Krum (ALIE code)",
        "Bulyan (paper)",
        "Bulyan (ALIE code)",
    ),
    metrics=(
        Metric("max_test_acc", "final_test_acc", "benign", "max_test_acc"),
        Metric("max_backdoor_acc", "final_backdoor_acc", "backdoor (test images)", "max_backdoor_acc", True),
        Metric(
            "max_backdoor_acc_own",
            "final_backdoor_acc_own",
            "backdoor (attacker's images)",
            "max_backdoor_acc",
            True,
        ),
    ),
    protocol_rounds=300,
    convention_note=(
        "The paper's numbers come from the ALIE authors' public code: its rules and its backdoor "
        "attacker are the (ALIE code) rows, and it reports the backdoor accuracy on the attacker's "
        "own triggered training images (the attacker's images columns). "
        "Evidence: results/paper/README.md."
    ),
)
PAPER_TABLES = (TABLE1, TABLE2)
MOMENTUM = "momentum"
MOMENTUM_TITLE = "Distributed Momentum: highest top-1 test accuracy (%), server vs worker momentum"
MOMENTUM_SOURCE = "Distributed Momentum for Byzantine-resilient SGD (El Mhamdi et al. 2021)"
TABLE_ORDER = (TABLE1.key, TABLE2.key, MOMENTUM)


def paper_row(label: str) -> str:
    """The paper's row for a row label: the label without a trailing convention tag."""
    for tag in CONVENTION_TAGS:
        if label.endswith(tag):
            return label[: -len(tag)]
    return label


def dataset_label(dataset: str) -> str:
    return DATASET_LABELS.get(dataset, dataset)


def dataset_rank(dataset: str) -> tuple[int, str]:
    """Sort key: byzrun's datasets in their usual order, the others after them alphabetically."""
    order = list(DATASET_ORDER)
    return (order.index(dataset), "") if dataset in order else (len(order), dataset)


def load_paper_numbers(path: Path = PAPER_NUMBERS) -> dict[tuple[str, str, str, str], float]:
    """The papers' numbers by (table, row, dataset, metric). Raises OSError or a pandas error when the
    file cannot be read, ValueError when it lacks a column."""
    frame = pd.read_csv(path)
    absent = [c for c in PAPER_COLUMNS if c not in frame]
    if absent:
        raise ValueError(f"{path}: missing column(s) {', '.join(absent)}")
    keys = zip(frame["table"], frame["row"], frame["dataset"], frame["metric"])
    return {tuple(map(str, key)): float(value) for key, value in zip(keys, frame["value"])}
