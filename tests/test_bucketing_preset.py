"""The bucketing paper's MNIST experiment (experiment=bucketing_mnist): PyTorch's MNIST example CNN as
their code builds it, the preset's settings against their exp2 (n=25, f=5, mimic, lr 0.01, no
momentum, batch 32, 600 rounds, an evaluation every 30), the rules of its five cells, and a few-round
run of the preset on the digits."""

import importlib.util
import subprocess
import warnings
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from byzrun.build import build_attack, build_defense
from byzrun.models import build_model
from byzrun.report.scores import Metric
from byzrun.train import prepare, run
from tests.conftest import make_cfg
from tests.test_sweeps import point_cfg, sweep_values

ROOT = Path(__file__).resolve().parent.parent
LAST5 = Metric("last-k", 5)
CELLS = ["avg", "krum", "cm", "rfa", "cclip"]
BUCKETING = "defense.pre=[{name:bucketing,s:2}]"


def test_the_mnist_cnn_has_pytorchs_example_layers_and_parameter_count():
    model = build_model("mnist_cnn", (1, 28, 28), 10)
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    assert shapes == {
        "conv1.weight": (32, 1, 3, 3),
        "conv1.bias": (32,),
        "conv2.weight": (64, 32, 3, 3),
        "conv2.bias": (64,),
        "fc1.weight": (128, 9216),
        "fc1.bias": (128,),
        "fc2.weight": (10, 128),
        "fc2.bias": (10,),
    }
    assert sum(p.numel() for p in model.parameters()) == 1_199_882  # PyTorch's example, printed by torch
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_the_mnist_cnn_in_eval_mode_is_their_forward_pass_in_float64():
    """conv1, ReLU, conv2 (no ReLU: their code), max-pool 2, fc1, ReLU, fc2; dropout off in eval."""
    torch.manual_seed(0)
    model = build_model("mnist_cnn", (1, 28, 28), 10).eval()
    x = torch.randn(4, 1, 28, 28)
    p = {k: v.detach().double() for k, v in model.named_parameters()}
    h = F.relu(F.conv2d(x.double(), p["conv1.weight"], p["conv1.bias"]))
    h = F.max_pool2d(F.conv2d(h, p["conv2.weight"], p["conv2.bias"]), 2)
    h = F.relu(h.flatten(1) @ p["fc1.weight"].T + p["fc1.bias"])
    reference = h @ p["fc2.weight"].T + p["fc2.bias"]
    torch.testing.assert_close(model(x).double(), reference, rtol=1e-5, atol=1e-5)


def test_the_mnist_cnn_drops_whole_feature_maps_then_single_units_in_training():
    """Dropout2d(0.25) after the pooling zeroes whole 12x12 maps and scales the rest by 1/0.75;
    the second dropout (0.5) zeroes single units of the 128 (their Dropout2d on 2-D input, torch 1.7)."""
    torch.manual_seed(1)
    model = build_model("mnist_cnn", (1, 28, 28), 10).train()
    seen = {}
    for name in ("dropout1", "dropout2"):
        getattr(model, name).register_forward_hook(
            lambda mod, inp, out, name=name: seen.update({name: (inp[0], out)})
        )
    model(torch.randn(32, 1, 28, 28))
    inp, out = seen["dropout1"]
    kept = out.ne(0).flatten(2).any(2)  # [32, 64]: a map survives or not, as a whole
    torch.testing.assert_close(out, inp * kept[:, :, None, None] / 0.75)
    assert 0.15 < 1 - kept.float().mean() < 0.35
    inp, out = seen["dropout2"]
    dropped = out.eq(0) & inp.ne(0)
    assert dropped.any(1).all() and (~dropped & inp.ne(0)).any(1).all()  # within every row, some of each
    torch.testing.assert_close(out, inp * out.ne(0) / 0.5)
    # in one vectorised pass over workers (CUDA runs all n at once): whole maps still, each worker its own
    maps = torch.func.vmap(model.dropout1, randomness="different")(torch.ones(5, 4, 64, 3, 3)).flatten(3)
    assert ((maps == 0).all(3) | (maps != 0).all(3)).all()
    assert not torch.equal(maps[0], maps[1])


