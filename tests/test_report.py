"""byzrun.report on hand-made runs: keying (never mixing settings), cells, captions, paper numbers, the
momentum table, missing cells, skipped runs, layouts, plots, determinism, the script, and the ALIE
authors' code's runs (hand-written logs, scripts/alie_code_runs.py, their columns in the tables)."""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import math
import re
import runpy
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

from byzrun import report
from byzrun.report import code_runs, collect, specs

ROOT = Path(__file__).resolve().parent.parent
BASE = {
    "n": 51, "m": 12, "seed": 1, "rounds": 300, "batch_size": 128, "sampling": "alie_code", "lr": 0.1,
    "lr_schedule": "constant", "lr_decay": 10000, "weight_decay": 0.0, "grad_clip": None,
    "momentum": {"placement": "server", "beta": 0.9, "nesterov": False}, "eval_every": 5, "eval_first": 1,
    "diagnostics": {"every": None, "sign_flip_z": None}, "eval_batch_size": 1000, "bn_calibration": 2048,
    "worker_chunk": None, "device": "cpu", "results_dir": "results", "progress": False, "name": "table1",
    "row": None, "model": {"name": "mlp", "hidden": 100},
    "dataset": {"name": "mnist", "root": "data", "download": False, "num_classes": 10, "augment": False},
}  # fmt: skip
DEFENSES = {
    "mean": {"_target_": "byzrun.defenses.Mean", "pre": []},
    "trimmed_mean": {"_target_": "byzrun.defenses.TrimmedMean", "variant": "nearest_n-2f", "pre": []},
    "krum": {"_target_": "byzrun.defenses.Krum", "distances": "squared", "neighbours": "paper", "pre": []},
    "bulyan": {"_target_": "byzrun.defenses.Bulyan", "pre": []},
    "median": {"_target_": "byzrun.defenses.Median", "pre": []},
    "dm_krum": {"_target_": "byzrun.defenses.MultiKrum", "distances": "plain", "pre": []},
}
ATTACKS = {
    "none": {"_target_": "byzrun.attacks.NoAttack"},
    "alie": {"_target_": "byzrun.attacks.ALIE", "factor": 1.5, "z": None, "knowledge": "corrupted"},
    "little": {"_target_": "byzrun.attacks.ALIE", "factor": 1.5, "z": None, "knowledge": "omniscient"},
    "alie_backdoor": {"_target_": "byzrun.attacks.ALIEBackdoor", "alpha": 0.2, "z": 0.2, "target": 0},
}
KRUM_CODE = {"defense.distances": "plain", "defense.neighbours": "alie_code"}
T2 = {"name": "table2"}
MOM = {"name": "momentum", "m": 24, "lr": 0.5, "batch_size": 83, "sampling": "iid", "eval_first": None}


def set_dotted(tree: dict, key: str, value) -> None:
    *parents, leaf = key.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
    tree[leaf] = value


