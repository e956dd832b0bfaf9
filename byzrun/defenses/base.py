"""What every aggregation rule declares: its name, its robustness bound, and the call itself.

A rule maps the submitted vectors G [n, d] and the declared number of Byzantine workers f to one
vector [d]. Its class holds its options (from the config) and, for the few rules that need it, what
the server keeps between rounds or computes itself:

- state across rounds (centered clipping's previous aggregate): reset() at the start of every run,
  updated in end_round(aggregate) once per round with the final aggregate, saved and restored with
  state_dict() / load_state_dict(). __call__ never changes it: attacks and diagnostics call the rule
  several times a round (an omniscient attacker probes it), and those calls must not advance it.
- the server's own gradient (FLTrust): a rule with root_size > 0 gets it in begin_round() every
  round, before any call; the server computes it on a clean root set of that size.

Every other rule is a pure function of (G, f). It declares, as data:

    name = "krum"      the registry's key: `defense=krum` finds conf/defense/krum.yaml, whose
                       `_target_` names the class; also the run's label in summary.csv
    bound = KRUM       the largest f its paper's guarantee allows among n inputs (below)
    robust = True      whether it claims robustness at all (the mean does not)

A rule may also refuse an (n, f) for its own reasons in `check(n, f)` (MDA: too many subsets to
search), called before training after the bound. Pre-aggregation steps (NNM, bucketing) and the
bound check live in byzrun.preaggregation, which composes steps in front of a rule; rules never see
them.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass(frozen=True)
class Bound:
    """A robustness bound of the form n >= per_f * f + plus: the rule tolerates at most
    max_f(n) = (n - plus) // per_f Byzantine inputs among n. `text` says it as the paper does."""

    per_f: int
    plus: int
    text: str

    def max_f(self, n: int) -> int:
        return (n - self.plus) // self.per_f


#: no bound: any f < n (the mean, which claims no robustness; bucketing, which keeps f as it is)
UNBOUNDED = Bound(1, 1, "f <= n-1")
#: an honest majority, f <= ceil(n/2)-1: the coordinate-wise median and the rules built on it
#: (trimmed mean, MeaMed, Phocas), the geometric median, nearest-neighbour mixing
MAJORITY = Bound(2, 1, "f < n/2")
#: Krum and Multi-Krum (Blanchard et al. 2017, Proposition 1)
KRUM = Bound(2, 3, "n >= 2f+3")
#: Bulyan (El Mhamdi et al. 2018, Proposition 2)
BULYAN = Bound(4, 3, "n >= 4f+3")
#: a Byzantine fraction of at most a tenth: centered clipping (Karimireddy et al. 2021, Theorem III)
TENTH = Bound(10, 0, "f/n <= 0.1")


class Defense:
    """Base class of the aggregation rules: subclasses set `name` and `bound` and define __call__."""

    #: the rule's key in the registry (see the module docstring); every subclass sets its own
    name: str
    #: the paper's bound on f, checked before training (byzrun.preaggregation.Pipeline.check)
    bound: Bound = UNBOUNDED
    #: True when the rule claims robustness: it must return a finite vector when at most
    #: bound.max_f(n) rows are non-finite (NaN/Inf from an attacker)
    robust: bool = True
    #: size of the clean root set on which the server computes its own gradient each round (FLTrust);
    #: 0: the rule needs no server gradient
    root_size: int = 0

    def reset(self) -> None:
        """Forget every earlier round: called at the start of each run (stateful rules override it)."""

    def begin_round(self, server_gradient: Tensor | None) -> None:
        """The server's own gradient [d] this round (None unless root_size > 0), before any call."""

    def end_round(self, aggregate: Tensor) -> None:
        """The round's final aggregate [d], once per round: a stateful rule updates its state here."""

    def state_dict(self) -> dict[str, Tensor]:
        """What the rule keeps between rounds (empty for a stateless rule), to save with a run."""
        return {}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Restore what state_dict() returned."""

    def __call__(self, G: Tensor, f: int) -> Tensor:
        """The aggregate [d] of the vectors G [n, d], f of which may be Byzantine."""
        raise NotImplementedError

    def check(self, n: int, f: int) -> None:
        """Refuse, before training, an (n, f) the rule cannot run beyond its bound (an exhaustive
        search too large, an option that needs n): raise a ConfigError naming the fix. Default: none."""

    def select(self, G: Tensor, f: int) -> Tensor | None:
        """Indices of the rows a selection rule (Krum, Bulyan) keeps from G; None for other rules."""
        return None
