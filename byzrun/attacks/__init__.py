"""Attacks. Each attack is one class here and one YAML in conf/attack/."""

from byzrun.attacks.base import Attack, AttackContext
from byzrun.attacks.none import NoAttack

__all__ = ["Attack", "AttackContext", "NoAttack"]


def build(cfg) -> Attack:
    """Instantiate the attack described by the `attack` config group."""
    from hydra.utils import instantiate

    return instantiate(cfg, _convert_="all")
