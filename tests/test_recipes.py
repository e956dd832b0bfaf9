"""The README's recipes work exactly as written: "Adding a defense" and "Adding an attack".

Each test takes the module, the YAML and the command from the README's code blocks, puts the two
files where the recipe says (the module in a temporary folder of the byzrun package, the YAML in a
temporary config folder on Hydra's search path, so that the repository stays untouched), and runs
the command through the real CLI, shortened to a few rounds on 11 workers.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pandas as pd
import pytest

import byzrun.attacks
import byzrun.defenses
from byzrun import catalog
from byzrun.build import build_attack
from byzrun.defenses import MAJORITY
from tests.conftest import make_cfg, run_cli

README = Path(__file__).resolve().parent.parent / "README.md"
SHORT = ["n=11", "batch_size=16", "rounds=3", "eval_every=3", "progress=false"]


def section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    return text[start : text.index("\n## ", start + 1)]


def code_blocks(text: str) -> dict[str, list[str]]:
    """language -> the fenced code blocks of that language, in order, dedented."""
    blocks: dict[str, list[str]] = {}
    for indent, language, body in re.findall(r"\n( *)```(\w+)\n(.*?)\n\1```", text, flags=re.S):
        lines = [line.removeprefix(indent) for line in body.split("\n")]
        blocks.setdefault(language, []).append("\n".join(lines) + "\n")
    return blocks


@pytest.fixture
def recipe(tmp_path, monkeypatch):
    """The files of a recipe, placed as it says: returns a function (package, module file, module
    text, group, YAML text) -> the arguments that put the YAML folder on Hydra's search path."""
    added = []

    def place(package, filename: str, module: str, group: str, yaml: str) -> list[str]:
        folder = tmp_path / "package"
        folder.mkdir(exist_ok=True)
        (folder / filename).write_text(module)
        monkeypatch.setattr(package, "__path__", [*package.__path__, str(folder)])
        added.append((package, filename.removesuffix(".py")))
        conf = tmp_path / "conf" / group
        conf.mkdir(parents=True, exist_ok=True)
        (conf / f"{filename.removesuffix('.py')}.yaml").write_text(yaml)
        return [f"hydra.searchpath=[file://{tmp_path / 'conf'}]", f"results_dir={tmp_path / 'results'}"]

    yield place
    for package, name in added:  # forget the module: the registry no longer finds it
        sys.modules.pop(f"{package.__name__}.{name}", None)
        if hasattr(package, name):
            delattr(package, name)


def summary(tmp_path: Path) -> pd.Series:
    (path,) = (tmp_path / "results").glob("runs/*/summary.csv")
    return pd.read_csv(path).iloc[0]


def test_adding_a_defense_as_the_readme_says(tmp_path, monkeypatch, capsys, recipe):
    blocks = code_blocks(section("Adding a defense"))
    module, yaml, commands = blocks["python"][0], blocks["yaml"][0], blocks["bash"][0].splitlines()
    assert commands == ["byzrun dataset=digits m=5 defense=cge attack=alie", "make readme"]
    where = recipe(byzrun.defenses, "cge.py", module, "defense", yaml)

    rule = byzrun.defenses.RULES.get("cge")  # the registry finds it, by name and by class name
    assert rule is byzrun.defenses.CGE and rule.bound is MAJORITY

    args = shlex.split(commands[0])[1:]
    assert run_cli(monkeypatch, *args, *SHORT, *where) == 0
    run = summary(tmp_path)
    assert (run["defense"], run["attack"], run["m"], run["rounds"]) == ("cge", "alie", 5, 3)
    metrics = pd.read_csv(next((tmp_path / "results").glob("runs/*/metrics.csv")))
    assert metrics["byz_selected"].notna().all()  # its select() is what the diagnostics count

    # the bound it declares is checked before training
    beyond = [arg for arg in args if not arg.startswith("m=")] + ["m=6"]
    assert run_cli(monkeypatch, *beyond, *SHORT, *where) == 2
    assert (
        "defense cge tolerates at most f=5 Byzantine workers with n=11 (f < n/2)" in capsys.readouterr().err
    )

    # `make readme` writes its row, with that bound
    row = catalog.rows("defense", tmp_path / "conf")["cge"]
    assert (
        row.startswith("| `cge` | CGE (Gupta et al. 2021): the mean of the n-f submissions")
        and "`f < n/2`" in row
    )


def test_a_defense_in_a_package_of_your_own(tmp_path, monkeypatch):
    """The same module in a package of your own, and `_target_: mypackage.cge.CGE`: byzrun untouched."""
    text = section("Adding a defense")
    assert "`_target_: mypackage.cge.CGE`" in text and "hydra.searchpath=[file:///path/to/myconf]" in text
    blocks = code_blocks(text)
    package = tmp_path / "src" / "mypackage"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "cge.py").write_text(blocks["python"][0])
    conf = tmp_path / "myconf" / "defense"
    conf.mkdir(parents=True)
    yaml = blocks["yaml"][0].replace("_target_: byzrun.defenses.CGE", "_target_: mypackage.cge.CGE")
    (conf / "cge.yaml").write_text(yaml)
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    try:
        args = [f"hydra.searchpath=[file://{tmp_path / 'myconf'}]", "defense=cge", "dataset=digits", "m=5"]
        assert run_cli(monkeypatch, *args, *SHORT, f"results_dir={tmp_path / 'results'}") == 0
        assert summary(tmp_path)["defense"] == "cge"
        assert byzrun.defenses.RULES.get("cge") is None  # not byzrun's: only its _target_ names it
    finally:
        for name in ("mypackage.cge", "mypackage"):
            sys.modules.pop(name, None)


def test_adding_an_attack_as_the_readme_says(tmp_path, monkeypatch, capsys, recipe):
    blocks = code_blocks(section("Adding an attack"))
    module, yaml, commands = blocks["python"][0], blocks["yaml"][0], blocks["bash"][0].splitlines()
    assert commands == ["byzrun dataset=digits m=5 defense=median attack=copycat", "make readme"]
    where = recipe(byzrun.attacks, "copycat.py", module, "attack", yaml)
    assert byzrun.attacks.ATTACKS.get("copycat") is byzrun.attacks.Copycat

    args = shlex.split(commands[0])[1:]
    assert run_cli(monkeypatch, *args, *SHORT, *where) == 0
    run = summary(tmp_path)
    assert (run["defense"], run["attack"], run["m"]) == ("median", "copycat", 5)

    # its options are checked before training, in one line
    assert run_cli(monkeypatch, *args, *SHORT, *where, "attack.target=6") == 2
    assert (
        capsys.readouterr().err.strip() == "byzrun: error: attack.target must be an integer in [0, 5], got 6"
    )

    # found by name, it is also a part the hybrid attack can run
    hybrid = build_attack(make_cfg("attack=hybrid", "attack.main=copycat").attack)
    hybrid.validate(n=11, m=5, data=None)
    assert type(hybrid.parts["main"]) is byzrun.attacks.Copycat

    row = catalog.rows("attack", tmp_path / "conf")["copycat"]
    assert row == (
        "| `copycat` | Copycat: every Byzantine worker sends a copy of honest worker `target`'s vector. "
        "| `target` |"
    )
