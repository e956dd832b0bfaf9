"""Attacks. Each attack is one class here and one YAML in conf/attack/."""

from byzrun.attacks.alie import ALIE
from byzrun.attacks.alie_backdoor import ALIEBackdoor
from byzrun.attacks.base import Attack, AttackContext
from byzrun.attacks.gaussian import Gaussian
from byzrun.attacks.hidden_vulnerability import HiddenVulnerability
from byzrun.attacks.hybrid import Hybrid
from byzrun.attacks.ipm import IPM
from byzrun.attacks.label_flip import LabelFlip
from byzrun.attacks.non_finite import NonFinite
from byzrun.attacks.none import NoAttack
from byzrun.attacks.sign_flip import SignFlip

__all__ = [
    "ALIE",
    "ALIEBackdoor",
    "Attack",
    "AttackContext",
    "Gaussian",
    "HiddenVulnerability",
    "Hybrid",
    "IPM",
    "LabelFlip",
    "NonFinite",
    "NoAttack",
    "SignFlip",
    "REGISTRY",
    "build",
]

#: attack name (the YAML's file name under conf/attack/) -> class; hybrid builds its parts from it
REGISTRY: dict[str, type[Attack]] = {
    "none": NoAttack,
    "alie": ALIE,
    "alie_backdoor": ALIEBackdoor,
    "ipm": IPM,
    "sign_flip": SignFlip,
    "gaussian": Gaussian,
    "label_flip": LabelFlip,
    "non_finite": NonFinite,
    "hidden_vulnerability": HiddenVulnerability,
    "hybrid": Hybrid,
}


def build(cfg) -> Attack:
    """Instantiate the attack described by the `attack` config group."""
    from byzrun.config import instantiate_group

    return instantiate_group(cfg, "attack")
