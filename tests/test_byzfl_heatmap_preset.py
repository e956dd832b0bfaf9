"""ByzFL's example benchmark (experiment=byzfl_heatmap_mnist): its model (cnn_mnist, byzrun's lenet) in
float64 against ByzFL's own class, the preset's settings against its documented config.json, its attack
presets as the overrides they stand for, and a few rounds of the preset on the digits."""

import pandas as pd
import pytest
import torch

from byzrun.build import build_attack, build_defense
from byzrun.config import config_hash
from byzrun.models import build_model
from byzrun.train import run
from tests.conftest import make_cfg
from tests.test_sweeps import point_cfg, sweep_values


def test_lenet_is_byzfls_cnn_mnist_in_float64():
    """The same weights give ByzFL's cnn_mnist log-probabilities: byzrun's logits up to log_softmax."""
    models = pytest.importorskip("byzfl.fed_framework.models")
    torch.manual_seed(0)
    ours = build_model("lenet", (1, 28, 28), 10).double()
    theirs = models.cnn_mnist().double()
    names = {"_c1": "conv1", "_c2": "conv2", "_f1": "fc1", "_f2": "fc2"}
    weights = ours.state_dict()
    theirs.load_state_dict(
        {k: weights[names[k.split(".")[0]] + "." + k.split(".")[1]] for k in theirs.state_dict()}
    )
    assert sum(p.numel() for p in ours.parameters()) == 431_080
    x = torch.randn(5, 1, 28, 28, dtype=torch.float64)
    torch.testing.assert_close(torch.log_softmax(ours(x), dim=1), theirs(x), rtol=1e-12, atol=1e-12)


def test_the_preset_is_byzfls_example_config():
    cfg = point_cfg("experiment=byzfl_heatmap_mnist", "m=3")
    assert (cfg.name, cfg.dataset.name, cfg.model.name) == ("byzfl_heatmap", "mnist", "lenet")
    assert (cfg.n, cfg.m) == (13, 3)  # 10 honest clients, m Byzantine
    assert (cfg.rounds, cfg.batch_size, cfg.lr, cfg.lr_schedule, cfg.weight_decay) == (
        800,
        25,
        0.1,
        "constant",
        1e-4,
    )
    assert (cfg.momentum.placement, cfg.momentum.beta, cfg.eval_every) == ("worker", 0.9, 50)
    assert (cfg.split.name, cfg.split.byzantine) == ("gamma", "iid")
    assert sweep_values("byzfl_heatmap_mnist") == {
        "cell": ["byzfl/trmean", "byzfl/gm"],
        "attack": ["sign_flipping_mean", "ipm_optimal", "alie_optimal_plus"],
        "m": ["1", "2", "3", "4"],
        "split.gamma": ["1.0", "0.66", "0.33", "0.0"],
        "seed": ["0", "1", "2"],
    }


def test_each_cell_is_byzfls_aggregator_behind_clipping_then_nnm():
    rules = {}
    for cell in ("trmean", "gm"):
        cfg = point_cfg("experiment=byzfl_heatmap_mnist", f"cell=byzfl/{cell}", "m=4")
        pipeline = build_defense(cfg.defense)
        pipeline.check(cfg.n, cfg.m)  # within every bound at f=4 of n=14
        assert [type(s).__name__ for s in pipeline.steps] == ["Clipping", "NearestNeighborMixing"]
        assert pipeline.steps[0].c == 2.0  # ByzFL's Clipping() default
        rules[cell] = pipeline.rule
    assert (type(rules["trmean"]).__name__, rules["trmean"].variant) == ("TrimmedMean", "trim_extremes")
    gm = rules["gm"]
    assert (type(gm).__name__, gm.iterations, gm.tol, gm.nu) == ("GeometricMedian", 3, 0.0, 0.1)


