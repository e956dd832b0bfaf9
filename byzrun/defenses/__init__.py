"""Aggregation rules: one module per rule, one YAML per rule (or preset) in conf/defense/.

Each rule is a Defense subclass that declares its `name` and its `bound` (see base.py); RULES finds
it by scanning this package, so adding a rule touches only its module and its YAML. A YAML's
`_target_: byzrun.defenses.<ClassName>` resolves through __getattr__ below.
Helpers shared by several rules: distances.py (pairwise distances), order.py (coordinate-wise
order statistics).
"""

from byzrun.defenses.base import BULYAN, KRUM, MAJORITY, TENTH, UNBOUNDED, Bound, Defense
from byzrun.registry import Registry

__all__ = ["BULYAN", "KRUM", "MAJORITY", "RULES", "TENTH", "UNBOUNDED", "Bound", "Defense"]

#: rule name (conf/defense/<name>.yaml for the plain rule) -> class
RULES = Registry(__name__, Defense)


def __getattr__(attr: str) -> type:
    """byzrun.defenses.Krum and the like: every rule class of the package by its class name."""
    # only class names: a lowercase name is a submodule that `from byzrun.defenses import x` imports
    # itself after this AttributeError, without a scan that would import every module mid-import
    cls = RULES.by_class_name(attr) if attr[:1].isupper() else None
    if cls is None:
        raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")
    return cls
