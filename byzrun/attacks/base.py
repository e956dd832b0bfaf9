"""The attack interface.

Each round the training loop computes every worker's honest gradient in one batched pass, then asks the
attack for the m Byzantine rows. Rows 0..n-m-1 of the submitted matrix are the honest workers,
rows n-m..n-1 the Byzantine ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from torch import Tensor

if TYPE_CHECKING:
    from byzrun.data import Data
    from byzrun.flat_model import FlatModel
    from byzrun.preaggregation import Pipeline


@dataclass
class AttackContext:
    """What an attacker can see in one round."""

    honest: Tensor  # [n-m, d] what the honest workers submit (their velocities under worker momentum)
    own: Tensor  # [m, d] what the corrupted workers would have submitted honestly
    n: int
    m: int  # this attack's Byzantine rows: own's row count, and the rows it returns
    round: int
    defense: Pipeline  # the server's aggregation (pre-aggregation steps and rule), for adaptive attacks
    model: FlatModel  # the server's model and its flat parameters, for attacks that train
    lr: float  # the server's learning rate this round
    # Set only by composite attacks (hybrid) for their parts: the rows the other Byzantine workers
    # send [k, d], and the f the server declares when it is not this part's own m.
    others: Tensor | None = None
    f: int | None = None

    @property
    def declared_f(self) -> int:
        """The f passed to the defense: what the server was told, not this part's row count."""
        return self.m if self.f is None else self.f


class Attack:
    """Base class: produces the Byzantine rows [m, d] on the device of the inputs (m copies of one row
    may be a broadcast view, `row.expand(m, -1)`: the round copies the rows into its matrix anyway).

    Subclasses declare `name` (the registry's key: `attack=alie` finds conf/attack/alie.yaml, whose
    `_target_` names the class; also the run's label in summary.csv) and define __call__.
    """

    #: the attack's key in the registry; every subclass sets its own
    name: str

    #: attack=none is the only attack that makes sense with m = 0
    needs_byzantine: bool = True

    def validate(self, *, n: int, m: int, data: Data) -> None:
        """Raise ConfigError for invalid parameters, before training starts."""

    def poison_batch(self, x: Tensor, y: Tensor, data: Data) -> tuple[Tensor, Tensor]:
        """Change the Byzantine workers' batches [m, b, ...] before the gradient pass (label flip)."""
        return x, y

    def __call__(self, ctx: AttackContext) -> Tensor:
        raise NotImplementedError

    def eval_metrics(self, model: FlatModel) -> dict[str, Any]:
        """Extra columns for metrics.csv at each evaluation (e.g. backdoor accuracy)."""
        return {}

    def summary_fields(self) -> dict[str, Any]:
        """Extra columns for summary.csv (e.g. the z actually used)."""
        return {}


def replace_byzantine_rows(
    G: Tensor, m: int, attack: Attack, *, round: int, defense, model, lr: float
) -> None:
    """A round's attack step, in place: the last m rows of G become what `attack` sends, having seen
    the first n-m. Both views come from one split and the rows are copied once (a broadcast view too):
    the fewest torch calls, which count in the short attacks (make bench times this very function)."""
    n = G.shape[0]
    honest, own = G.split_with_sizes((n - m, m))
    ctx = AttackContext(honest=honest, own=own, n=n, m=m, round=round, defense=defense, model=model, lr=lr)
    own.copy_(attack(ctx))
