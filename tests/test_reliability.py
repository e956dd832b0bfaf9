"""The reliability suite: every bad input a user can type is one line and exit 2 before any data is
loaded; damaged data files are one line naming the file; a failing disk leaves finished results intact."""

from __future__ import annotations

import errno
import os
import pickle
import random
import re
import signal
import subprocess
import sys
import time
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
    (["defense=foo"], "unknown defense 'foo'; choose one of: bulyan, bulyan_alie_code, caf,"),
    (["attack=alei"], "unknown attack 'alei' (did you mean 'alie'?); choose one of: alie,"),
    (["dataset=mnsit"], "unknown dataset 'mnsit' (did you mean 'mnist'?)"),
    (
        ["cell=table1/kru"],
        "unknown cell 'table1/kru' (did you mean 'table1/krum'?); choose one of: bucketing/avg, ",
    ),
    (["experiment=tabel1_mnist"], "unknown experiment 'tabel1_mnist' (did you mean 'table1_mnist'?)"),
    (["hydra/launcher=nope"], "unknown launcher 'nope'; choose one of: basic,"),
    (["defense.foo=1"], "unknown key 'defense.foo'; defense Mean has: allow_out_of_bound, pre, name"),
    (["defense=krum", "defense.neighbor=1"], "unknown key 'defense.neighbor' (did you mean 'neighbours'?)"),
    (["+defense.foo=1"], "unknown key 'defense.foo'"),  # `+` adds no key a rule does not take
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
    (["seed=abc"], "seed must be an integer, got 'abc'"),
    (["model.hidden=abc"], "model.hidden must be a number like 100, got 'abc'"),
    (["model=momentum_cnn", "model.dropout=high"], "model.dropout must be a number like 0.25, got 'high'"),
    (["name=[1,2]"], "name must be a label (text) or null"),
    (["dataset.mean=abc"], "dataset.mean must be a list of numbers"),
    (["defense.allow_out_of_bound=maybe"], "defense.allow_out_of_bound must be true or false"),
    (["defense=5"], "Config group override must be a string"),
    (["-m", "--cfg", "job"], "Only one of --run, --multirun, --cfg"),
    (
        ["m=2", "attack=alie", "attack.z=abc"],
        "attack.z must be a number >= 0 or auto or search or optimal, got 'abc'",
    ),
    (["m=2", "attack=gaussian", "attack.sigma=abc"], "attack.sigma must be a number"),
    (["m=2", "attack=alie", "attack.knowledge=foo"], "attack.knowledge='foo' is unknown"),
    (["m=11"], "m=11 Byzantine workers out of n=11"),
    (["device=tpu"], "unknown device 'tpu'"),
    (["device=cuda:7"], "device=cuda:7 but"),
]


@pytest.mark.parametrize("args,message", BAD_INPUTS)
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


# ---------------------------------------------------------------------------- interruptions

RUN = [*DIGITS, "rounds=30", "eval_every=5", "progress=false"]


def metrics_of(results) -> pd.DataFrame:
    (path,) = results.glob("runs/*/metrics.csv")
    return pd.read_csv(path).drop(columns="wall_seconds")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> pd.DataFrame:
    """The metrics of RUN trained without interruption."""
    from byzrun.train import run
    from tests.conftest import make_cfg

    results = tmp_path_factory.mktemp("uninterrupted")
    run(make_cfg(*RUN, results_dir=results))
    return metrics_of(results)


