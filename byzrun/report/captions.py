"""Captions written from the runs' own settings, never from assumed values.

A caption item shows one value as itself and several distinct values as {a, b}, so a section that
mixes, say, two values of z (or a momentum grid with two learning rates) says so.
"""

from __future__ import annotations

from collections.abc import Iterable

from byzrun.report.collect import Run, show


def fmt(value) -> str:
    """A setting for a caption: floats in short form (0.0001, 1.5, 300), others as collect.show."""
    if isinstance(value, float):
        return f"{value:g}"
    return show(value)


def alternatives(values: Iterable) -> str:
    """One value as itself, several as {a, b} (numbers in numeric order)."""
    distinct = sorted(
        {fmt(v): v for v in values if v is not None}.items(),
        key=lambda kv: (0, float(kv[1]), "") if isinstance(kv[1], int | float) else (1, 0.0, kv[0]),
    )
    texts = [text for text, _ in distinct]
    return "–" if not texts else texts[0] if len(texts) == 1 else "{" + ", ".join(texts) + "}"


def attack_z(settings: dict):
    """The ALIE z of an attack: attack.z when set, else the ALIE attack's factor."""
    if "attack.z" in settings:
        return settings["attack.z"]
    return (
        settings.get("attack.factor") if str(settings.get("attack._target_", "")).endswith(".ALIE") else None
    )


def protocol_parts(runs: list[Run], attacked: list[Run] | None) -> list[str]:
    """The caption items from the runs' own settings (several values shown as {a, b})."""

    def values(key: str, among: list[Run] = runs) -> list:
        return [r.settings.get(key) for r in among]

    def one(key: str) -> str:
        return alternatives(values(key))

    parts = [f"n={one('n')}", f"m={one('m')}"]
    if attacked is not None:
        z_values = [attack_z(r.settings) for r in attacked]
        parts += [f"z={alternatives(z_values)}"] if any(v is not None for v in z_values) else []
        alphas = values("attack.alpha", attacked)
        parts += [f"α={alternatives(alphas)}"] if any(v is not None for v in alphas) else []
    parts += [f"{one('rounds')} rounds", f"batch {one('batch_size')} per worker"]
    lr = f"lr {one('lr')} {one('lr_schedule')}"
    if "inverse" in values("lr_schedule"):
        lr += f" (decay {one('lr_decay')})"
    parts.append(lr)
    placements = set(values("momentum.placement"))
    if placements == {"none"}:
        parts.append("no momentum")
    else:
        where = one("momentum.placement") if attacked is not None else ""
        nesterov = " Nesterov" if any(values("momentum.nesterov")) else ""
        parts.append(f"{where} momentum {one('momentum.beta')}{nesterov}".strip())
    if any(values("weight_decay")):
        parts.append(f"weight decay {one('weight_decay')}")
    if any(v is not None for v in values("grad_clip")):
        parts.append(f"gradient clipping {one('grad_clip')}")
    parts.append(f"sampling {one('sampling')}")
    if any(values("split.name")):  # a non-iid split (the iid default counts as absent)
        split = f"split {one('split.name')}"
        for key in ("alpha", "gamma"):
            if any(v is not None for v in values(f"split.{key}")):
                split += f" {key} {one(f'split.{key}')}"
        parts.append(
            split + (", Byzantine workers on their own parts" if "own" in values("split.byzantine") else "")
        )
    firsts = [r.settings.get("eval_first") or r.settings.get("eval_every") for r in runs]
    parts.append(f"evaluation every {one('eval_every')} rounds from round {alternatives(firsts)}")
    return parts


def seeds_text(seeds_per_row: list[set]) -> str:
    """'3 seeds', or '1–3 seeds per row' when rows have different numbers of seeds."""
    counts = sorted({len(seeds) for seeds in seeds_per_row if seeds})
    if not counts:
        return "no runs"
    if len(counts) == 1:
        return f"{counts[0]} seed{'s' if counts[0] != 1 else ''}"
    return f"{counts[0]}–{counts[-1]} seeds per row"


def differences(here: dict, there: dict) -> str:
    """The settings in which `here` differs from `there`, as key=value (there value)."""
    keys = sorted(k for k in {*here, *there} if show(here.get(k)) != show(there.get(k)))
    return ", ".join(f"{k}={fmt(here.get(k))} (there {fmt(there.get(k))})" for k in keys)