def write_run(
    results: Path,
    defense: str = "mean",
    attack: str = "alie",
    seed: int = 1,
    acc: float = 90.0,
    final: float | None = None,
    config: dict | None = None,
    summary: dict | None = None,
    curves: dict | None = None,
) -> Path:
    """One run directory: config.yaml (BASE with the defense, attack, seed and dotted `config`
    overrides), summary.csv (max acc, final acc = acc - 1 unless given, `summary` overrides) and
    metrics.csv (test_acc rising to acc at rounds 1, rounds/2, rounds; `curves`: more columns as
    their value at the last round)."""
    cfg = copy.deepcopy(BASE)
    cfg.update(seed=seed, defense=copy.deepcopy(DEFENSES[defense]), attack=copy.deepcopy(ATTACKS[attack]))
    for key, value in (config or {}).items():
        set_dotted(cfg, key, value)
    config_hash = hashlib.sha1(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:10]
    row = {
        "dataset": cfg["dataset"]["name"], "model": cfg["model"]["name"], "defense": defense,
        "attack": attack, "n": cfg["n"], "m": cfg["m"], "z": math.nan, "alpha": math.nan, "seed": seed,
        "max_test_acc": acc, "final_test_acc": acc - 1 if final is None else final,
        "rounds": cfg["rounds"], "wall_seconds": 1.0, "momentum": cfg["momentum"]["placement"],
        "beta": 0.9, "lr": cfg["lr"], "diverged": False, "diverged_round": None, "name": cfg["name"],
        "row": cfg["row"], "config_hash": config_hash, **(summary or {}),
    }  # fmt: skip
    directory = results / "runs" / f"{cfg['name']}-{defense}-{attack}-s{seed}-{config_hash}"
    directory.mkdir(parents=True)
    (directory / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(cfg)))
    pd.DataFrame([row]).to_csv(directory / "summary.csv", index=False)
    rounds = [1, cfg["rounds"] // 2, cfg["rounds"]]
    extra = curves or {}
    metrics = [
        {"round": r, "test_acc": acc * r / rounds[-1], **{k: v * r / rounds[-1] for k, v in extra.items()}}
        for r in rounds
    ]
    pd.DataFrame(metrics).to_csv(directory / "metrics.csv", index=False)
    return directory


def table1(row: str, **config) -> dict:
    return {"config": {"row": row, **config}}


def make_runs(res: Path) -> Path:
    """Runs for all three tables with gaps, a second protocol, duplicates and runs to skip."""
    for seed, acc, final in ((1, 95.0, 94.0), (2, 96.0, 95.0), (3, 97.0, 97.0)):
        write_run(res, "mean", "none", seed, acc, final, **table1("No Attack"))
    for seed, acc in ((1, 90.0), (2, 92.0)):
        write_run(res, "mean", "alie", seed, acc, **table1("No Defense"))
    write_run(res, "krum", "alie", 1, 80.0, **table1("Krum (paper)"))
    write_run(res, "krum", "alie", 1, 77.0, **table1("Krum (ALIE code)", **KRUM_CODE))
    write_run(res, "bulyan", "alie", 1, 85.0, **table1("Bulyan (paper)"))
    diverged = {"diverged": True, "diverged_round": 150, "final_test_acc": math.nan}
    write_run(res, "bulyan", "alie", 2, 87.0, summary=diverged, **table1("Bulyan (paper)"))
    write_run(res, "median", "alie", 1, 70.0, config={"row": None})  # no row label
    # a shortened protocol of the same table and dataset, and another dataset
    write_run(res, "mean", "none", 1, 60.0, **table1("No Attack", rounds=50))
    write_run(res, "krum", "alie", 1, 20.0, **table1("Krum (paper)", **{"dataset.name": "cifar10"}))
    # Table 2
    for seed, acc in ((1, 96.0), (2, 97.0)):
        write_run(res, "mean", "none", seed, acc, config={"row": "No Attack", **T2})
    backdoor = [(1, 95.0, 30.0, 60.0), (2, 97.0, 40.0, 80.0)]
    for seed, acc, bd, own in backdoor:
        fields = {"max_backdoor_acc": bd, "final_backdoor_acc": bd - 5, "max_backdoor_acc_own": own,
                  "final_backdoor_acc_own": own - 10}  # fmt: skip
        write_run(res, "mean", "alie_backdoor", seed, acc, summary=fields,
                  config={"row": "No Defense (paper)", **T2}, curves={"backdoor_acc": bd})  # fmt: skip
    # momentum: two placements x two seeds, the same cell at another lr, and one with other weight decay
    for placement, accs in (("server", (80.0, 82.0)), ("worker", (90.0, 94.0))):
        for seed, acc in enumerate(accs, start=1):
            ratio = 4.0 if placement == "server" else 0.5
            config = {**MOM, "momentum.placement": placement}
            write_run(
                res, "dm_krum", "little", seed, acc, config=config, curves={"variance_norm_ratio": ratio}
            )
    write_run(res, "dm_krum", "little", 1, 50.0, config={**MOM, "lr": 0.02, "momentum.placement": "worker"})
    write_run(res, "dm_krum", "little", 1, 60.0, config={**MOM, "weight_decay": 0.0001})
    fashion = {**MOM, "dataset.name": "fashion_mnist", "m": 12}
    write_run(res, "trimmed_mean", "little", 1, 70.0, config=fashion)
    # ignored: no table name; counted once: a copy; skipped: no config, broken config
    write_run(res, "krum", "alie", 1, 10.0, config={"name": None})
    original = next((res / "runs").glob("table1-krum-alie-s1-*"))
    shutil.copytree(original, res / "runs" / "backup" / "copy")
    # not read: only <results-dir>/runs/ is (here another results folder's run, e.g. results/paper)
    write_run(res / "paper", "mean", "none", 5, 50.0, **table1("No Attack"))
    write_run(res, "mean", "alie", 9, 1.0, **table1("No Defense")).joinpath("config.yaml").unlink()
    broken = write_run(res, "mean", "alie", 8, 1.0, **table1("No Defense"))
    (broken / "config.yaml").write_text("n: [1, 2\nm: {")
    return res


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple[Path, str, str]:
    res = make_runs(tmp_path_factory.mktemp("report") / "results")
    out, err = run_in_process(res)
    return res, out, err


def run_in_process(res: Path) -> tuple[str, str]:
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        assert report.main(["--results-dir", str(res)]) == 0
    return out.getvalue(), err.getvalue()


def md_rows(text: str) -> dict[str, list[str]]:
    """Markdown table rows by their first cell (the header row left out)."""
    lines = [line for line in text.splitlines() if line.startswith("| ")][1:]
    return {
        cells[0]: cells[1:] for cells in ([c.strip() for c in line.strip("|").split("|")] for line in lines)
    }


def stem_of(res: Path, prefix: str) -> str:
    (path,) = [p.stem for p in res.glob(f"{prefix}-*.md")]
    return path


# ---------------------------------------------------------------- collect


def test_settings_drop_only_what_does_not_change_results():
    config = copy.deepcopy(BASE) | {"hydra": {"job": {"num": 3}}, "defense": {"_target_": "x", "pre": []}}
    settings = collect.result_settings(config)
    for gone in ("seed", "device", "results_dir", "progress", "eval_batch_size", "worker_chunk"):
        assert gone not in settings
    assert not [k for k in settings if k.startswith(("hydra.", "diagnostics.", "dataset.root"))]
    assert "dataset.download" not in settings and "grad_clip" not in settings  # null counts as absent
    for kept in ("rounds", "batch_size", "lr", "sampling", "momentum.beta", "eval_first", "model.hidden"):
        assert kept in settings
    assert settings["defense.pre"] == [] and settings["dataset.name"] == "mnist"


@pytest.mark.parametrize(
    "text",
    [
        "lr: 1e-3\nwd: 1.0e+3\nz: .inf\nq: .nan\nk: 1_000\nh: 0x10\non: yes\nday: 2020-01-01\n",
        "x: ${n}\nmissing: ???\nnone: null\ntilde: ~\nlist: [1, 'a', [2.5]]\nnested: {a: {b: c}}\n",
        "'n': 51\nquoted: '1e-3'\nempty: {}\nno: []\n",
        "",
    ],
    ids=["numbers", "strings", "quoted", "empty"],
)
def test_read_config_gives_what_omegaconf_load_gives(tmp_path: Path, text: str):
    """The C-parser loader keeps OmegaConf's YAML dialect (1e-3 a float, dates strings, ${...} as
    written), so runs read the same as before it."""
    path = tmp_path / "config.yaml"
    path.write_text(text)
    assert collect.read_config(path) == OmegaConf.to_container(OmegaConf.load(path), resolve=False)


def test_read_config_reads_committed_runs_as_omegaconf_does():
    paths = sorted((ROOT / "results" / "paper" / "runs").rglob("config.yaml"))[::25]
    assert len(paths) > 20
    for path in paths:
        assert collect.read_config(path) == OmegaConf.to_container(OmegaConf.load(path), resolve=False)


def test_read_config_rejects_a_duplicate_key_as_omegaconf_does(tmp_path: Path):
    path = tmp_path / "config.yaml"
    path.write_text("n: 1\nn: 2\n")
    with pytest.raises(Exception, match="duplicate key"):
        OmegaConf.load(path)
    with pytest.raises(collect.Unreadable, match="unreadable config.yaml"):
        collect.read_config(path)


def pandas_summary(path: Path) -> dict:
    """The reference: summary.csv's first row as pandas.read_csv reads it (missing values as None)."""
    frame = pd.read_csv(path, dtype=dict.fromkeys(collect.TEXT_COLUMNS, str))
    return {k: (None if pd.isna(v) else v) for k, v in frame.iloc[0].to_dict().items()}


def same_values(ours: dict, reference: dict) -> bool:
    """Equal keys in order, equal values of the same kind (bool, int, float, text, None)."""

    def kind(value):
        return type(value.item() if hasattr(value, "item") else value)

    return list(ours) == list(reference) and all(
        ours[k] == reference[k] and kind(ours[k]) is kind(reference[k]) for k in ours
    )


@pytest.mark.parametrize(
    "text",
    [
        "a,b,c,d,e,f,g,h,dataset,config_hash\n1,-2.5,1e-05,True,false,,nan,x y,7,1e5\n",
        'a,b,c,row\n+3,.5,inf,"Krum, (paper)"\n',
        "a,b,c,name\n\n1,-inf,NA,None\n",
        "a,b,c,defense\n4,5.0\n",  # a short row: the rest missing
        "a,b,attack\n12345678901234,0.30000000000000004,alie\n",
    ],
)
def test_read_summary_reads_as_pandas_reads(tmp_path: Path, text: str):
    """Each with a text column, as every summary has (a row of numbers only, pandas makes all floats)."""
    path = tmp_path / "summary.csv"
    path.write_text(text)
    assert same_values(collect.read_summary(path), pandas_summary(path))


def test_read_summary_reads_committed_runs_as_pandas_does():
    paths = sorted((ROOT / "results").rglob("summary.csv"))[::10]
    assert len(paths) > 100
    for path in paths:
        assert same_values(collect.read_summary(path), pandas_summary(path)), path


@pytest.mark.parametrize(
    "text,message",
    [("", "unreadable summary.csv"), ("a,b\n", "has no row"), ("a\n1,2\n", "unreadable summary.csv")],
)
def test_read_summary_refuses_an_empty_or_malformed_file(tmp_path: Path, text: str, message: str):
    path = tmp_path / "summary.csv"
    path.write_text(text)
    with pytest.raises(collect.Unreadable, match=message):
        collect.read_summary(path)


def test_collect_skips_unreadable_runs_and_counts_copies_once(written):
    res, _, err = written
    runs = collect.collect(res)
    assert len(runs) == 24
    assert "same config_hash as runs/backup/copy, counted once" in err
    assert not any(r.name.startswith("paper/") for r in runs)
    assert "no config.yaml" in err and "unreadable config.yaml" in err
    assert not any(r.seed in (8, 9) for r in runs)


# ---------------------------------------------------------------- paper tables


def test_seeds_of_the_same_settings_pool(written):
    res, _, _ = written
    rows = md_rows((res / "table1_mnist.md").read_text())
    assert rows["No Attack"] == [
        "96.0 ± 1.0 (3)", "s1 95.0 · s2 96.0 · s3 97.0", "95.3 ± 1.5 (3)", "s1 94.0 · s2 95.0 · s3 97.0",
        "96.1", "-0.1",
    ]  # fmt: skip
    assert rows["No Defense"] == ["91.0 ± 1.4 (2)", "s1 90.0 · s2 92.0", "90.0 ± 1.4 (2)",
                                  "s1 89.0 · s2 91.0", "91.1", "-0.1"]  # fmt: skip
    assert rows["Bulyan (paper)"] == ["86.0 ± 1.4 (2)†", "s1 85.0 · s2 87.0†", "84.0 (1)", "s1 84.0 · s2 –†",
                                      "87.9", "-1.9"]  # fmt: skip
    csv = pd.read_csv(res / "table1_mnist.csv")
    no_attack = csv[csv["row"] == "No Attack"].iloc[0]
    assert (no_attack["mean"], no_attack["std"], no_attack["seeds"]) == (96.0, 1.0, 3)
    assert no_attack["final_mean"] == pytest.approx(95.3333) and no_attack["final_std"] == pytest.approx(
        math.sqrt(7 / 3), abs=1e-4
    )
    assert no_attack["per_seed"] == "s1 95.0 · s2 96.0 · s3 97.0" and no_attack["diff"] == pytest.approx(-0.1)


def test_row_order_and_both_conventions_beside_the_same_paper_number(written):
    res, _, _ = written
    rows = md_rows((res / "table1_mnist.md").read_text())
    assert list(rows) == [*specs.TABLE1.rows, "median / alie"]
    assert rows["Krum (paper)"][0] == "80.0 (1)" and rows["Krum (ALIE code)"][0] == "77.0 (1)"
    assert rows["Krum (paper)"][4:] == ["78.5", "+1.5"] and rows["Krum (ALIE code)"][4:] == ["78.5", "-1.5"]
    assert rows["median / alie"][4:] == ["–", "–"]  # no paper number for an unlabelled row


def test_missing_cells_stay_missing(written):
    res, _, _ = written
    rows = md_rows((res / "table1_mnist.md").read_text())
    assert rows["Trimmed Mean (ALIE code)"] == ["–", "–", "–", "–", "88.3", "–"]
    csv = pd.read_csv(res / "table1_mnist.csv", keep_default_na=False)
    trimmed = csv[csv["row"] == "Trimmed Mean (paper)"].iloc[0]
    assert (
        trimmed["mean"] == ""
        and trimmed["per_seed"] == ""
        and trimmed["diff"] == ""
        and trimmed["seeds"] == 0
    )
    tex = (res / "table1_mnist.tex").read_text()
    line = next(line for line in tex.splitlines() if line.startswith("Trimmed Mean (paper) &"))
    assert line == r"Trimmed Mean (paper) & -- & -- & -- & -- & 88.3 & -- \\"


def test_caption_is_written_from_the_runs_settings(written):
    res, _, _ = written
    title = (res / "table1_mnist.md").read_text().splitlines()[0]
    assert title == (
        "## table1_mnist: ALIE Table 1 (convergence prevention), MNIST, model mlp: n=51, m=12, z=1.5, "
        "300 rounds, batch 128 per worker, lr 0.1 constant, server momentum 0.9, sampling alie_code, "
        "evaluation every 5 rounds from round 1, 1–3 seeds per row"
    )
    assert specs.TABLE1.convention_note in (res / "table1_mnist.md").read_text()


def test_caption_follows_batch_size_and_lr(tmp_path: Path, capsys):
    for seed in (1, 2):
        write_run(tmp_path, "mean", "none", seed, config={"row": "No Attack", "batch_size": 32, "lr": 0.05})
    assert report.main(["--results-dir", str(tmp_path)]) == 0
    title = (tmp_path / "table1_mnist.md").read_text().splitlines()[0]
    assert "batch 32 per worker, lr 0.05 constant" in title and title.endswith("2 seeds")
    assert "z=" not in title  # no attacked row: no z


def test_runs_differing_only_in_rounds_never_pool(written):
    res, _, _ = written
    short = stem_of(res, "table1_mnist")
    assert re.fullmatch(r"table1_mnist-[0-9a-f]{6}", short)
    text = (res / f"{short}.md").read_text()
    assert text.splitlines()[0] == (
        f"## {short}: ALIE Table 1 (convergence prevention), MNIST (shortened: 50 of the paper's 300 rounds, "
        "not comparable with the paper's numbers), model mlp: n=51, m=12, 50 rounds, batch 128 per "
        "worker, lr 0.1 constant, server momentum 0.9, sampling alie_code, evaluation every 5 rounds from "
        "round 1, 1 seed"
    )
    assert "Protocol differs from table1_mnist in: rounds=50 (there 300)." in text
    assert md_rows(text)["No Attack"] == ["60.0 (1)", "s1 60.0", "59.0 (1)", "s1 59.0", "96.1", "–"]
    assert md_rows((res / "table1_mnist.md").read_text())["No Attack"][0] == "96.0 ± 1.0 (3)"
    csv = pd.read_csv(res / f"{short}.csv")
    assert csv["shortened"].all() and csv["diff"].isna().all() and (csv["rounds"] == 50).all()


def test_each_dataset_is_its_own_section(written):
    res, _, _ = written
    rows = md_rows((res / "table1_cifar10.md").read_text())
    assert rows["Krum (paper)"] == ["20.0 (1)", "s1 20.0", "19.0 (1)", "s1 19.0", "20.3", "-0.3"]
    assert rows["No Attack"][:4] == ["–"] * 4


def test_runs_differing_only_in_a_defense_option_never_pool(tmp_path: Path, capsys):
    write_run(tmp_path, "krum", "alie", 1, 80.0, config={"row": "Krum (paper)"})
    write_run(tmp_path, "krum", "alie", 2, 82.0, config={"row": "Krum (paper)"})
    write_run(tmp_path, "krum", "alie", 1, 70.0, config={"row": "Krum (paper)", "defense.neighbours": "x"})
    assert report.main(["--results-dir", str(tmp_path)]) == 0
    assert "share the label 'Krum (paper)'" in capsys.readouterr().err
    rows = md_rows((tmp_path / "table1_mnist.md").read_text())
    assert rows["Krum (paper) [defense.neighbours=paper]"][:2] == ["81.0 ± 1.4 (2)", "s1 80.0 · s2 82.0"]
    assert rows["Krum (paper) [defense.neighbours=x]"][:2] == ["70.0 (1)", "s1 70.0"]
    assert rows["Krum (paper) [defense.neighbours=x]"][4] == "78.5"  # still beside the paper's Krum
    assert not list(tmp_path.glob("table1_mnist-*"))  # one protocol: rows differ in defense.* only


def test_table2_benign_and_both_backdoor_metrics(written):
    res, _, _ = written
    text = (res / "table2_mnist.md").read_text()
    header = text.splitlines()[2]
    assert header.startswith("| Row | benign max | benign max per seed | benign final |")
    assert "| backdoor (test images) max |" in header and "| backdoor (attacker's images) Δ |" in header
    rows = md_rows(text)
    benign, test_images, own = (rows["No Defense (paper)"][i : i + 6] for i in (0, 6, 12))
    assert benign == [
        "96.0 ± 1.4 (2)",
        "s1 95.0 · s2 97.0",
        "95.0 ± 1.4 (2)",
        "s1 94.0 · s2 96.0",
        "96.0",
        "+0.0",
    ]
    assert test_images == ["35.0 ± 7.1 (2)", "s1 30.0 · s2 40.0", "30.0 ± 7.1 (2)", "s1 25.0 · s2 35.0",
                           "36.9", "-1.9"]  # fmt: skip
    assert own == ["70.0 ± 14.1 (2)", "s1 60.0 · s2 80.0", "60.0 ± 14.1 (2)", "s1 50.0 · s2 70.0",
                   "36.9", "+33.1"]  # fmt: skip
    assert rows["No Attack"][:6] == ["96.5 ± 0.7 (2)", "s1 96.0 · s2 97.0", "95.5 ± 0.7 (2)",
                                     "s1 95.0 · s2 96.0", "96.1", "+0.4"]  # fmt: skip
    assert rows["No Attack"][6:] == ["–"] * 12  # no backdoor values without an attack
    assert rows["No Defense (ALIE code)"][4] == "96.0" and rows["Krum (ALIE code)"][10] == "100.0"
    csv = pd.read_csv(res / "table2_mnist.csv")
    assert set(csv.loc[csv["row"] == "No Attack", "metric"]) == {"max_test_acc"}
    own_line = csv[(csv["row"] == "No Defense (paper)") & (csv["metric"] == "max_backdoor_acc_own")].iloc[0]
    assert (own_line["mean"], own_line["paper"], own_line["final_mean"]) == (70.0, 36.9, 60.0)
    assert "z=0.2, α=0.2" in text.splitlines()[0]


# ---------------------------------------------------------------- momentum


def test_momentum_table_keys_on_every_setting_but_seed_and_placement(written):
    res, _, err = written
    lines = (res / "momentum_mnist.md").read_text().splitlines()
    assert lines[2] == (
        "| Dataset | Attack | Defense | f | lr | server | server per seed | worker | worker per seed "
        "| Δ (worker − server) |"
    )
    assert lines[4] == "| MNIST | little | dm_krum | 24 | 0.02 | – | – | 50.0 (1) | s1 50.0 | – |"
    assert (
        lines[5]
        == "| MNIST | little | dm_krum [weight_decay=0.0001] | 24 | 0.5 | 60.0 (1) | s1 60.0 | – | – | – |"
    )
    assert lines[6] == (
        "| MNIST | little | dm_krum [weight_decay=0.0] | 24 | 0.5 | 81.0 ± 1.4 (2) | s1 80.0 · s2 82.0 "
        "| 92.0 ± 2.8 (2) | s1 90.0 · s2 94.0 | +11.0 |"
    )
    assert "lr {0.02, 0.5} constant" in lines[0] and "weight decay {0, 0.0001}" in lines[0]
    csv = pd.read_csv(res / "momentum_mnist.csv")
    pooled = csv[csv["variant"] == "[weight_decay=0.0]"].iloc[0]
    assert (pooled["server_mean"], pooled["worker_mean"], pooled["diff"]) == (81.0, 92.0, 11.0)
    assert pooled["worker_std"] == pytest.approx(math.sqrt(8), abs=1e-4) and pooled["server_seeds"] == 2
    fashion = md_rows((res / "momentum_fashion_mnist.md").read_text())
    assert fashion["Fashion-MNIST"] == [
        "little",
        "trimmed_mean",
        "12",
        "0.5",
        "70.0 (1)",
        "s1 70.0",
        "–",
        "–",
        "–",
    ]
    assert "2 rows with distinct settings share the label 'little / dm_krum / f=24 / lr=0.5'" in err


# ---------------------------------------------------------------- files


def test_files_written_and_latex_well_formed(written):
    res, out, _ = written
    short = stem_of(res, "table1_mnist")
    stems = [
        "table1_mnist",
        short,
        "table1_cifar10",
        "table2_mnist",
        "momentum_mnist",
        "momentum_fashion_mnist",
    ]
    for stem in stems:
        for ext in ("md", "csv", "tex"):
            assert f"wrote {res / f'{stem}.{ext}'}" in out
        tex = (res / f"{stem}.tex").read_text()
        assert r"\begin{tabular}" in tex and tex.rstrip().endswith(r"\end{tabular}")
        assert not set("±Δ–−†α·") & set(tex), stem
        text = re.sub(r"(?m)^% ", "", tex).replace(" & ", " ")
        assert not re.search(r"(?<!\\)[_%&]", text), stem
        columns = len(tex.split(r"\begin{tabular}{")[1].split("}")[0])
        body = [line for line in tex.splitlines() if line.endswith(r"\\") and r"\multicolumn" not in line]
        assert all(line.count(" & ") == columns - 1 for line in body), stem
    pngs = [f"{s}_curves.png" for s in stems[:4]] + ["momentum_mnist_variance_norm.png"]
    for name in pngs:
        assert (res / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (res / "momentum_fashion_mnist_variance_norm.png").exists()  # no ratio logged
    assert not list(res.glob(".*.tmp")) and not list(res.glob("table1.*"))
    tables = (res / "tables.md").read_text()
    order = [tables.index(f"## {stem}:") for stem in stems]
    assert order == sorted(order)
    assert "runs/" not in tables and str(res) not in tables


def test_the_same_runs_give_the_same_bytes(written, tmp_path: Path):
    res, _, _ = written
    again = tmp_path / "elsewhere"
    shutil.copytree(res / "runs", again / "runs")
    run_in_process(again)
    first = {p.name: p.read_bytes() for p in res.iterdir() if p.is_file()}
    second = {p.name: p.read_bytes() for p in again.iterdir() if p.is_file()}
    # paper sections, their plots, tables.md; the generic table of the run without a table name (3 files,
    # its curves) and its worst case (3 files, the heatmap)
    assert sorted(first) == sorted(second) and len(first) == 6 * 3 + 5 + 1 + 4 + 4
    assert [name for name in first if first[name] != second[name]] == []


def test_paper_numbers_ship_with_the_package():
    assert specs.PAPER_NUMBERS == ROOT / "byzrun" / "report" / "paper_numbers.csv"
    paper = pd.read_csv(specs.PAPER_NUMBERS)
    assert list(paper.columns) == specs.PAPER_COLUMNS and len(paper) == 15 + 27
    assert not paper.duplicated(["paper", "table", "row", "dataset", "metric"]).any()
    numbers = specs.load_paper_numbers()
    assert numbers[("table1", "Krum", "cifar100", "max_test_acc")] == 16.9
    assert numbers[("table2", "Bulyan", "cifar10", "max_backdoor_acc")] == 84.3
    assert specs.paper_row("Krum (ALIE code)") == specs.paper_row("Krum (paper)") == "Krum"


def test_paper_numbers_option(tmp_path: Path, capsys):
    write_run(tmp_path, "mean", "none", 1, 50.0, config={"row": "No Attack"})
    own = tmp_path / "mine.csv"
    own.write_text(
        "paper,table,row,dataset,metric,value,source\nalie,table1,No Attack,mnist,max_test_acc,40,x\n"
    )
    assert report.main(["--results-dir", str(tmp_path), "--paper-numbers", str(own)]) == 0
    assert md_rows((tmp_path / "table1_mnist.md").read_text())["No Attack"][4:] == ["40.0", "+10.0"]
    assert report.main(["--results-dir", str(tmp_path), "--paper-numbers", str(tmp_path / "no.csv")]) == 1
    assert "cannot read the paper numbers" in capsys.readouterr().err


# ---------------------------------------------------------------- the script


def run_script(monkeypatch, *args: str) -> int:
    """scripts/make_tables.py as `python scripts/make_tables.py <args>` runs it, in this process: its
    exit status."""
    monkeypatch.setattr(sys, "argv", [str(ROOT / "scripts" / "make_tables.py"), *args])
    with pytest.raises(SystemExit) as exit:
        runpy.run_path(str(ROOT / "scripts" / "make_tables.py"), run_name="__main__")
    return exit.value.code


def test_exit_codes(tmp_path: Path, capsys, monkeypatch):
    assert report.main(["--results-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip().splitlines() == [
        f"byzrun tables: no runs found (no summary.csv under {tmp_path}/runs/); produce some with "
        "e.g. `byzrun -m experiment=table1_mnist`, then run `make tables` again."
    ]
    assert not list(tmp_path.iterdir())
    assert report.main(["--results-dir", str(tmp_path / "nowhere")]) == 1
    assert "does not exist" in capsys.readouterr().err
    write_run(tmp_path, config={"name": None})
    assert report.main(["--results-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out  # a run launched for no paper table: the generic table
    assert "0 for the paper tables" in out and f"wrote {tmp_path / 'sweep.md'}" in out
    assert not (tmp_path / "tables.md").exists()
    assert run_script(monkeypatch, "--results-dir", str(tmp_path / "nowhere")) == 1
    assert "does not exist" in capsys.readouterr().err


# ---------------------------------------------------------------- the authors' code's runs

CODE_SETTINGS = {
    "mal_prop": 0.24, "num_std": 1.5, "defense": "Krum", "dataset": "MNIST", "backdoor_attack": False,
    "alpha": 4, "learning_rate": 0.1, "fading_rate": 10000, "momentum": 0.9, "batch_size": 128,
    "users_count": 51, "epochs": 300, "mal_epochs": 5, "loss": "MSE", "output": "out.txt",
}  # fmt: skip


def code_log(
    tests: list[tuple[int, float]], posts: list[float] = (), finished: bool = True, **settings
) -> str:
    """A log as the authors' code writes it: settings (with its print function), tests after the given
    0-based rounds, each (backdoor) after the attacker's training and followed by its [POST] test."""
    function = "'my_print': <function main.<locals>.my_print at 0x7f>}"
    lines = [repr({**CODE_SETTINGS, **settings})[:-1] + f", {function}", "Completed Users: ---"]
    lines += [
        "BEFORE: Test set. Average loss: 0.0187, Accuracy: 995/10000 (9.95%)"
        if posts
        else "Starting Training..."
    ]
    malicious = "##Test malicious net: [{}] Average loss: 0.0266, Accuracy: {}/2000.0 ({:.2f}%)"
    for i, (epoch, acc) in enumerate(tests):
        lines += [malicious.format(4, 2000, 100.0)] if posts else []
        lines.append(
            f"Test set: [{epoch:3d}] Average loss: 0.01, Accuracy: {acc * 100:.0f}/10000 ({acc:.2f}%)"
        )
        lines += [malicious.format("POST", round(posts[i] * 20), posts[i])] if posts else []
    if finished:
        lines += ["08:47:21.841978", f"Max accuracy: {max(a for _, a in tests)}"]
    return "\n".join(lines) + "\n"


def write_code_logs(logs: Path) -> Path:
    logs.mkdir()
    (logs / "out_krum_10.txt").write_text(code_log([(0, 31.12), (5, 82.5), (10, 80.0)]))
    (logs / "out_krum_9.txt").write_text(code_log([(0, 30.0), (5, 70.1), (10, 75.0)]))
    posts = [13.3, 80.0, 66.0]
    backdoor = code_log([(0, 27.13), (5, 79.68), (9, 97.0)], posts, defense="NoDefense",
                        backdoor_attack="pattern", num_std=0.2)  # fmt: skip
    (logs / "out_bd_nodef_1.txt").write_text(backdoor)
    (logs / "out_noattack_1.txt").write_text(
        code_log([(0, 40.0), (10, 97.5)], defense="NoDefense", num_std=0.0)
    )
    (logs / "out_tm_1.txt").write_text(
        code_log([(0, 30.0), (5, 60.0)], finished=False, defense="TrimmedMean")
    )
    (logs / "err_krum_9.txt").write_text("UserWarning: something\n")
    return logs


def alie_code_runs_script():
    spec = importlib.util.spec_from_file_location("alie_code_runs", ROOT / "scripts" / "alie_code_runs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_code_logs_parse_into_tidy_lines(tmp_path: Path, capsys):
    logs = write_code_logs(tmp_path / "logs")
    out = tmp_path / "out" / "alie_code_runs.csv"
    assert alie_code_runs_script().main(["--logs", str(logs), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "skipped out_tm_1.txt: unfinished (no 'Max accuracy' line)" in printed
    assert "1 *.txt without a settings line ignored: err_krum_9.txt" in printed
    assert f"4 finished run(s), 5 line(s); wrote {out}" in printed
    assert out.read_text().splitlines() == [
        ",".join(code_runs.COLUMNS),
        "table1,mnist,Krum (ALIE code),out_krum_9,51,12,1.5,300,128,0.1,75.00,75.00,,,3",
        "table1,mnist,Krum (ALIE code),out_krum_10,51,12,1.5,300,128,0.1,82.50,80.00,,,3",
        "table1,mnist,No Attack,out_noattack_1,51,12,0.0,300,128,0.1,97.50,97.50,,,2",
        "table2,mnist,No Attack,out_noattack_1,51,12,0.0,300,128,0.1,97.50,97.50,,,2",
        "table2,mnist,No Defense (ALIE code),out_bd_nodef_1,51,12,0.2,300,128,0.1,97.00,97.00,80.00,66.00,3",
    ]
    first = out.read_bytes()
    assert alie_code_runs_script().main(["--logs", str(logs), "--out", str(out)]) == 0
    assert out.read_bytes() == first and not list(out.parent.glob(".*.tmp"))
    assert alie_code_runs_script().main(["--logs", str(tmp_path / "nowhere"), "--out", str(out)]) == 1


def code_line(
    table: str, row: str, run: str, acc: float, z: float = 1.5, rounds: int = 300, own=None
) -> dict:
    return {"table": table, "dataset": "mnist", "row": row, "run": run, "n": 51, "m": 12, "z": z,
            "rounds": rounds, "batch_size": 128, "lr": 0.1, "max_test_acc": acc, "final_test_acc": acc - 2,
            "max_backdoor_acc_own": own, "final_backdoor_acc_own": None if own is None else own - 1,
            "evaluations": 61}  # fmt: skip


def code_sections(res: Path) -> Path:
    """byzrun runs of Table 1 (300 and 50 rounds) and Table 2, and the code's runs beside them."""
    for seed, acc in ((1, 77.0), (2, 79.0)):
        write_run(res, "krum", "alie", seed, acc, **table1("Krum (ALIE code)", **KRUM_CODE))
    write_run(res, "mean", "none", 1, 97.0, **table1("No Attack"))
    write_run(res, "krum", "alie", 1, 60.0, **table1("Krum (ALIE code)", rounds=50, **KRUM_CODE))
    fields = {"max_backdoor_acc": 30.0, "final_backdoor_acc": 25.0, "max_backdoor_acc_own": 60.0,
              "final_backdoor_acc_own": 50.0}  # fmt: skip
    write_run(res, "mean", "alie_backdoor", 1, 95.0, summary=fields,
              config={"row": "No Defense (ALIE code)", **T2})  # fmt: skip
    return res


def test_code_runs_sit_beside_the_matching_rows_only(tmp_path: Path):
    res = code_sections(tmp_path / "results")
    run_in_process(res)
    short = stem_of(res, "table1_mnist")
    before = {p.name: p.read_bytes() for p in res.glob("table*") if p.suffix in (".md", ".csv", ".tex")}
    lines = [
        code_line("table1", "Krum (ALIE code)", "out_krum_10", 84.0),
        code_line("table1", "Krum (ALIE code)", "out_krum_9", 80.0),
        code_line("table1", "Krum (ALIE code)", "out_krum_3", 70.0, rounds=100),  # no section
        code_line("table1", "Krum (ALIE code)", "out_krum_z1", 50.0, z=1.0),  # another z
        code_line("table1", "No Attack", "out_noattack_1", 97.5, z=0.0),
        code_line("table2", "No Defense (ALIE code)", "out_bd_1", 96.0, z=0.2, own=70.0),
    ]
    (res / code_runs.CODE_RUNS).write_text(code_runs.tidy(lines))
    _, err = run_in_process(res)
    assert "2 of 6 authors' code run line(s) in alie_code_runs.csv match no section" in err
    assert "table1/Krum (ALIE code)/out_krum_3" in err and "out_krum_z1" in err
    text = (res / "table1_mnist.md").read_text()
    assert text.splitlines()[2] == (
        "| Row | max | max per seed | final | final per seed | paper | Δ | authors' code max "
        "| authors' code per run | Δ vs code |"
    )
    rows = md_rows(text)
    assert rows["Krum (ALIE code)"] == ["78.0 ± 1.4 (2)", "s1 77.0 · s2 79.0", "77.0 ± 1.4 (2)",
                                        "s1 76.0 · s2 78.0", "78.5", "-0.5", "82.0 ± 2.8 (2)",
                                        "out_krum_9 80.0 · out_krum_10 84.0", "-4.0"]  # fmt: skip
    assert rows["No Attack"][6:] == ["97.5 (1)", "out_noattack_1 97.5", "-0.5"]
    assert rows["Krum (paper)"][6:] == ["–", "–", "–"]
    assert (
        "authors' code: the ALIE authors' public code, unmodified, on the same MNIST files; max over" in text
    )
    csv = pd.read_csv(res / "table1_mnist.csv")
    krum = csv[csv["row"] == "Krum (ALIE code)"].iloc[0]
    assert (krum["code_mean"], krum["code_runs"], krum["code_diff"]) == (82.0, 2, -4.0)
    assert krum["code_std"] == pytest.approx(math.sqrt(8), abs=1e-4)
    bulyan = csv[csv["row"] == "Bulyan (paper)"].iloc[0]
    assert bulyan["code_runs"] == 0 and pd.isna(bulyan["code_mean"]) and pd.isna(bulyan["code_per_run"])
    tex = (res / "table1_mnist.tex").read_text()
    assert r"out\_krum\_9 80.0 $\cdot$ out\_krum\_10 84.0" in tex
    body = [line for line in tex.splitlines() if line.endswith(r"\\")]
    assert all(line.count(" & ") == 9 for line in body)
    # the 50-round section has no code run of its rounds: its layout and bytes are unchanged
    for ext in ("md", "csv", "tex"):
        assert (res / f"{short}.{ext}").read_bytes() == before[f"{short}.{ext}"]
    assert "authors' code" not in (res / f"{short}.md").read_text()
    # Table 2: the benign and the attacker's-images metrics get the code's columns, test images not
    text2 = (res / "table2_mnist.md").read_text()
    header = text2.splitlines()[2]
    assert (
        "| benign Δ | benign authors' code max | benign authors' code per run | benign Δ vs code |" in header
    )
    assert "| backdoor (attacker's images) authors' code max |" in header
    assert "backdoor (test images) authors' code" not in header
    nodef = md_rows(text2)["No Defense (ALIE code)"]
    assert nodef[6:9] == ["96.0 (1)", "out_bd_1 96.0", "-1.0"]
    assert nodef[-3:] == ["70.0 (1)", "out_bd_1 70.0", "-10.0"]
    assert "attacker's own 2,000 triggered images" in text2


def test_layout_unchanged_without_code_runs(tmp_path: Path):
    res = code_sections(tmp_path / "results")
    run_in_process(res)
    before = {p.name: p.read_bytes() for p in res.iterdir() if p.is_file()}
    header = "| Row | max | max per seed | final | final per seed | paper | Δ |"
    assert (res / "table1_mnist.md").read_text().splitlines()[2] == header
    assert "code" not in (res / "table1_mnist.csv").read_text().splitlines()[0]
    (res / code_runs.CODE_RUNS).write_text(code_runs.tidy([]))  # no run: no column either
    run_in_process(res)
    after = {p.name: p.read_bytes() for p in res.iterdir() if p.is_file() and p.name != code_runs.CODE_RUNS}
    assert after == before


def test_runs_on_different_copies_of_the_data_are_never_pooled(tmp_path: Path, capsys):
    write_run(
        tmp_path, "krum", "alie", 1, 80.0, config={"row": "Krum (paper)"}, summary={"data_fingerprint": "aa"}
    )
    write_run(
        tmp_path, "krum", "alie", 2, 82.0, config={"row": "Krum (paper)"}, summary={"data_fingerprint": "bb"}
    )
    assert report.main(["--results-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "trained on different data (fingerprints aa and bb)" in err[0]
    assert not (tmp_path / "tables.md").exists()


PAPER = ROOT / "results" / "paper"


def committed_tables(names: set[str] | None = None) -> list[str]:
    """The committed tables of results/paper (.md, .csv, .tex; not its README nor the input
    alie_code_runs.csv), or those of them named."""
    inputs = ("README.md", code_runs.CODE_RUNS)
    found = (p.name for p in PAPER.glob("*") if p.suffix in (".md", ".csv", ".tex") and p.name not in inputs)
    return sorted(n for n in found if names is None or n in names)


def test_the_committed_reproduction_regenerates_exactly(tmp_path, monkeypatch):
    """`make tables RESULTS=results/paper` gives back the committed tables, byte for byte, from all its
    runs. Without drawing the plots: the PNGs depend on the matplotlib version and are not compared, and
    drawing was most of this test's time (the next test draws those of Tables 1 and 2)."""
    monkeypatch.setattr(report, "plot_section", lambda section, path: False)
    monkeypatch.setattr(report, "plot_variance_norm", lambda section, path: False)
    assert report.main(["--results-dir", str(PAPER), "--out", str(tmp_path)]) == 0
    written = sorted(p.name for p in tmp_path.glob("*") if p.suffix in (".md", ".csv", ".tex"))
    assert written == committed_tables()
    for name in written:
        assert (tmp_path / name).read_bytes() == (PAPER / name).read_bytes(), name


def test_the_runs_of_tables_1_and_2_regenerate_theirs_exactly_with_their_plots(tmp_path):
    """The whole pipeline, plots included, on a copy of the reproduction's Table 1 and 2 runs (its
    momentum runs left out): their tables byte for byte, their curves as PNG files."""
    (tmp_path / "runs").mkdir()
    for config in sorted((PAPER / "runs").glob("*/config.yaml")):
        if collect.read_config(config)["name"] in ("table1", "table2"):
            shutil.copytree(config.parent, tmp_path / "runs" / config.parent.name)
    assert len(list((tmp_path / "runs").iterdir())) == 50 + 45
    shutil.copy(PAPER / "alie_code_runs.csv", tmp_path)
    assert report.main(["--results-dir", str(tmp_path)]) == 0
    stems = ("table1_mnist", "table2_mnist")
    expected = committed_tables({f"{stem}.{ext}" for stem in stems for ext in ("md", "csv", "tex")})
    assert len(expected) == 6
    for name in expected:
        assert (tmp_path / name).read_bytes() == (PAPER / name).read_bytes(), name
    for stem in stems:
        assert (tmp_path / f"{stem}_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob("momentum_*"))


def test_momentum_attacks_are_named_by_the_preset_their_settings_match():
    """The Distributed Momentum paper's "little" and "empire" are byzrun's alie and ipm with that
    code's options: a run is labelled by the preset its attack.* settings equal."""
    from byzrun.report.collect import Run
    from byzrun.report.presets import attack_label, presets

    def run(attack, settings):
        return Run(Path("r"), "r", {"attack": attack}, 1, {"name": "momentum", **settings})

    assert attack_label(run("alie", presets("attack")["little"])) == "little"
    assert attack_label(run("ipm", presets("attack")["empire"])) == "empire"  # also ipm.yaml's defaults
    assert attack_label(run("alie", presets("attack")["alie"])) == "alie"
    changed = {**presets("attack")["little"], "attack.factor": 2.0}
    assert attack_label(run("alie", changed)) == "alie"  # no preset: the summary's name
