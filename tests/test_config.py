"""Bad input gets one clear line before training; every config composes."""

from pathlib import Path

import pytest

from byzrun.config import config_hash, validate
from byzrun.errors import ConfigError
from byzrun.train import prepare
from tests.conftest import CONF_DIR, make_cfg, run_cli


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONF_DIR) / group).glob("*.yaml"))


@pytest.mark.parametrize("dataset", group_options("dataset"))
def test_every_dataset_composes_with_its_paper_model(dataset):
    cfg = make_cfg(f"dataset={dataset}")
    expected = {"cifar10": "cnn", "cifar100": "wrn"}.get(dataset, "mlp")
    assert cfg.model.name == expected
    validate(cfg)


def test_model_can_be_overridden_independently_of_the_dataset():
    assert make_cfg("dataset=cifar10", "model=mlp").model.name == "mlp"


@pytest.mark.parametrize(
    "override,message",
    [
        ("n=0", "n must be >= 1"),
        ("m=-1", "m must be >= 0"),
        ("m=51", "need m < n"),
        ("batch_size=0", "batch_size must be >= 1"),
        ("rounds=0", "rounds must be >= 1"),
        ("lr=0", "lr must be > 0"),
        ("device=tpu", "unknown device 'tpu'"),
        ("device=cuda", "CUDA is not available"),
        ("momentum.placement=both", "unknown momentum.placement"),
        ("momentum.beta=1.0", "momentum.beta must be in"),
        ("sampling=random", "unknown sampling"),
        ("lr_schedule=cosine", "unknown lr_schedule"),
        ("grad_clip=-1", "grad_clip must be > 0"),
        ("n=3.5", "n must be an integer"),
    ],
)
def test_invalid_settings_are_rejected(override, message):
    with pytest.raises(ConfigError, match=message):
        validate(make_cfg(override))


def test_model_that_does_not_fit_the_data_is_rejected_before_training(digits_cfg):
    with pytest.raises(ConfigError, match="model cnn does not accept 1x8x8 inputs"):
        prepare(digits_cfg("model=cnn"))


def test_config_hash_ignores_where_and_how_but_not_what():
    base = make_cfg("dataset=digits")
    assert config_hash(base) == config_hash(make_cfg("dataset=digits", "device=cpu", "results_dir=/x"))
    assert config_hash(base) != config_hash(make_cfg("dataset=digits", "seed=1"))
    assert config_hash(base) != config_hash(make_cfg("dataset=digits", "momentum.beta=0.5"))


@pytest.mark.parametrize(
    "args,message",
    [
        (["n=0"], "byzrun: error: n must be >= 1"),
        (["m=51"], "byzrun: error: m=51 Byzantine workers out of n=51"),
        (["batch_size=0"], "byzrun: error: batch_size must be >= 1"),
        (["device=gpu7"], "byzrun: error: unknown device 'gpu7'"),
        (
            ["reductions=fast"],
            "byzrun: error: unknown reductions 'fast'; choose torch (the default) or numpy",
        ),
        (["dataset.root=/nonexistent", "dataset.download=false"], "byzrun: error: mnist not found"),
    ],
)
def test_cli_reports_bad_input_in_one_line(tmp_path, monkeypatch, capsys, args, message):
    assert run_cli(monkeypatch, *args, "progress=false", f"results_dir={tmp_path}") == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), lines
    assert not (tmp_path / "runs").exists()  # nothing started


def test_cli_rejects_unknown_group_options_and_keys(monkeypatch, capsys):
    """Hydra's own messages are replaced by one line (more cases in test_reliability.py)."""
    assert run_cli(monkeypatch, "defense=nonsense") == 2
    assert capsys.readouterr().err.startswith("byzrun: error: unknown defense 'nonsense'; choose one of: ")
    assert run_cli(monkeypatch, "learning_rate=3") == 2
    assert capsys.readouterr().err.startswith("byzrun: error: unknown key 'learning_rate'")


def test_unknown_added_keys_are_the_same_one_line_error_as_unknown_keys(tmp_path, monkeypatch, capsys):
    """`+rouds=5` (a typo with `+`) used to start a full 300-round run in a folder of its own."""
    for typo, expected in [
        ("+rouds=5", "byzrun: error: unknown key 'rouds' (did you mean 'rounds'?)"),
        ("++rouds=5", "byzrun: error: unknown key 'rouds' (did you mean 'rounds'?)"),
        ("+defense.tauu=3", "byzrun: error: unknown key 'defense.tauu'"),
    ]:
        assert run_cli(monkeypatch, "dataset=digits", typo, f"results_dir={tmp_path}") == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(expected), lines
    assert not (tmp_path / "runs").exists()


def test_documented_added_keys_are_accepted(tmp_path, monkeypatch, capsys):
    args = ["dataset=digits", "n=5", "rounds=2", "progress=false", f"results_dir={tmp_path}"]
    assert run_cli(monkeypatch, *args, "+plan=true") == 0
    assert "nothing was trained or written" in capsys.readouterr().out
    assert run_cli(monkeypatch, *args, "++rounds=1") == 0  # ++ on a key the config has: an override
    assert len(list((tmp_path / "runs").glob("*/summary.csv"))) == 1


def test_missing_data_error_names_the_three_fixes(tmp_path, monkeypatch, capsys):
    for dataset in ("mnist", "cifar10"):
        args = [f"dataset={dataset}", f"dataset.root={tmp_path}", "dataset.download=false"]
        assert run_cli(monkeypatch, *args, "progress=false", f"results_dir={tmp_path}") == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1
        assert "make data" in err and "dataset.root=" in err and "BYZRUN_DATA" in err, err
