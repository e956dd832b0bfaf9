"""Aggregation rules. Each rule is one class here and one YAML in conf/defense/.

Pre-aggregation steps (NNM, bucketing) compose in front of any rule through `defense.pre`.
"""

from byzrun.defenses.base import Defense, PreAggregator
from byzrun.defenses.bucketing import Bucketing
from byzrun.defenses.bulyan import Bulyan
from byzrun.defenses.centered_clipping import CenteredClipping
from byzrun.defenses.geometric_median import GeometricMedian
from byzrun.defenses.krum import Krum
from byzrun.defenses.meamed import MeaMed
from byzrun.defenses.mean import Mean
from byzrun.defenses.median import Median
from byzrun.defenses.multi_krum import MultiKrum
from byzrun.defenses.nnm import NearestNeighborMixing
from byzrun.defenses.phocas import Phocas
from byzrun.defenses.trimmed_mean import TrimmedMean

__all__ = [
    "Bucketing",
    "Bulyan",
    "CenteredClipping",
    "Defense",
    "GeometricMedian",
    "Krum",
    "MeaMed",
    "Mean",
    "Median",
    "MultiKrum",
    "NearestNeighborMixing",
    "Phocas",
    "PreAggregator",
    "TrimmedMean",
]


def build(cfg) -> Defense:
    """Instantiate the defense described by the `defense` config group (with its `pre` steps)."""
    from byzrun.config import instantiate_group

    return instantiate_group(cfg, "defense")
