"""The one place where the config's `defense` and `attack` groups become objects.

    defense group -> Pipeline(pre-aggregation steps, rule)    (byzrun.preaggregation)
    attack group  -> Attack                                   (byzrun.attacks)

A group's `_target_` names the class: byzrun.defenses.<Class> or byzrun.attacks.<Class> (found by
the registries, see byzrun/registry.py), or module.Class of a package of your own. Its other keys are
the class's options, except the three keys every defense YAML has, which configure the pipeline
around the rule: `pre` (the pre-aggregation steps, by name), `name` (the run's label) and
`allow_out_of_bound`. The flow is one way: train.prepare validates the top-level settings
(byzrun.config), then builds here; nothing here calls back into the config module.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from byzrun.attacks import Attack
from byzrun.defenses import Defense
from byzrun.errors import ByzrunError, ConfigError
from byzrun.preaggregation import STEPS, Pipeline, PreAggregator

#: keys of a defense YAML that configure the pipeline, not the rule
PIPELINE_KEYS = ("pre", "name", "allow_out_of_bound")


def build_defense(cfg: DictConfig | Mapping) -> Pipeline:
    """The server's aggregation described by the `defense` group: its rule behind its `pre` steps."""
    options = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    pipeline = {key: options.pop(key, None) for key in PIPELINE_KEYS}
    rule = instantiate_group(options, "defense")
    if not isinstance(rule, Defense):
        raise ConfigError(f"defense._target_ {options.get('_target_')!r} is not a Defense")
    return Pipeline(
        rule,
        build_steps(pipeline["pre"]),
        name=pipeline["name"],
        allow_out_of_bound=bool(pipeline["allow_out_of_bound"]),
    )


def build_steps(pre: Any) -> tuple[PreAggregator, ...]:
    """Pre-aggregation steps from `defense.pre`: names (`nnm`), dicts `{name: bucketing, s: 3}`,
    dicts with a `_target_` (a step of your own package), or steps already built."""
    if pre is None:
        return ()
    if isinstance(pre, (str, Mapping, PreAggregator)):
        pre = [pre]
    steps = []
    for entry in pre if isinstance(pre, Iterable) else [pre]:
        if isinstance(entry, PreAggregator):
            steps.append(entry)
            continue
        if isinstance(entry, Mapping) and "_target_" in entry:
            steps.append(instantiate_group(entry, "defense.pre"))
            continue
        options = {}
        if isinstance(entry, Mapping):
            options = {k: v for k, v in entry.items() if k != "name"}
            entry = entry.get("name")
        known = STEPS.classes()
        if not isinstance(entry, str) or entry not in known:
            raise ConfigError(f"unknown pre-aggregation {entry!r} in defense.pre; known: {', '.join(known)}")
        try:
            steps.append(known[entry](**options))
        except TypeError as e:
            raise ConfigError(f"bad options for pre-aggregation {entry!r}: {e}") from None
    return tuple(steps)


def build_attack(cfg: DictConfig | Mapping) -> Attack:
    """The attack described by the `attack` group."""
    attack = instantiate_group(cfg, "attack")
    if not isinstance(attack, Attack):
        raise ConfigError(f"attack._target_ {cfg.get('_target_')!r} is not an Attack")
    return attack


def check_attack_early(attack: Attack, n: int, m: int) -> None:
    """Check the attack's options before any data is loaded (validate without data); what needs the data
    (a backdoor's target class, trigger, samples) is checked again once it is loaded."""
    try:
        attack.validate(n=n, m=m, data=None)
    except AttributeError:  # an option that needs the data: train.prepare validates again with it
        pass


def instantiate_group(cfg: DictConfig | Mapping, group: str) -> Any:
    """Build the object a config group describes (its `_target_` class with the group's options).

    Hydra wraps whatever the constructor raises; a ByzrunError (an option the class rejects) comes
    out as itself, and an option the class does not know becomes a one-line ConfigError.
    """
    try:
        return instantiate(cfg, _convert_="all")
    except InstantiationException as e:
        cause = e.__cause__
        if isinstance(cause, ByzrunError):
            raise cause from None
        if isinstance(cause, TypeError) and "unexpected keyword argument" in str(cause):
            key = str(cause).rsplit(" ", 1)[-1].strip("'")
            hint = f"; see conf/{group}/ for its options" if "." not in group else ""
            raise ConfigError(f"{group} has no option {key!r}{hint}") from None
        raise ConfigError(f"cannot build {group}: {cause or e}") from None
