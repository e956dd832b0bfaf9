"""The defense (aggregation rule) interface.

A defense is a pure function of the submitted gradients G [n, d] and the declared number of
Byzantine workers f, returning one vector [d]. Subclasses hold only options (from the config);
they keep no state between rounds.
"""

from __future__ import annotations

import warnings

from torch import Tensor

from byzrun.errors import BoundError


class Defense:
    #: True when the rule claims robustness: it must return a finite vector when at most
    #: max_f(n) rows are non-finite (NaN/Inf from an attacker).
    robust: bool = True

    #: Let a researcher run the rule outside its bound on purpose (the ALIE paper does).
    allow_out_of_bound: bool = False

    def __call__(self, G: Tensor, f: int) -> Tensor:
        raise NotImplementedError

    def max_f(self, n: int) -> int:
        """Largest number of Byzantine workers the rule tolerates with n workers (its paper's bound)."""
        return n - 1

    def bound_text(self) -> str:
        """The bound in words, for error messages, e.g. 'n >= 2f+3'."""
        return "f <= n-1"

    def selection(self, G: Tensor, f: int) -> Tensor | None:
        """Indices of the rows a selection rule (Krum, Bulyan) keeps; None for other rules."""
        return None

    @property
    def name(self) -> str:
        return type(self).__name__.lower()

    def check(self, n: int, f: int) -> None:
        """Reject (or, with allow_out_of_bound, warn about) f outside the rule's bound."""
        if f <= self.max_f(n):
            return
        msg = (
            f"defense {self.name} tolerates at most f={self.max_f(n)} Byzantine workers "
            f"with n={n} ({self.bound_text()}), got m={f}; lower m, raise n, "
            f"or set defense.allow_out_of_bound=true to run it anyway"
        )
        if self.allow_out_of_bound:
            warnings.warn(msg.split(";")[0] + " (running anyway: allow_out_of_bound=true)", stacklevel=2)
            return
        raise BoundError(msg)
