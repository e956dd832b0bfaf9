"""Hybrid attack: some Byzantine workers run one attack, the rest another (ALIE paper, Sec. 4.2)."""

from __future__ import annotations

import inspect
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from byzrun.attacks import ATTACKS, options
from byzrun.attacks.base import Attack, AttackContext
from byzrun.errors import ConfigError


class Hybrid(Attack):
    """The ALIE paper's hybrid: "one worker is dedicated to attack No Defense with attacks detailed
    in earlier papers, and the rest will be used for the attack proposed here".

    The last `other_workers` Byzantine rows run `other`, the first m - other_workers run `main`.
    `main` and `other` are attack names (keys of byzrun.attacks.ATTACKS, built with the class
    defaults, which equal the YAML defaults, updated by main_options / other_options), or already
    built attacks (a nested config with _target_, which Hydra instantiates).

    Each part sees a context of its own rows: m = its row count (so alie's z=auto counts only the
    main part's workers as colluders, as Algorithm 3 intends: the other workers do not support it),
    own = its workers' honest gradients, while the defense is still called with the server's f = m.
    `other` runs first; when it searches adaptively, the main part's rows are taken as their honest
    gradients. `main` then runs with the other part's rows in place. Metrics and summary fields of
    main keep their names (backdoor_acc stays backdoor_acc); those of other get the prefix other_.
    """

    name = "hybrid"

    def __init__(
        self,
        main: Any = "alie",
        other: Any = "sign_flip",
        other_workers: int = 1,
        main_options: dict | None = None,
        other_options: dict | None = None,
    ):
        self.specs = {"main": (main, main_options or {}), "other": (other, other_options or {})}
        self.other_workers = other_workers
        self.parts: dict[str, Attack] | None = None

    def _build(self, role: str) -> Attack:
        spec, opts = self.specs[role]
        if isinstance(spec, Attack):
            if opts:
                raise ConfigError(f"attack.{role}_options only applies when attack.{role} is an attack name")
            return spec
        known = ATTACKS.classes()
        if spec not in known or spec == "hybrid":
            names = ", ".join(n for n in known if n != "hybrid")
            raise ConfigError(f"attack.{role}={spec!r} is not an attack; choose one of {names}")
        cls = known[spec]
        accepted = set(inspect.signature(cls).parameters)
        unknown = sorted(set(opts) - accepted)
        if unknown:
            raise ConfigError(
                f"attack.{role}_options has {', '.join(unknown)}, which {spec} does not take; "
                f"it takes {', '.join(sorted(accepted)) or 'no options'}"
            )
        return cls(**opts)

    def _ensure_parts(self) -> dict[str, Attack]:
        if self.parts is None:
            self.parts = {role: self._build(role) for role in ("main", "other")}
        return self.parts

    def split(self, m: int) -> tuple[int, int]:
        k = options.integer("other_workers", self.other_workers, low=1)
        if k >= m:
            raise ConfigError(
                f"attack.other_workers={k} leaves no worker for attack.main with m={m}; "
                f"lower other_workers or raise m"
            )
        return m - k, k

    def validate(self, *, n: int, m: int, data=None) -> None:
        parts = self._ensure_parts()
        m_main, k = self.split(m)
        parts["main"].validate(n=n, m=m_main, data=data)
        parts["other"].validate(n=n, m=k, data=data)

    def poison_batch(self, x: Tensor, y: Tensor, data) -> tuple[Tensor, Tensor]:
        parts = self._ensure_parts()
        m_main, _ = self.split(len(x))
        xa, ya = parts["main"].poison_batch(x[:m_main], y[:m_main], data)
        xb, yb = parts["other"].poison_batch(x[m_main:], y[m_main:], data)
        return torch.cat([xa, xb]), torch.cat([ya, yb])

    def __call__(self, ctx: AttackContext) -> Tensor:
        parts = self._ensure_parts()
        m_main, k = self.split(ctx.m)
        f = ctx.declared_f
        own_main, own_other = ctx.own[:m_main], ctx.own[m_main:]
        before = [] if ctx.others is None else [ctx.others]
        rows_other = parts["other"](
            replace(ctx, own=own_other, m=k, f=f, others=torch.cat([*before, own_main]))
        )
        rows_main = parts["main"](
            replace(ctx, own=own_main, m=m_main, f=f, others=torch.cat([*before, rows_other]))
        )
        return torch.cat([rows_main, rows_other])

    def eval_metrics(self, model) -> dict[str, Any]:
        parts = self._ensure_parts()
        out = dict(parts["main"].eval_metrics(model))
        out.update({f"other_{key}": v for key, v in parts["other"].eval_metrics(model).items()})
        return out

    def summary_fields(self) -> dict[str, Any]:
        parts = self._ensure_parts()
        out = {"hybrid_main": parts["main"].name, "hybrid_other": parts["other"].name}
        out.update(parts["main"].summary_fields())
        out.update({f"other_{key}": v for key, v in parts["other"].summary_fields().items()})
        return out
