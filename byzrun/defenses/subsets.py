"""Exhaustive search over the subsets of n-f submissions (MDA, SMEA), with its cost stated up front.

Such a rule scores every subset S of size n-f and keeps the best one: C(n, n-f) = C(n, f) subsets,
20,825 at n=51, f=3 but 1.7e13 at f=12. Each rule has a budget, `max_subsets`, and refuses before
training an (n, f) beyond it, naming the largest f that fits (`check_budget`).

The search enumerates the f rows left out rather than the n-f kept (f < n/2 makes them the shorter
tuples), in chunks, and hands each chunk to the rule as the left-out rows [c, f] to score at once.
Ties go to the subset whose sorted row indices come first lexicographically (what a plain loop over
itertools.combinations(range(n), n-f) with a strict `<` keeps). Listing the left-out sets in
lexicographic order lists the kept sets in reverse lexicographic order, so the search keeps the LAST
of the lowest scores.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from byzrun.errors import BoundError, ConfigError

#: subsets scored per chunk: a chunk's masks and gathers stay within a few MB at n = 51
_CHUNK = 4096


def subset_count(n: int, f: int) -> int:
    """How many subsets of n-f rows among n an exhaustive rule examines."""
    return math.comb(n, max(0, min(f, n)))


def largest_f(n: int, budget: int) -> int:
    """The largest f < n/2 whose subset count fits the budget (C(n, f) grows with f up to n/2)."""
    f = 0
    while f + 1 <= (n - 1) // 2 and subset_count(n, f + 1) <= budget:
        f += 1
    return f


def check_budget(rule: str, n: int, f: int, budget: int) -> None:
    """One line before training when the search over C(n, n-f) subsets is beyond the budget."""
    count = subset_count(n, f)
    if count <= budget:
        return
    raise BoundError(
        f"defense {rule} with n={n}, f={f} would examine C({n},{n - f})={count:,} subsets, more than "
        f"defense.max_subsets={budget:,}; the largest f that fits at n={n} is {largest_f(n, budget)}: "
        f"lower m, or raise defense.max_subsets"
    )


def left_out_chunks(n: int, f: int, chunk: int = _CHUNK):
    """The f-row sets left out, in lexicographic order, as int64 arrays [c, f]."""
    if f == 0:  # one subset: every row
        yield np.zeros((1, 0), dtype=np.int64)
        return
    combos = itertools.combinations(range(n), f)
    while True:
        flat = np.fromiter(itertools.chain.from_iterable(itertools.islice(combos, chunk)), dtype=np.int64)
        if flat.size == 0:
            return
        yield flat.reshape(-1, f)


def best_subset(n: int, f: int, score: Callable[[np.ndarray], Tensor], chunk: int = _CHUNK) -> Tensor:
    """Indices (ascending) of the n-f rows whose subset scores lowest.

    score(left_out) gets the rows each subset leaves out, int64 [c, f] (each row ascending), and
    returns [c] float64 scores; NaN counts as +inf. chunk: subsets scored at once. Ties: the
    lexicographically first kept subset (module docstring).
    """
    best_value, best_out = math.inf, None
    for out in left_out_chunks(n, f, chunk):
        values = torch.nan_to_num(torch.as_tensor(score(out)), nan=math.inf)
        last = len(values) - 1 - int(torch.argmin(values.flip(0)))  # the last of the lowest
        if best_out is None or float(values[last]) <= best_value:
            best_value, best_out = float(values[last]), out[last]
    keep = torch.ones(n, dtype=torch.bool)
    keep[torch.from_numpy(np.asarray(best_out))] = False
    return keep.nonzero().flatten()


def kept_rows(n: int, left_out: np.ndarray) -> np.ndarray:
    """int64 [c, n-f]: the rows each subset keeps, ascending, from the rows it leaves out [c, f]."""
    kept = np.ones((len(left_out), n), dtype=bool)
    np.put_along_axis(kept, left_out, False, axis=1)
    return np.nonzero(kept)[1].reshape(len(left_out), -1)


class SubsetAveraging:
    """The mean of the best n-f submissions, found by scoring every subset: what MDA and SMEA share.

    A rule mixes this in before Defense and defines `scorer(G, f)` (score(left_out) for best_subset),
    `chunk` (subsets scored at once) and `default_max_subsets` (its budget when the config gives none).
    """

    chunk = _CHUNK
    default_max_subsets: int

    def __init__(self, max_subsets: int | None = None):
        max_subsets = self.default_max_subsets if max_subsets is None else max_subsets
        if int(max_subsets) < 1:
            raise ConfigError(f"defense.max_subsets must be >= 1, got {max_subsets}")
        self.max_subsets = int(max_subsets)

    def check(self, n: int, f: int) -> None:
        check_budget(self.name, n, f, self.max_subsets)

    def scorer(self, G: Tensor, f: int) -> Callable[[np.ndarray], Tensor]:
        raise NotImplementedError

    def select(self, G: Tensor, f: int) -> Tensor:
        n = G.shape[0]
        f = max(0, min(f, n - 1))
        return best_subset(n, f, self.scorer(G, f), chunk=self.chunk).to(G.device)

    def __call__(self, G: Tensor, f: int) -> Tensor:
        return G[self.select(G, f)].mean(0)
