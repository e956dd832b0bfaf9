"""What a run shows while it trains, and how far it got.

On a terminal a tqdm bar (round, last accuracy); when the output goes to a file or a cluster log, one
plain line per evaluation instead (round, accuracy, time elapsed and left), never carriage returns;
`progress=false` shows neither. `reached()` is the round in progress, for the line an interruption
prints (byzrun.cli).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator

from tqdm import tqdm

log = logging.getLogger("byzrun")

_state = {"round": None}  # the round in progress (1-based) of the run in this process; None: none


def reached() -> int | None:
    return _state["round"]


def reset() -> None:
    _state["round"] = None


def clock(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """Iterate over the rounds 0..total-1; call evaluated() after each evaluation."""

    def __init__(self, total: int, desc: str, enabled: bool, terminal: bool | None = None):
        self.total, self.desc = total, desc
        terminal = sys.stderr.isatty() if terminal is None else terminal
        self.mode = "off" if not enabled else "bar" if terminal else "lines"
        self.bar = tqdm(total=total, desc=desc, dynamic_ncols=True) if self.mode == "bar" else None
        self.started = time.perf_counter()
        _state["round"] = 0

    def __iter__(self) -> Iterator[int]:
        for t in range(self.total):
            _state["round"] = t + 1
            yield t
            if self.bar is not None:
                self.bar.update(1)

    def evaluated(self, round: int, accuracy: float) -> None:
        if self.bar is not None:
            self.bar.set_postfix(acc=f"{accuracy:.2f}")
        elif self.mode == "lines":
            elapsed = time.perf_counter() - self.started
            left = elapsed / round * (self.total - round)
            log.info(
                "%s: round %d/%d, test accuracy %.2f%%, %s elapsed, about %s left",
                self.desc, round, self.total, accuracy, clock(elapsed), clock(left),
            )  # fmt: skip

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