def test_the_preset_is_their_exp2_protocol():
    cfg = point_cfg("experiment=bucketing_mnist")
    assert (cfg.name, cfg.dataset.name, cfg.model.name) == ("bucketing", "mnist", "mnist_cnn")
    assert (cfg.n, cfg.m, cfg.rounds, cfg.batch_size, cfg.lr, cfg.lr_schedule) == (
        25,
        5,
        600,
        32,
        0.01,
        "constant",
    )
    assert (cfg.momentum.placement, cfg.weight_decay, cfg.grad_clip) == ("none", 0.0, None)
    assert (cfg.eval_every, cfg.eval_first) == (30, None)  # 20 evaluations; the metric: the last 5
    assert (cfg.attack.target, cfg.attack.warmup) == ("warmup", 1)  # their --mimic-warmup default
    values = sweep_values("bucketing_mnist")
    assert values == {
        "cell": [f"bucketing/{c}" for c in CELLS],
        "defense.pre": ["[]", "[{name:bucketing,s:2}]"],
        "split": ["iid", "extreme"],
        "seed": ["0", "1", "2"],  # their seeds
    }
    noniid = point_cfg("experiment=bucketing_mnist", "split=extreme")
    assert (noniid.split.name, noniid.split.byzantine) == ("extreme", "iid")


def test_each_cell_builds_their_rule_and_passes_its_bound_with_and_without_bucketing():
    rules = {}
    for cell in CELLS:
        for pre in ("defense.pre=[]", BUCKETING):
            cfg = point_cfg("experiment=bucketing_mnist", f"cell=bucketing/{cell}", pre)
            pipeline = build_defense(cfg.defense)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                pipeline.check(cfg.n, cfg.m)  # refused before training if not
            assert bool(caught) == (cell == "cclip")  # only CClip runs beyond its bound (f/n > 0.1)
            steps = [(type(s).__name__, s.s) for s in pipeline.steps]
            assert steps == ([] if pre.endswith("[]") else [("Bucketing", 2)])
            if steps:
                assert pipeline.steps[0].out_count(cfg.n) == 13  # their T = ceil(n/s); f stays 5
            rules[cell] = pipeline.rule
        assert (
            make_cfg("experiment=bucketing_mnist", f"cell=bucketing/{cell}").row
            == {
                "avg": "Avg",
                "krum": "Krum",
                "cm": "CM",
                "rfa": "RFA",
                "cclip": "CClip",
            }[cell]
        )
    assert type(rules["avg"]).__name__ == "Mean"
    assert (type(rules["krum"]).__name__, rules["krum"].distances, rules["krum"].neighbours) == (
        "Krum",
        "squared",
        "paper",
    )
    assert type(rules["cm"]).__name__ == "Median"
    rfa = rules["rfa"]
    assert (rfa.iterations, rfa.tol, rfa.nu) == (8, 0.0, 0.1)  # RFA(T=8), nu=0.1 in their code
    cclip = rules["cclip"]
    assert (cclip.tau, cclip.iterations, cclip.center) == (10.0, 3, "previous")  # Clipping(tau=10, n_iter=3)


@pytest.mark.parametrize("cell,split", [("krum", "extreme"), ("cclip", "iid")])
def test_a_few_rounds_of_the_preset_run_on_the_digits(tmp_path, cell, split):
    """The preset end to end on scikit-learn's 8x8 digits (4 rounds, bucketing in front): the run
    folder, two evaluations, the mimic attacker's honest target, the split's sorted parts."""
    cfg = make_cfg(
        "experiment=bucketing_mnist",
        "dataset=digits",
        f"cell=bucketing/{cell}",
        BUCKETING,
        f"split={split}",
        "rounds=4",
        "eval_every=2",
        "device=cpu",
        results_dir=tmp_path,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "defense bucketing\\+centered_clipping tolerates")  # f/n > 0.1
        summary = run(cfg)
    assert (summary["model"], summary["defense"], summary["attack"]) == (
        "mnist_cnn",
        f"bucketing+{build_defense(cfg.defense).rule.name}",
        "mimic",
    )
    assert (summary["row"], summary["name"], summary["rounds"]) == (cfg.row, "bucketing", 4)
    assert 0 <= summary["mimic_target"] < 20 and not summary["diverged"]
    folder = next((tmp_path / "runs").iterdir())
    metrics = pd.read_csv(folder / "metrics.csv").dropna(subset=["test_acc"])
    assert metrics["round"].tolist() == [2, 4]
    parts = pd.read_csv(folder / "split.csv")
    honest = parts[parts.role == "honest"].drop(columns=["worker", "role"])
    classes_per_worker = honest.gt(0).sum(axis=1)
    assert classes_per_worker.max() <= (2 if split == "extreme" else 10)
    assert build_attack(cfg.attack).name == "mimic"


