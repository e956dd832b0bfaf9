"""What the ALIE-family attackers estimate: μ and σ of the gradients they see, and z_max.

knowledge:
    corrupted   the paper's non-omniscient attacker: only the corrupted workers' own honest
                gradients (ctx.own). With m = 1 there is one sample, so σ = 0 (population) and the
                attack sends its own honest gradient.
    omniscient  all honest gradients (ctx.honest).
std:
    population  divide by the count, as the ALIE code does (σ = 0 for a single sample).
    unbiased    divide by count - 1 (needs at least two samples).
"""

from __future__ import annotations

import math

from torch import Tensor

from byzrun.attacks import options
from byzrun.attacks.base import AttackContext
from byzrun.cpu_reductions import row_std_mean
from byzrun.errors import ConfigError

KNOWLEDGE = ("corrupted", "omniscient")
STD = ("population", "unbiased")
DIRECTION = ("minus", "plus")


def z_max(n: int, m: int) -> float:
    """Algorithm 3, lines 1-2: s = floor(n/2 + 1) - m supporters are needed, and z_max is the
    largest z with Φ(z) < (n - m - s)/(n - m). +inf when m alone is a majority (s <= 0)."""
    from scipy.stats import norm

    if not 0 <= m < n:
        raise ConfigError(f"z=auto needs 0 <= m < n, got n={n}, m={m}")
    s = n // 2 + 1 - m
    return float(norm.ppf((n - m - s) / (n - m)))


def checked_z_max(n: int, m: int, option: str) -> float:
    z = z_max(n, m)
    if not math.isfinite(z) or z < 0:
        raise ConfigError(
            f"attack.{option}=auto gives z_max={z:.3g} for n={n}, m={m} (Algorithm 3 needs "
            f"0 < s = floor(n/2+1)-m <= (n-m)/2); set attack.{option} to a number, e.g. 1.5"
        )
    return z


def check(knowledge: str, std: str, *, m: int, n: int) -> None:
    options.choice("knowledge", knowledge, KNOWLEDGE)
    options.choice("std", std, STD)
    seen = m if knowledge == "corrupted" else n - m
    if std == "unbiased" and seen < 2:
        raise ConfigError(
            f"attack.std=unbiased needs at least 2 observed gradients, but knowledge={knowledge} "
            f"sees {seen}; use attack.std=population or attack.knowledge="
            f"{'omniscient' if knowledge == 'corrupted' else 'corrupted'}"
        )


def observed(ctx: AttackContext, knowledge: str) -> Tensor:
    return ctx.own if knowledge == "corrupted" else ctx.honest


def mean_std(x: Tensor, std: str) -> tuple[Tensor, Tensor]:
    """Coordinate-wise mean and standard deviation over the rows of x [k, d].

    torch.std_mean's Welford update, bit for bit (row_std_mean: the same operations a row at a time on
    a CPU): the committed ALIE runs were made with it, and two passes, though faster, differ in the last
    float32 bits, which chaotic training turns into other curves."""
    sigma, mu = row_std_mean(x, correction=1 if std == "unbiased" else 0)
    return mu, sigma
