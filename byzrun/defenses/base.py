"""The defense (aggregation rule) interface.

A defense is a pure function of the submitted gradients G [n, d] and the declared number of
Byzantine workers f, returning one vector [d]. Subclasses hold only options (from the config);
they keep no state between rounds.

Pre-aggregation. Every rule accepts `pre`, a list of pre-aggregation steps applied to G before the
rule itself, in order (Allouah et al. 2023, nearest-neighbour mixing; Karimireddy et al. 2022,
bucketing). From the command line: `byzrun defense=krum defense.pre=[nnm]`, or with options
`defense.pre=[{name:bucketing,s:3}]`. Entries are names, dicts `{name: ..., **options}`, or
objects already instantiated (a dict with `_target_` is instantiated by hydra before it gets here).
A step maps [n, d] to [n', d] (bucketing: n' = ceil(n/s)); the rule then runs on the n' vectors
with the same f, and its bound is checked for n'.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping

import torch
from torch import Tensor

from byzrun.errors import BoundError, ConfigError


class PreAggregator:
    """A step in front of a rule: maps the n submissions to n' vectors, the same f still Byzantine."""

    #: the name used in `defense.pre=[...]`
    name: str = "pre"

    def apply(self, G: Tensor, f: int) -> tuple[Tensor, Tensor]:
        """The new vectors [n', d] and which inputs each one is made of (a bool matrix [n', n])."""
        raise NotImplementedError

    def __call__(self, G: Tensor, f: int) -> Tensor:
        return self.apply(G, f)[0]

    def out_count(self, n: int) -> int:
        """n' for n inputs."""
        return n

    def max_f(self, n: int) -> int:
        return n - 1

    def bound_text(self) -> str:
        return "f <= n-1"


def _resolve_pre(pre) -> tuple[PreAggregator, ...]:
    from byzrun.defenses.bucketing import Bucketing
    from byzrun.defenses.nnm import NearestNeighborMixing

    registry = {"nnm": NearestNeighborMixing, "bucketing": Bucketing}
    if pre is None:
        return ()
    if isinstance(pre, (str, Mapping, PreAggregator)):
        pre = [pre]
    steps = []
    for entry in pre if isinstance(pre, Iterable) else [pre]:
        if isinstance(entry, PreAggregator):
            steps.append(entry)
            continue
        options = {}
        if isinstance(entry, Mapping):
            options = {k: v for k, v in entry.items() if k != "name"}
            entry = entry.get("name")
        if entry not in registry:
            raise ConfigError(
                f"unknown pre-aggregation {entry!r} in defense.pre; known: {', '.join(registry)}"
            )
        try:
            steps.append(registry[entry](**options))
        except TypeError as e:
            raise ConfigError(f"bad options for pre-aggregation {entry!r}: {e}") from None
    return tuple(steps)


class Defense:
    #: True when the rule claims robustness: it must return a finite vector when at most
    #: max_f(n) rows are non-finite (NaN/Inf from an attacker).
    robust: bool = True

    #: Let a researcher run the rule outside its bound on purpose (the ALIE paper does).
    allow_out_of_bound: bool = False

    #: the rule's name in the registry (conf/defense/<registry_name>.yaml); None: the class name
    registry_name: str | None = None

    pre: tuple[PreAggregator, ...] = ()
    _name: str | None = None

    def __init__(self, *, allow_out_of_bound: bool = False, pre=None, name: str | None = None):
        self.allow_out_of_bound = bool(allow_out_of_bound)
        self.pre = _resolve_pre(pre)
        self._name = name

    def __call__(self, G: Tensor, f: int) -> Tensor:
        for step in self.pre:
            G = step(G, f)
        return self.aggregate(G, f)

    def aggregate(self, G: Tensor, f: int) -> Tensor:
        """The rule itself on the (pre-aggregated) vectors G [n, d]."""
        raise NotImplementedError

    def max_f(self, n: int) -> int:
        """Largest number of Byzantine workers the rule tolerates with n workers (its paper's bound)."""
        return n - 1

    def bound_text(self) -> str:
        """The bound in words, for error messages, e.g. 'n >= 2f+3'."""
        return "f <= n-1"

    def selection(self, G: Tensor, f: int) -> Tensor | None:
        """Indices of the rows a selection rule (Krum, Bulyan) keeps; None for other rules.

        With pre-aggregation, the indices are those of the submissions that make up the selected
        vectors (NNM: vector i stands for worker i; bucketing: every member of a selected bucket).
        """
        members = None
        for step in self.pre:
            G, M = step.apply(G, f)
            members = M if members is None else (M.to(torch.float32) @ members.to(torch.float32)) > 0
        chosen = self.select(G, f)
        if chosen is None or members is None:
            return chosen
        return members[chosen].any(0).nonzero().flatten()

    def select(self, G: Tensor, f: int) -> Tensor | None:
        """Indices of the rows the rule itself keeps from G, for selection rules; None otherwise."""
        return None

    @property
    def name(self) -> str:
        if self._name:
            return self._name
        base = self.registry_name or type(self).__name__.lower()
        return "+".join([step.name for step in self.pre] + [base])

    def check(self, n: int, f: int) -> None:
        """Reject (or, with allow_out_of_bound, warn about) f outside the rule's bound."""
        problems = []
        count = n
        for step in self.pre:
            if f > step.max_f(count):
                problems.append(
                    f"pre-aggregation {step.name} tolerates at most f={step.max_f(count)} "
                    f"with n={count} ({step.bound_text()})"
                )
            count = step.out_count(count)
        if f > self.max_f(count):
            seen = f"n={count} vectors after pre-aggregation of n={n}" if count != n else f"n={n}"
            most = self.max_f(count)
            tolerates = f"tolerates at most f={most} Byzantine workers" if most >= 0 else "cannot run"
            problems.append(f"defense {self.name} {tolerates} with {seen} ({self.bound_text()})")
        if not problems:
            return
        msg = "; ".join(problems) + (
            f", got m={f}; lower m, raise n, or set defense.allow_out_of_bound=true to run it anyway"
        )
        if self.allow_out_of_bound:
            warnings.warn(
                msg.split(", got m=")[0] + f", got m={f} (running anyway: allow_out_of_bound=true)",
                stacklevel=2,
            )
            return
        raise BoundError(msg)
