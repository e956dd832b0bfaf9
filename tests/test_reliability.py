"""The reliability suite: every bad input a user can type is one line and exit 2 before any data is
loaded; damaged data files are one line naming the file; a failing disk leaves finished results intact."""

from __future__ import annotations

import errno
import os
import pickle
import urllib.error

import pandas as pd
import pytest
import torch
import torchvision

import byzrun.train
from byzrun.data import load_data
from byzrun.errors import DatasetError
from tests.conftest import DIGITS, run_cli
from tests.test_data import dataset_cfg, make_mnist, write_cifar

CPU = torch.device("cpu")


@pytest.fixture
def no_data(monkeypatch):
    """Fail the test if a run gets as far as loading its data."""

    def load_data(*args, **kwargs):
        raise AssertionError("data loaded before the bad input was reported")

    monkeypatch.setattr(byzrun.train, "load_data", load_data)


BAD_INPUTS = [
    (["defense=foo"], "unknown defense 'foo'; choose one of: bulyan, bulyan_alie_code, centered_clipping"),
    (["attack=alei"], "unknown attack 'alei' (did you mean 'alie'?); choose one of: alie,"),
    (["dataset=mnsit"], "unknown dataset 'mnsit' (did you mean 'mnist'?)"),
    (["cell=table1/kru"], "unknown cell 'table1/kru' (did you mean 'table1/krum'?); choose one of: table1/"),
    (["experiment=tabel1_mnist"], "unknown experiment 'tabel1_mnist' (did you mean 'table1_mnist'?)"),
    (["hydra/launcher=nope"], "unknown launcher 'nope'; choose one of: basic,"),
    (["defense.foo=1"], "unknown key 'defense.foo'; defense Mean has: allow_out_of_bound, pre, name"),
    (["defense=krum", "defense.neighbor=1"], "unknown key 'defense.neighbor' (did you mean 'neighbours'?)"),
    (["+defense.foo=1"], "cannot build defense"),
    (["learning_rate=3"], "unknown key 'learning_rate'; the keys are: n, m, seed"),
    (
        ["momentum.bet=0.5"],
        "unknown key 'momentum.bet' (did you mean 'beta'?); momentum has: placement, beta",
    ),
    (["n=["], "cannot parse the command line"),
    (["defense=krum,median"], "'defense=krum,median' holds a comma: add -m"),
    (["n=abc"], "n must be an integer, got 'abc'"),
    (["lr=abc"], "lr must be a number, got 'abc'"),
    (["momentum.beta=high"], "momentum.beta must be a number"),
    (["momentum.nesterov=maybe"], "momentum.nesterov must be true or false"),
    (["progress=2"], "progress must be true or false"),
    (["grad_clip=abc"], "grad_clip must be a number or null"),
    (["diagnostics.sign_flip_z=abc"], "diagnostics.sign_flip_z must be a list of numbers"),
    (["m=11"], "m=11 Byzantine workers out of n=11"),
    (["device=tpu"], "unknown device 'tpu'"),
    (["device=cuda:7"], "device=cuda:7 but"),
    (["attack.z=2", "attack=alie"], None),  # a good one among them: must train (checked below)
]


@pytest.mark.parametrize("args,message", [case for case in BAD_INPUTS if case[1]])
def test_every_bad_input_is_one_line_and_exit_2_before_any_data(
    tmp_path, monkeypatch, capsys, no_data, args, message
):
    code = run_cli(monkeypatch, *DIGITS, "progress=false", f"results_dir={tmp_path / 'results'}", *args)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("byzrun: error: ") and message in err[0], err
    assert not (tmp_path / "results").exists()  # nothing started, no empty folders


def test_a_results_dir_that_is_a_file_or_not_writable_fails_first(tmp_path, monkeypatch, capsys, no_data):
    afile = tmp_path / "file"
    afile.write_text("x")
    for results_dir, message in [
        (afile, f"results_dir={afile} is a file, not a folder"),
        (afile / "sub", f"is under {afile}, a file"),
    ]:
        assert run_cli(monkeypatch, *DIGITS, f"results_dir={results_dir}") == 2
        assert message in capsys.readouterr().err
    real = os.access
    monkeypatch.setattr(
        os, "access", lambda path, mode: False if str(path) == str(tmp_path) else real(path, mode)
    )
    assert run_cli(monkeypatch, *DIGITS, f"results_dir={tmp_path / 'results'}") == 2
    assert f"cannot write in {tmp_path}; set results_dir" in capsys.readouterr().err


def test_a_damaged_gz_file_is_one_line_naming_it(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    make_mnist(raw, compress=True)
    path = raw / "train-images-idx3-ubyte.gz"
    damaged = bytearray(path.read_bytes())
    damaged[40:60] = b"\xff" * 20  # inside the deflate stream: zlib.error, not a header error
    path.write_bytes(bytes(damaged))
    with pytest.raises(DatasetError) as err:
        load_data(dataset_cfg("mnist", tmp_path), CPU)
    assert str(path) in str(err.value) and "download it again" in str(err.value)
    assert "\n" not in str(err.value)


def test_a_wrong_pickle_is_one_line_naming_it(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar(folder, [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"], b"labels")
    (folder / "test_batch").write_bytes(
        b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x03nox\x8c\x03Nox\x93."
    )
    with pytest.raises(DatasetError, match="cannot read .*test_batch"):
        load_data(dataset_cfg("cifar10", tmp_path), CPU)
    (folder / "test_batch").write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(DatasetError, match="cannot read .*test_batch"):
        load_data(dataset_cfg("cifar10", tmp_path), CPU)


def test_a_failed_download_leaves_no_empty_folders(tmp_path, monkeypatch):
    class MNIST:  # torchvision's: creates the folders, then the download fails
        def __init__(self, root, **kwargs):
            (tmp_path / "data" / "MNIST" / "raw").mkdir(parents=True, exist_ok=True)
            raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.datasets, "MNIST", MNIST)
    with pytest.raises(DatasetError, match="downloading it failed"):
        load_data(dataset_cfg("mnist", tmp_path / "data", download=True), CPU)
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_fails_in_one_line_and_keeps_the_previous_summary(tmp_path, monkeypatch, capsys):
    results = tmp_path / "results"
    assert run_cli(monkeypatch, *DIGITS, "rounds=10", "progress=false", f"results_dir={results}") == 0
    (previous,) = results.glob("runs/*/summary.csv")
    before = previous.read_bytes()

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    capsys.readouterr()
    assert (
        run_cli(monkeypatch, *DIGITS, "rounds=10", "seed=1", "progress=false", f"results_dir={results}") == 1
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0] and err[0].startswith("byzrun: error:")
    assert previous.read_bytes() == before
    assert list(results.glob("runs/*/summary.csv")) == [previous]
    assert not list(results.rglob("*.tmp"))
    assert pd.read_csv(previous)["rounds"].iloc[0] == 10