@pytest.mark.parametrize(
    "preset,same_as",
    [
        ("sign_flipping_mean", ["attack=ipm", "attack.factor=1.0"]),
        (
            "alie_optimal_plus",
            [
                "attack=alie",
                "attack.factor=optimal",
                "attack.knowledge=omniscient",
                "attack.std=unbiased",
                "attack.direction=plus",
            ],
        ),
    ],
)
def test_the_byzfl_attack_presets_are_the_overrides_they_stand_for(preset, same_as):
    """Same config, same hash, same runs: a preset only names ByzFL's attack."""
    assert config_hash(make_cfg(f"attack={preset}", "m=3")) == config_hash(make_cfg(*same_as, "m=3"))


def test_byzfls_sign_flipping_sends_the_reversed_honest_mean():
    from byzrun.attacks import AttackContext

    attack = build_attack(make_cfg("attack=sign_flipping_mean").attack)
    attack.validate(n=5, m=2)
    honest = torch.randn(3, 7, dtype=torch.float64)
    ctx = AttackContext(honest=honest, own=honest[:2], n=5, m=2, round=0, defense=None, model=None, lr=0.1)
    torch.testing.assert_close(attack(ctx), -honest.mean(dim=0).expand(2, -1))


def test_a_few_rounds_of_the_preset_run_on_the_digits(tmp_path):
    """The preset end to end on scikit-learn's digits (LeNet on 8x8 would not fit: the MLP), the hardest
    cell: optimal ALIE against GM behind clipping and NNM, gamma 0 (sorted by label), f=2 of n=12."""
    cfg = make_cfg(
        "experiment=byzfl_heatmap_mnist",
        "dataset=digits",
        "model=mlp",
        "cell=byzfl/gm",
        "attack=alie_optimal_plus",
        "m=2",
        "split.gamma=0.0",
        "rounds=4",
        "eval_every=2",
        "device=cpu",
        results_dir=tmp_path,
    )
    summary = run(cfg)
    assert (summary["n"], summary["m"], summary["defense"], summary["attack"]) == (
        12,
        2,
        "clipping+nnm+geometric_median",
        "alie",
    )
    assert summary["name"] == "byzfl_heatmap" and summary["row"] == "GM" and not summary["diverged"]
    folder = next((tmp_path / "runs").iterdir())
    assert pd.read_csv(folder / "metrics.csv").dropna(subset=["test_acc"])["round"].tolist() == [2, 4]
    parts = pd.read_csv(folder / "split.csv")
    assert (parts.role == "honest").sum() == 10


def test_the_readme_shows_their_published_cells_and_the_measured_plan():
    """results/byzfl_heatmap/README.md: its table is their_cells.csv (32 cells, two decimals as the PNGs
    print them), and every estimate it quotes is in plan.txt as byzrun printed it."""
    import re
    from pathlib import Path

    folder = Path(__file__).resolve().parent.parent / "results" / "byzfl_heatmap"
    cells = pd.read_csv(folder / "their_cells.csv", dtype={"gamma": str})
    assert len(cells) == 32 and set(cells.f) == {1, 2, 3, 4}
    text = (folder / "README.md").read_text()
    block = text.split("<!-- their cells: their_cells.csv -->\n")[1].split("<!-- end of their cells -->")[0]
    rows = [line.strip("|").split("|") for line in block.strip().splitlines()[2:]]
    shown = {
        (agg, f, row[0].strip()): row[1 + i + 4 * j].strip()
        for row in rows
        for j, agg in enumerate(("TrMean", "GM"))
        for i, f in enumerate((1, 2, 3, 4))
    }
    assert shown == {(c.aggregator, c.f, c.gamma): f"{c.worst_case_accuracy:.2f}" for c in cells.itertuples()}
    plan = (folder / "plan.txt").read_text()
    estimates = {"ipm": [], "alie": []}  # the sign flipping runs are ipm (factor 1), the others alie
    for found in re.finditer(r"to run \(~((\d+) min (\d+) s)\): .*-(ipm|alie)-n", plan):
        estimates[found.group(4)].append((int(found.group(2)) * 60 + int(found.group(3)), found.group(1)))
    assert len(estimates["ipm"]) == len(estimates["alie"]) == 4
    for attack, name in (("ipm", "SignFlipping"), ("alie", "Optimal ALIE")):
        low, high = min(estimates[attack])[1], max(estimates[attack])[1]
        assert f"{name} run is estimated at {low} to {high}" in " ".join(text.split())
