"""Attacks: one module per attack, one YAML per attack (or preset) in conf/attack/.

Each attack is an Attack subclass that declares its `name` (see base.py); ATTACKS finds it by
scanning this package, so adding an attack touches only its module and its YAML. A YAML's
`_target_: byzrun.attacks.<ClassName>` resolves through __getattr__ below.
Helpers shared by several attacks: options.py (option checks), stats.py (what ALIE-like attackers
estimate), search.py (the adaptive attacker's grid search), optimal.py (ByzFL's line search, the
factor=optimal of ALIE and IPM), perturbation.py (min-max's and min-sum's directions and binary
search), trigger.py (the backdoor trigger).
"""

from byzrun.attacks.base import Attack, AttackContext
from byzrun.registry import Registry

__all__ = ["ATTACKS", "Attack", "AttackContext"]

#: attack name (conf/attack/<name>.yaml for the plain attack) -> class; hybrid builds its parts from it
ATTACKS = Registry(__name__, Attack)


def __getattr__(attr: str) -> type:
    """byzrun.attacks.ALIE and the like: every attack class of the package by its class name."""
    # only class names: a lowercase name is a submodule that `from byzrun.attacks import x` imports
    # itself after this AttributeError, without a scan that would import every module mid-import
    cls = ATTACKS.by_class_name(attr) if attr[:1].isupper() else None
    if cls is None:
        raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")
    return cls
