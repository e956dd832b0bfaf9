"""The conf/ preset a run's attack was built from, recognised by its settings.

A run's summary names its attack by class (`alie`, `ipm`); the Distributed Momentum paper names the
same attacks as its code configures them, "little" and "empire", which are the presets
conf/attack/little.yaml and conf/attack/empire.yaml. A run whose attack.* settings equal exactly one
preset's is labelled by that preset's name. When two match (empire's settings are also ipm.yaml's
defaults), the preset named after the attack itself says less, so the other one names the run.
"""

from __future__ import annotations

from functools import cache

from omegaconf import OmegaConf

from byzrun.paths import CONF_DIR
from byzrun.report.collect import Run, result_settings


@cache
def presets(group: str) -> dict[str, dict]:
    """Every preset of a config group as the flat settings a run of it records (`attack.factor`, ...)."""
    found = {}
    for path in sorted((CONF_DIR / group).glob("*.yaml")):
        tree = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
        found[path.stem] = result_settings({group: tree})
    return found


def preset_name(run: Run, group: str) -> str | None:
    """The preset whose settings the run's `group` settings equal (among several, the one not named
    after the run's own class name), else None."""
    own = {k: v for k, v in run.settings.items() if k.startswith(f"{group}.")}
    matches = [name for name, settings in presets(group).items() if settings == own]
    if len(matches) > 1:
        matches = [name for name in matches if name != run.text(group)]
    return matches[0] if len(matches) == 1 else None


def attack_label(run: Run) -> str:
    """The attack's preset name when one preset matches, else its name in the summary."""
    return preset_name(run, "attack") or run.text("attack", "?")
