"""Aggregation rules. Each rule is one class here and one YAML in conf/defense/."""

from byzrun.defenses.base import Defense
from byzrun.defenses.mean import Mean

__all__ = ["Defense", "Mean"]


def build(cfg) -> Defense:
    """Instantiate the defense described by the `defense` config group."""
    from hydra.utils import instantiate

    return instantiate(cfg, _convert_="all")
