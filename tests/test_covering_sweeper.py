"""byzrun's default sweeper (byzrun/covering_sweeper.py): the basic sweeper's points, checked before the
first run on a covering sample (every value of every swept key composed once) instead of every point."""

from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser

from byzrun.covering_sweeper import covering_sample
from tests.conftest import run_cli


def points(*arguments: str) -> list[list[str]]:
    (batch,) = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(list(arguments)), None)
    return batch


def test_the_covering_sample_holds_every_value_of_every_key_once_per_largest_key():
    batch = points("defense=mean,krum,median", "attack=none,alie", "n=20", "seed=1,2,3,4")
    assert len(batch) == 24
    sample = covering_sample(batch)
    assert sample == [
        ["defense=mean", "attack=none", "n=20", "seed=1"],
        ["defense=krum", "attack=alie", "n=20", "seed=2"],
        ["defense=median", "attack=none", "n=20", "seed=3"],
        ["defense=mean", "attack=alie", "n=20", "seed=4"],
    ]
    for position in range(4):
        assert {p[position] for p in sample} == {p[position] for p in batch}
    ragged = [["defense=mean"], ["defense=krum", "m=3"]]  # not a cross product: checked as it is
    assert covering_sample(ragged) == ragged


SWEEP = ["-m", "dataset=digits", "n=7", "m=4", "attack=none,sign_flip", "seed=1,2", "progress=false"]
SWEEP += ["hydra/launcher=basic"]  # every point outside its rule's bound (f < n/2): nothing trains


def counting_composes(monkeypatch) -> list:
    calls = []
    compose = ConfigLoaderImpl.load_sweep_config

    def counted(self, master_config, sweep_overrides):
        calls.append(list(sweep_overrides))
        return compose(self, master_config, sweep_overrides)

    monkeypatch.setattr(ConfigLoaderImpl, "load_sweep_config", counted)
    return calls


def test_a_sweep_composes_each_job_once_and_the_covering_sample_before(tmp_path, monkeypatch, capsys):
    calls = counting_composes(monkeypatch)
    args = [*SWEEP, "defense=median,trimmed_mean", f"results_dir={tmp_path}"]
    assert run_cli(monkeypatch, *args) == 0
    assert "8 runs: 0 done, 8 skipped (bound)" in capsys.readouterr().out
    jobs = points("defense=median,trimmed_mean", "attack=none,sign_flip", "seed=1,2")
    assert len(calls) == 2 + 8  # the basic sweeper: 8 + 8
    swept = [sorted(o for o in call if o.split("=")[0] in ("defense", "attack", "seed")) for call in calls]
    assert sorted(swept[:2]) == sorted(sorted(p) for p in covering_sample(jobs))
    assert sorted(swept[2:]) == sorted(sorted(p) for p in jobs)


def test_a_bad_value_still_stops_the_sweep_before_any_run(tmp_path, monkeypatch, capsys):
    args = [*SWEEP, "defense=median,trimmed_means", f"results_dir={tmp_path}"]
    assert run_cli(monkeypatch, *args) != 0
    out = capsys.readouterr()
    assert "trimmed_means" in out.out + out.err and "run 1 of" not in out.out
    assert not list(tmp_path.rglob("config.yaml"))