def interrupt_at(monkeypatch, round: int, how) -> None:
    """Make the run in this process receive `how()` (Ctrl-C, SIGTERM) during round `round`."""
    from byzrun.flat_model import FlatModel

    real, calls = FlatModel.worker_grads, {"n": 0}

    def worker_grads(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == round:
            how()
        return real(self, *args, **kwargs)

    monkeypatch.setattr(FlatModel, "worker_grads", worker_grads)


def sigterm():
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(1)  # the handler raises before this ends


def ctrl_c():
    raise KeyboardInterrupt


@pytest.mark.parametrize("how,status", [(sigterm, 143), (ctrl_c, 130)])
def test_an_interrupted_run_ends_in_one_line_and_reruns_to_the_same_metrics(
    tmp_path, monkeypatch, capsys, uninterrupted, how, status
):
    results = tmp_path / "results"
    round = random.Random(status).randint(3, 28)
    with monkeypatch.context() as patch:
        interrupt_at(patch, round, how)
        assert run_cli(monkeypatch, *RUN, f"results_dir={results}") == status
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"byzrun: interrupted at round {round}; run the same command again to start it over"]
    assert not list(results.rglob("*.tmp")) and not list(results.rglob("summary.csv"))
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is put back
    assert run_cli(monkeypatch, *RUN, f"results_dir={results}") == 0
    pd.testing.assert_frame_equal(metrics_of(results), uninterrupted)


