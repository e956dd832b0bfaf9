"""What every pre-aggregation step declares: its name, its bound, and how it maps the inputs.

A step runs in front of a rule: it maps the n submitted vectors G [n, d] to n' vectors [n', d] while
the same f are still counted Byzantine (bucketing: n' = ceil(n/s); NNM: n' = n). The rule then runs
on the n' vectors, and its bound is checked for n'. Steps are chosen in the config by name:
`defense.pre=[nnm]`, `defense.pre=[{name: bucketing, s: 3}]`.

A step never writes into the matrix it is given, unless its caller gives that matrix up: with
`step(G, f, overwrite=True)` a step that declares `can_overwrite` (static clipping, ARC) may write its
result into G and return it, which spares a new [n, d] matrix each round (byzrun/train.py does so
in the rounds whose statistics do not read G again). The bits are those of the new matrix either way.
"""

from __future__ import annotations

from torch import Tensor

from byzrun.defenses.base import UNBOUNDED, Bound


class PreAggregator:
    """Base class of the pre-aggregation steps: subclasses set `name` and `bound` and define apply()."""

    #: the step's key in `defense.pre=[...]`; every subclass sets its own
    name: str
    #: the largest f the step tolerates among the n vectors it receives
    bound: Bound = UNBOUNDED

    #: whether apply() takes `overwrite` (module docstring)
    can_overwrite: bool = False

    def apply(self, G: Tensor, f: int) -> tuple[Tensor, Tensor]:
        """The new vectors [n', d] and which inputs each one is made of (a bool matrix [n', n])."""
        raise NotImplementedError

    def __call__(self, G: Tensor, f: int, overwrite: bool = False) -> Tensor:
        """The new vectors; with overwrite=True the caller gives up G (a step may return G itself)."""
        if self.can_overwrite:
            return self.apply(G, f, overwrite=overwrite)[0]
        return self.apply(G, f)[0]

    def out_count(self, n: int) -> int:
        """n' for n inputs."""
        return n
