"""What a report calls a run's heterogeneity level (its split.* settings), and where it sorts.

A table reads `Dir(0.1)`, not `split.alpha=0.1, split.byzantine=iid, split.name=dirichlet`: the split's
name, with its one parameter where it has one (iid, Dir(alpha), gamma(share dealt iid), extreme), and
", Byzantine own" when the Byzantine workers hold a part of the split instead of drawing from the whole
training set (split.byzantine=own; iid, the default, is not named). The levels sort from the most to the
least homogeneous: iid, Dirichlet by decreasing alpha, gamma by decreasing share, extreme.

An iid run records no split.* key (split.name=iid counts as absent, byzrun.report.collect).
"""

from __future__ import annotations

from byzrun.report.captions import fmt
from byzrun.report.collect import Run


def split_name(run: Run) -> str:
    return str(run.settings.get("split.name") or "iid")


def split_label(run: Run) -> str:
    """`iid`, `Dir(0.1)`, `gamma(0.5)`, `extreme`, another split by its name; `, Byzantine own` added
    when the Byzantine workers hold a part of the split."""
    name, settings = split_name(run), run.settings
    if name == "dirichlet":
        label = f"Dir({fmt(settings.get('split.alpha'))})"
    elif name == "gamma":
        label = f"gamma({fmt(settings.get('split.gamma'))})"
    else:
        label = name
    return label + (", Byzantine own" if settings.get("split.byzantine") == "own" else "")


def split_order(run: Run) -> tuple:
    """(rank, -parameter, label): iid, then Dir(alpha) and gamma(share) from large to small, extreme."""
    name, settings = split_name(run), run.settings
    rank = {"iid": 0, "dirichlet": 1, "gamma": 2, "extreme": 3}.get(name, 4)
    parameter = {"dirichlet": "split.alpha", "gamma": "split.gamma"}.get(name)
    value = settings.get(parameter) if parameter else None
    return (rank, -float(value) if isinstance(value, (int, float)) else 0.0, split_label(run))
