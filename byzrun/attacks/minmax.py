"""Min-max (Shejwalkar & Houmansadr, "Manipulating the Byzantine: Optimizing Model Poisoning Attacks
and Defenses for Federated Learning", NDSS 2021, Sec. IV-B, AGR-agnostic): every Byzantine worker
sends  x_m = μ + γ·p  with γ the largest (Algorithm 1) for which

    max_i ||x_m - x_i||²  <=  max_{i,j} ||x_i - x_j||²      (i, j over the honest vectors seen)

so the malicious vector lies no farther from any honest vector than two honest vectors lie apart.
It ignores the server's rule (agnostic of the aggregation). Directions and the search: perturbation.py.
"""

from __future__ import annotations

from torch import Tensor

from byzrun.attacks.base import Attack
from byzrun.attacks.perturbation import PerturbationSearch


class MinMax(PerturbationSearch, Attack):
    """x_m = μ + γ·p, γ the largest keeping the largest squared distance to an honest vector within
    the honest vectors' largest pairwise squared distance.

    direction: std (-σ, unbiased; the default), unit_vec (-μ/||μ||) or sign (-sign(μ)).
    gamma_init, tau: Algorithm 1's start (and first step) and stopping threshold (their code: 10, 1e-5);
        γ is searched in [0, 2·gamma_init].
    knowledge: omniscient (all honest vectors, the paper's full-knowledge attacker) or corrupted
        (the corrupted workers' own honest gradients, their partial-knowledge attacker).
    """

    name = "minmax"
    reduce_crafted = staticmethod(Tensor.max)
    reduce_honest = staticmethod(Tensor.max)