def bucketing_numbers():
    spec = importlib.util.spec_from_file_location(
        "bucketing_numbers", ROOT / "scripts" / "bucketing_numbers.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Their committed exp2.tex (without bucketing) and exp2_bucketing.tex (s=2), as printed there:
# rule -> (iid mean, iid std, non-iid mean, non-iid std)
THEIR_TEX = {
    0: {
        "Avg": (93.20, 0.21, 92.73, 0.32),
        "Krum": (90.36, 0.25, 37.33, 6.78),
        "CM": (90.80, 0.12, 64.27, 3.70),
        "RFA": (92.92, 0.25, 78.93, 9.27),
        "CClip": (93.16, 0.22, 91.53, 0.06),
    },
    2: {
        "Avg": (93.17, 0.23, 92.67, 0.27),
        "Krum": (91.64, 0.30, 53.15, 3.96),
        "CM": (91.91, 0.24, 78.60, 3.15),
        "RFA": (93.00, 0.23, 91.17, 0.51),
        "CClip": (93.17, 0.23, 92.56, 0.21),
    },
}


def test_their_numbers_csv_gives_their_published_exp2_tables():
    """results/bucketing/their_numbers.csv (from their committed stats logs) reproduces the two tables
    their exp2.py wrote from the same logs: mean and sample std over seeds 0-2 of the last-5 mean."""
    frame = pd.read_csv(ROOT / "results" / "bucketing" / "their_numbers.csv")
    assert len(frame) == 60 and set(frame.seed) == {0, 1, 2} and (frame.evaluations == 20).all()
    assert (frame.test_samples == 9984).all()
    for s, rules in THEIR_TEX.items():
        for rule, expected in rules.items():
            got = []
            for data in ("iid", "noniid"):
                last5 = frame[(frame.rule == rule) & (frame.bucketing == s) & (frame.data == data)].last5
                assert len(last5) == 3
                got += [round(last5.mean(), 2), round(last5.std(ddof=1), 2)]
            assert tuple(got) == pytest.approx(expected, abs=1e-9), (rule, s)
    # the mimic attacker chooses in round 1 from the initial model: one honest worker per seed and data
    assert frame.groupby(["data", "seed"]).mimic_target.nunique().eq(1).all()


def test_the_bucketing_readme_quotes_the_numbers_script():
    """results/bucketing/README.md's table is scripts/bucketing_numbers.py's output, line for line."""
    folder = ROOT / "results" / "bucketing"
    text = (folder / "README.md").read_text()
    quoted = text.split("<!-- bucketing table: scripts/bucketing_numbers.py -->\n")[1]
    quoted = quoted.split("<!-- end of bucketing table -->")[0].strip().splitlines()
    assert quoted == bucketing_numbers().table(folder)


def test_their_numbers_script_reads_their_stats_logs(tmp_path):
    """scripts/bucketing_their_numbers.py on a clone holding stats logs in their format (a Python dict
    per line, NaN written bare): the last-5 mean of the validation entries, the mimic target, the commit."""
    spec = importlib.util.spec_from_file_location(
        "bucketing_their_numbers", ROOT / "scripts" / "bucketing_their_numbers.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    repo = tmp_path / "clone"
    for agg in script.RULES:
        for noniid in (False, True):
            for s in (0, 2):
                for seed in (0, 1, 2):
                    folder = repo / script.RUNS_DIR / f"{agg}_{noniid}_s{s}_seed{seed}"
                    folder.mkdir(parents=True)
                    lines = [f"{{'_meta': {{'type': 'mmc_count'}}, 'select': {seed + 10}, 'value': 1.5}}"]
                    for epoch in range(1, 21):
                        lines.append(
                            f"{{'_meta': {{'type': 'train'}}, 'E': {epoch}, 'Loss': nan, 'top1': 1.0}}"
                        )
                        top1 = epoch + (0.5 if noniid else 0.0) + s
                        entry = f"'E': {epoch}, 'Length': 9984, 'top1': {top1}"
                        lines.append(f"{{'_meta': {{'type': 'validation'}}, {entry}}}")
                    (folder / "stats").write_text("\n".join(lines) + "\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "logs"], check=True)
    out = tmp_path / "their.csv"
    assert script.main([str(repo), "--out", str(out)]) == 0
    frame = pd.read_csv(out)
    assert len(frame) == 60 and set(frame.rule) == {"Avg", "Krum", "CM", "RFA", "CClip"}
    row = frame[
        (frame.rule == "Krum") & (frame.bucketing == 2) & (frame.data == "noniid") & (frame.seed == 1)
    ]
    assert row[["last5", "final", "max", "mimic_target", "test_samples"]].values.tolist() == [
        [18.0 + 0.5 + 2, 20.5 + 2, 20.5 + 2, 11, 9984]
    ]
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout
    assert row.source.item() == f"{script.RUNS_DIR}/krum_True_s2_seed1/stats@{head.strip()}"


def test_a_runs_initial_model_is_pytorchs_default_init_right_after_seeding_as_their_code(tmp_path):
    """Their code calls torch.manual_seed(seed) and then builds Net: byzrun's run starts from the same
    parameters (its layers built in the same order, nothing drawn in between)."""
    cfg = make_cfg(
        "experiment=bucketing_mnist", "dataset=digits", "seed=3", "device=cpu", results_dir=tmp_path
    )
    setup = prepare(cfg)
    torch.manual_seed(3)
    layers = [torch.nn.Conv2d(1, 32, 3), torch.nn.Conv2d(32, 64, 3), torch.nn.Linear(64 * 2 * 2, 128)]
    layers.append(torch.nn.Linear(128, 10))
    reference = torch.cat([p.detach().reshape(-1) for layer in layers for p in layer.parameters()])
    assert torch.equal(setup.model.theta, reference)


def test_the_runs_table_and_paragraph_quote_the_runs_and_their_seeds():
    """results/bucketing/README.md's table of runs is scripts/bucketing_numbers.py's (each byzrun run
    beside their run of the same cell and seed), and its paragraph's spread is their seeds'."""
    folder = ROOT / "results" / "bucketing"
    raw = (folder / "README.md").read_text()
    quoted = raw.split("<!-- bucketing runs: scripts/bucketing_numbers.py -->\n")[1]
    quoted = quoted.split("<!-- end of bucketing runs -->")[0].strip().splitlines()
    assert quoted == bucketing_numbers().runs_table(folder)
    assert len(quoted) - 2 == len(list((folder / "runs").glob("*/summary.csv")))
    theirs = pd.read_csv(folder / "their_numbers.csv")
    krum = theirs[(theirs.rule == "Krum") & (theirs.bucketing == 0) & (theirs.data == "noniid")]
    text = " ".join(raw.split())
    assert f"spread over {krum.last5.max() - krum.last5.min():.1f} points" in text
    chosen = [
        int(
            pd.read_csv(
                next((folder / "runs").glob(f"mnist-krum-mimic-n25-m5-s{seed}-*")) / "metrics.csv"
            ).byz_selected.sum()
        )
        for seed in (0, 1)
    ]
    assert f"Krum chose a Byzantine copy in {chosen[0]} (seed 0) and {chosen[1]} (seed 1) of the 20" in text
    (rerun,) = bucketing_numbers().collect(folder / "their_worker")  # their copied worker, outside the table
    assert int(rerun.value("mimic_target")) == 14 and rerun.seed == 0
    assert (
        f"`attack.target=14`, in `their_worker/runs/`, outside the table) ends at {LAST5.of(rerun):.2f}"
        in text
    )
    assert (
        f"where byzrun's own choice gave {bucketing_numbers().ours(folder)[('Krum', 0, 'noniid')][0]:.2f}"
        in text
    )
