"""Pre-aggregation steps and their composition with a rule.

- base.py: PreAggregator, what a step declares (its name and bound) and does;
- nnm.py: nearest-neighbour mixing (Allouah et al. 2023); bucketing.py: bucketing (Karimireddy et
  al. 2022); a new step is one more module here, found by STEPS;
- pipeline.py: Pipeline, what the server runs each round: the steps in order, then the rule, with
  the bound check and the run's label.

The rules (byzrun.defenses) never import this package: it composes them from the outside.
"""

from byzrun.preaggregation.base import PreAggregator
from byzrun.preaggregation.pipeline import Pipeline
from byzrun.registry import Registry

__all__ = ["STEPS", "Pipeline", "PreAggregator"]

#: step name (an entry of `defense.pre`) -> class
STEPS = Registry(__name__, PreAggregator)


def __getattr__(attr: str) -> type:
    """byzrun.preaggregation.Bucketing and the like: every step class of the package by its class name."""
    cls = None if attr.startswith("_") else STEPS.by_class_name(attr)
    if cls is None:
        raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")
    return cls
