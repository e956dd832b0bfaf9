"""The package's shape: no import circle, a one-way flow from the config to the objects, every rule,
step and attack declaring what the registry and the README read, nothing pointing outside the
repository."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from byzrun import catalog
from byzrun.attacks import ATTACKS, Attack
from byzrun.defenses import RULES, Bound, Defense
from byzrun.preaggregation import STEPS, PreAggregator

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "byzrun"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """byzrun module -> the byzrun modules it imports, from every import statement in it (at the top,
    in functions, under TYPE_CHECKING). `from package import name` is an edge to package.name when
    that is a module, else to the package."""
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = set()
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                edges |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{anchor}.{base}" if base else anchor
                for alias in node.names:
                    edges.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
        graph[name] = {edge for edge in edges if edge in modules and edge != name}
    return graph


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def test_no_import_circle_anywhere_in_the_package():
    graph = import_graph()
    assert "byzrun.defenses.base" in graph and graph["byzrun.train"]  # the graph is real
    circles = sorted(name for name in graph if name in reachable(graph, name))
    assert not circles, f"modules on an import circle: {circles}"


def test_rules_never_import_pre_aggregation_and_config_never_builds():
    graph = import_graph()
    for name in graph:
        if name.startswith("byzrun.defenses"):
            assert not {m for m in reachable(graph, name) if m.startswith("byzrun.preaggregation")}, name
    # the flow is one way: the config is validated, then byzrun.build builds; config.py calls no builder
    assert not reachable(graph, "byzrun.config") & {
        "byzrun.build",
        "byzrun.defenses",
        "byzrun.attacks",
        "byzrun.preaggregation",
    }
    assert "byzrun.config" not in reachable(graph, "byzrun.build")


@pytest.mark.parametrize(
    "registry, base",
    [(RULES, Defense), (STEPS, PreAggregator), (ATTACKS, Attack)],
    ids=["rules", "steps", "attacks"],
)
def test_every_registered_class_declares_its_name_and_bound(registry, base):
    classes = registry.classes()
    assert len(classes) >= 2
    for name, cls in classes.items():
        assert issubclass(cls, base) and cls.name == name and cls.__doc__, cls
        if base is not Attack:
            assert isinstance(cls.bound, Bound) and cls.bound.text, cls


def test_every_defense_yaml_names_a_registered_rule():
    for path in (ROOT / "conf" / "defense").glob("*.yaml"):
        target = path.read_text().split("_target_: ")[1].split()[0]
        module, _, cls = target.rpartition(".")
        assert module == "byzrun.defenses" and RULES.by_class_name(cls) is not None, path.name


def test_the_readme_tables_read_the_bounds_and_options_from_their_sources():
    """Every row of the README's defense and attack tables is what `make readme` writes from the YAMLs
    and the classes (a new rule's row appears when `make readme` runs; a stale row fails here)."""
    text = (ROOT / "README.md").read_text()
    for group in ("defense", "attack"):
        assert catalog.stale_rows(text, group) == [], f"run `make readme`: {group} rows differ"
        assert set(catalog.readme_rows(text, group)) == set(catalog.rows(group))
    assert catalog.readme_rows(text, "defense")["bulyan"].split(" | ")[2] == "`n >= 4f+3`"


def test_nothing_points_outside_the_repository():
    """Comments and documents cite the papers by title and section, not notes that only exist beside
    the author's checkout."""
    outside = ["../" + "shared", "shared" + "/", "PAPER" + "_SETUP", "DESIGN" + ".md"]
    files = [ROOT / "README.md", ROOT / "Makefile", ROOT / "pyproject.toml"]
    for folder in ("byzrun", "conf", "scripts", "tests"):
        files += [p for p in (ROOT / folder).rglob("*") if p.suffix in (".py", ".yaml", ".md", ".csv")]
    found = [
        f"{path.relative_to(ROOT)}: {word}" for path in files for word in outside if word in path.read_text()
    ]
    assert not found
