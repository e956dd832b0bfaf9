"""Exact numbers: accuracies as correct/total in float64, the data fingerprint in summary.csv."""

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from byzrun.exact import fingerprint, percent
from byzrun.train import run


def test_accuracy_is_correct_over_total_in_float64():
    hits = torch.zeros(10_000, dtype=torch.bool)
    hits[:9_740] = True
    assert percent(hits) == 97.4  # float32's mean gives 97.39999771118164
    assert repr(percent(hits)) == "97.4"
    assert np.isnan(percent(hits[:0]))


def test_the_fingerprint_tells_copies_of_a_dataset_apart():
    labels = np.arange(10, dtype=np.uint8)
    other = labels.copy()
    other[3] = 0
    assert fingerprint("mnist", labels) == fingerprint("mnist", labels.copy())
    assert fingerprint("mnist", labels) != fingerprint("mnist", other)
    assert fingerprint("mnist", labels) != fingerprint("mnist", labels[:9])


def test_the_summary_records_exact_accuracies_and_the_data_fingerprint(digits_cfg):
    summary = run(digits_cfg("rounds=10"))
    out = next(Path(str(digits_cfg().results_dir)).glob("runs/*"))
    frame = pd.read_csv(out / "summary.csv", dtype={"data_fingerprint": str})
    assert len(frame["data_fingerprint"].iloc[0]) == 12
    assert frame["data_fingerprint"].iloc[0] == summary["data_fingerprint"]
    test_size = 360  # the digits split: 1797 - int(0.8 * 1797)
    for acc in pd.read_csv(out / "metrics.csv")["test_acc"].dropna():
        correct = round(acc * test_size / 100)
        assert acc == 100.0 * correct / test_size  # the exact fraction, no float32 noise