SLOW_RUN = """
import sys, time
from byzrun import cli
from byzrun.flat_model import FlatModel
real = FlatModel.worker_grads
def slow(self, *a, **k):
    time.sleep(0.02)
    return real(self, *a, **k)
FlatModel.worker_grads = slow
sys.argv = ["byzrun", *sys.argv[1:]]
cli.main()
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_run_killed_at_a_random_round_reruns_to_the_same_metrics(
    tmp_path, monkeypatch, uninterrupted, signum
):
    """A real process, killed after a random evaluation. SIGTERM: one line, exit 143, no temporary file.
    SIGKILL: a kill inside a write leaves .metrics.csv.<host>-<pid>.*.tmp (planted here, since that window
    is narrow), which the rerun removes. Either way the rerun finishes with the uninterrupted metrics."""
    from byzrun.results import HOST

    results = tmp_path / "results"
    cmd = [sys.executable, "-c", SLOW_RUN, *RUN, f"results_dir={results}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    rows = random.Random().randint(1, 4)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = list(results.glob("runs/*/metrics.csv"))
        if found and len(found[0].read_text().splitlines()) > rows:
            break
        time.sleep(0.01)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    (out,) = results.glob("runs/*")
    assert not (out / "summary.csv").exists()
    if signum == signal.SIGTERM:
        assert proc.returncode == 143, err
        assert re.fullmatch(
            r"byzrun: interrupted at round \d+; run the same command again to start it over\n", err
        )
        assert not list(results.rglob("*.tmp"))
    else:
        assert proc.returncode == -signal.SIGKILL, err
        stale = out / f".metrics.csv.{HOST}-{proc.pid}.k1ll3d.tmp"
        stale.write_text("round,test_acc\n5,")
    assert run_cli(monkeypatch, *RUN, f"results_dir={results}") == 0
    assert not list(results.rglob("*.tmp"))
    pd.testing.assert_frame_equal(metrics_of(results), uninterrupted)


def test_a_live_writers_temporary_file_is_kept(tmp_path):
    from byzrun.results import HOST, remove_stale_temporaries

    mine = tmp_path / f".summary.csv.{HOST}-{os.getppid()}.abc.tmp"  # a live process: the parent
    foreign = tmp_path / ".summary.csv.otherhost-1.abc.tmp"
    for path in (mine, foreign):
        path.write_text("x")
    assert remove_stale_temporaries(tmp_path) == []
    os.utime(foreign, (0, 0))  # another host's, and old
    assert remove_stale_temporaries(tmp_path) == [foreign]


# ---------------------------------------------------------------------------- progress and sweeps


def test_progress_is_a_bar_on_a_terminal_lines_in_a_log_and_silent_when_off(capsys, caplog):
    from byzrun.progress import Progress

    caplog.set_level("INFO", logger="byzrun")
    for t in (bar := Progress(4, "digits mean/none", enabled=True, terminal=False)):
        bar.evaluated(t + 1, 50.0)
    bar.close()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4 and lines[1].startswith(
        "digits mean/none: round 2/4, test accuracy 50.00%, 0:00 elapsed"
    )
    assert "about 0:00 left" in lines[1] and "\r" not in capsys.readouterr().err
    caplog.clear()
    for t in (bar := Progress(4, "x", enabled=False, terminal=True)):
        bar.evaluated(t + 1, 50.0)
    bar.close()
    assert not caplog.records and capsys.readouterr().err == ""
    for t in (bar := Progress(4, "x", enabled=True, terminal=True)):
        bar.evaluated(t + 1, 50.0)
    bar.close()
    assert "\r" in capsys.readouterr().err and not caplog.records  # tqdm's bar


def test_a_sweep_says_where_it_is_and_a_failed_run_does_not_stop_it(tmp_path, monkeypatch, capsys):
    results = tmp_path / "results"
    args = ["-m", *DIGITS, "rounds=2", "eval_every=2", "n=7", "m=1,2", "defense=bulyan", "progress=false",
            "dataset=mnist,digits", f"++dataset.root={tmp_path / 'none'}", "++dataset.download=false",
            f"results_dir={results}"]  # fmt: skip
    assert run_cli(monkeypatch, *args) == 1  # mnist m=1 fails (no files), the others go on
    out = capsys.readouterr()
    starts = [line for line in out.out.splitlines() if re.match(r"run \d+ of", line)]
    assert [s.split(":")[0] for s in starts] == [f"run {i} of 4" for i in (1, 2, 3, 4)]
    assert "dataset=mnist" in starts[0] and "m=1" in starts[0]
    assert "4 runs: 1 done, 2 skipped (bound), 0 already done, 1 failed" in out.out
    assert "byzrun: run 1 failed (" in out.err and "mnist not found" in out.err
    assert len(list(results.glob("runs/*/summary.csv"))) == 1
    assert not (results / ".sweeps").exists()  # nothing left behind
    assert run_cli(monkeypatch, *args) == 1
    assert "4 runs: 0 done, 2 skipped (bound), 1 already done, 1 failed" in capsys.readouterr().out


# ---------------------------------------------------------------------------- --help and --version


def test_help_says_what_byzrun_is_its_groups_keys_examples_and_where_results_go(monkeypatch, capsys):
    assert run_cli(monkeypatch, "--help") == 0
    out = capsys.readouterr().out
    assert out.startswith("byzrun: experiments on Byzantine-robust synchronous SGD")
    assert "Hydra" not in out
    assert "defense: bulyan, bulyan_alie_code, caf, centered_clipping" in out and "attack: alie," in out
    assert "n=51 m=12" in out and "momentum.placement=server" in out
    examples = out.split("== Examples ==")[1].split("==")[0].strip().splitlines()
    commands = [line for line in examples if not line.startswith(" ")]  # the rest continue a comment
    assert len(commands) == 4 and all(line.startswith("byzrun ") for line in commands)
    assert "results_dir/runs/<dataset>-<defense>-<attack>" in out


def test_version(monkeypatch, capsys):
    from byzrun import __version__

    assert run_cli(monkeypatch, "--version") == 0
    assert capsys.readouterr().out == f"byzrun {__version__}\n"


def test_a_sweep_interrupted_between_runs_keeps_every_finished_run(tmp_path, monkeypatch, capsys):
    results = tmp_path / "results"
    args = [
        "-m",
        *DIGITS,
        "rounds=2",
        "eval_every=2",
        "seed=0,1,2",
        "progress=false",
        f"results_dir={results}",
    ]
    real, calls = byzrun.train.load_data, {"n": 0}

    def load_data(*a, **k):  # Ctrl-C as the second run starts
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    with monkeypatch.context() as patch:
        patch.setattr(byzrun.train, "load_data", load_data)
        assert run_cli(monkeypatch, *args) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        "byzrun: interrupted before training started; every finished run is kept; "
        "run the same command again to continue the sweep"
    )
    assert len(list(results.glob("runs/*/summary.csv"))) == 1
    assert not (results / ".sweeps").exists()
    assert run_cli(monkeypatch, *args) == 0
    assert "3 runs: 2 done, 0 skipped (bound), 1 already done, 0 failed" in capsys.readouterr().out
