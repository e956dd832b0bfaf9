"""What the server runs each round: pre-aggregation steps in order, then the rule.

The pipeline also owns what concerns the composition rather than any one rule: the bound check
(each step's bound on the vectors it receives, then the rule's on the n' vectors it sees), the
escape hatch `allow_out_of_bound`, and the run's label (`name`, by default the steps' names and the
rule's joined by "+", e.g. "nnm+krum"). The server talks to the rule through it: reset() at the start
of a run, begin_round(server gradient) before a round's calls, end_round(aggregate) after them (see
byzrun/defenses/base.py); the steps keep no state, so a stateful rule's state is the rule's alone.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torch import Tensor

from byzrun.defenses.base import Defense
from byzrun.errors import BoundError
from byzrun.preaggregation.base import PreAggregator


class Pipeline:
    def __init__(
        self,
        rule: Defense,
        steps: Sequence[PreAggregator] = (),
        *,
        name: str | None = None,
        allow_out_of_bound: bool = False,
    ):
        self.rule = rule
        self.steps = tuple(steps)
        self.label = name
        #: let a researcher run a rule outside its bound on purpose (the ALIE paper does)
        self.allow_out_of_bound = bool(allow_out_of_bound)

    @property
    def name(self) -> str:
        """The run's label in summary.csv and in its folder's name."""
        return self.label or "+".join([step.name for step in self.steps] + [self.rule.name])

    @property
    def robust(self) -> bool:
        return self.rule.robust

    @property
    def root_size(self) -> int:
        """Size of the clean root set the server needs for its own gradient (0: none)."""
        return self.rule.root_size

    def reset(self) -> None:
        self.rule.reset()

    def begin_round(self, server_gradient: Tensor | None = None) -> None:
        self.rule.begin_round(server_gradient)

    def end_round(self, aggregate: Tensor) -> None:
        self.rule.end_round(aggregate)

    def state_dict(self) -> dict[str, Tensor]:
        return self.rule.state_dict()

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.rule.load_state_dict(state)

    def __call__(self, G: Tensor, f: int, overwrite: bool = False) -> Tensor:
        """The aggregate of G [n, d]. overwrite=True: the caller gives up G, and the first step may write
        into it (PreAggregator); the later steps get the matrices of the steps before them."""
        for i, step in enumerate(self.steps):
            G = step(G, f, overwrite=overwrite and i == 0)
        return self.rule(G, f)

    def selection(self, G: Tensor, f: int) -> Tensor | None:
        """Indices of the submissions a selection rule (Krum, Bulyan) keeps; None for other rules.

        With pre-aggregation, the indices are those of the submissions that make up the selected
        vectors (NNM: vector i stands for worker i; bucketing: every member of a selected bucket).
        """
        members = None
        for step in self.steps:
            G, M = step.apply(G, f)
            members = M if members is None else (M.to(torch.float32) @ members.to(torch.float32)) > 0
        chosen = self.rule.select(G, f)
        if chosen is None or members is None:
            return chosen
        return members[chosen].any(0).nonzero().flatten()

    def check(self, n: int, f: int) -> None:
        """Reject (or, with allow_out_of_bound, warn about) f outside a step's or the rule's bound;
        then the rule's own check on the n' vectors it sees (Defense.check), which always applies."""
        problems = []
        count = n
        for step in self.steps:
            most = step.bound.max_f(count)
            if f > most:
                bound = step.bound.text
                problems.append(
                    f"pre-aggregation {step.name} tolerates at most f={most} with n={count} ({bound})"
                )
            count = step.out_count(count)
        most = self.rule.bound.max_f(count)
        if f > most:
            seen = f"n={count} vectors after pre-aggregation of n={n}" if count != n else f"n={n}"
            tolerates = f"tolerates at most f={most} Byzantine workers" if most >= 0 else "cannot run"
            problems.append(f"defense {self.name} {tolerates} with {seen} ({self.rule.bound.text})")
        if not problems:
            self.rule.check(count, f)
            return
        found = "; ".join(problems)
        if self.allow_out_of_bound:
            warnings.warn(f"{found}, got m={f} (running anyway: allow_out_of_bound=true)", stacklevel=2)
            self.rule.check(count, f)  # what the rule cannot run at all, out of bound or not
            return
        raise BoundError(
            f"{found}, got m={f}; lower m, raise n, or set defense.allow_out_of_bound=true to run it anyway"
        )
