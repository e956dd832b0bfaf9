"""Group runs into table sections and compute each section's tidy table.

Paper tables (ALIE Tables 1 and 2): the runs of a table are split into protocol groups, runs whose
settings agree on everything but seed, row, attack.* and defense.*. Each group is one section (the
dataset is part of the protocol). A section's row is one distinct (row label, attack.*, defense.*); a
label that two distinct settings share gets a suffix naming what differs. A cell pools the seeds of one
row: mean, sample std (ddof=1), per-seed values, the final values the same way, the paper's number and
Δ = mean - paper (left out when the section ran fewer rounds than the paper's protocol).

Momentum (Distributed Momentum grid): per dataset, a row pools the runs whose settings agree on all but
seed and momentum.placement, and shows the server and worker placements side by side.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import pandas as pd

from byzrun.report.captions import alternatives, differences, fmt, protocol_parts, seeds_text
from byzrun.report.collect import Run, settings_hash, show, warn, without
from byzrun.report.presets import attack_label
from byzrun.report.specs import (
    MOMENTUM,
    MOMENTUM_TITLE,
    PLACEMENTS,
    TableSpec,
    dataset_label,
    dataset_rank,
    paper_row,
)

ROW_FREE = {"keys": ("row",), "prefixes": ("attack.", "defense.")}
SUFFIX_MAX = 60


@dataclass
class Row:
    """One table row: its label (with a distinguishing suffix if needed), the label it has in the
    table's spec, its runs in seed order, the hash of its settings, whether it is attacked, and (momentum
    rows) the fields it shows."""

    label: str
    base: str
    runs: list[Run]
    settings_hash: str = ""
    attacked: bool = True
    fields: dict = field(default_factory=dict)


@dataclass
class Section:
    """One written table: its table key, dataset, file stem, title, notes, rows and tidy frame, and the
    metrics shown beside the authors' code's runs (byzrun.report.code_runs; none: no such columns)."""

    table: str
    dataset: str
    stem: str
    title: str
    rows: list[Row]
    frame: pd.DataFrame
    spec: TableSpec | None = None
    notes: list[str] = field(default_factory=list)
    shortened: bool = False
    code_metrics: tuple[str, ...] = ()


# ---------------------------------------------------------------- cells


def group_by(runs: Iterable[Run], key: Callable[[Run], str]) -> dict[str, list[Run]]:
    """Runs grouped by key, groups and their runs in order of first appearance."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(key(run), []).append(run)
    return groups


def by_seed(runs: list[Run], where: str) -> list[Run]:
    """A cell's runs in seed order, one per seed: runs with equal settings and seed differ only in
    settings that do not change results (device, diagnostics), so the first found is kept."""
    kept: dict = {}
    for run in runs:
        if run.seed in kept:
            warn(f"{where}: seed {run.seed} twice ({kept[run.seed].name}, {run.name}), counted once")
        else:
            kept[run.seed] = run
    return sorted(kept.values(), key=lambda r: (r.seed is None, r.seed or 0, r.name))


def seed_values(runs: list[Run], column: str) -> list[tuple[int | None, float, bool]]:
    return [(run.seed, run.value(column), run.diverged) for run in runs]


def stats(values: list[tuple[int | None, float, bool]]) -> dict:
    """Mean, sample std (ddof=1; NaN for fewer than two), count of the non-missing values, and how many
    runs diverged."""
    numbers = pd.Series([v for _, v, _ in values if not math.isnan(v)], dtype=float)
    return {
        "mean": numbers.mean() if len(numbers) else math.nan,
        "std": numbers.std(ddof=1) if len(numbers) > 1 else math.nan,
        "seeds": int(len(numbers)),
        "diverged": sum(d for _, _, d in values),
    }


def per_seed_text(values: list[tuple[int | None, float, bool]]) -> str:
    """'s1 81.5 · s2 80.4†': every seed's value, one decimal, † for a diverged run, – when missing."""
    parts = []
    for seed, value, diverged in values:
        shown = "–" if math.isnan(value) else f"{value:.1f}"
        parts.append(f"s{'?' if seed is None else seed} {shown}{'†' if diverged else ''}")
    return " · ".join(parts)


def cell(runs: list[Run], best: str, final: str) -> dict:
    """A cell's numbers for one metric: the maximum's stats and per-seed values, the final's too."""
    best_values, final_values = seed_values(runs, best), seed_values(runs, final)
    final_stats = {f"final_{k}": v for k, v in stats(final_values).items() if k != "diverged"}
    return {
        **stats(best_values),
        "per_seed": per_seed_text(best_values) if runs else "",
        **final_stats,
        "final_per_seed": per_seed_text(final_values) if runs else "",
    }


# ---------------------------------------------------------------- rows


def suffixes(labelled: list[tuple[str, dict]], where: str) -> list[str]:
    """For (label, settings) pairs: '' for a unique label, else the keys that differ within the label
    as key=value (or a 6-character settings hash when that is too long), with a warning."""
    out = [""] * len(labelled)
    for label in dict.fromkeys(label for label, _ in labelled):
        members = [i for i, (lab, _) in enumerate(labelled) if lab == label]
        if len(members) < 2:
            continue
        keys = sorted({k for i in members for k in labelled[i][1]})
        differ = [k for k in keys if len({show(labelled[i][1].get(k)) for i in members}) > 1]
        for i in members:
            settings = labelled[i][1]
            text = ", ".join(f"{k}={show(settings.get(k))}" for k in differ)
            out[i] = f" [{text if len(text) <= SUFFIX_MAX else settings_hash(settings, 6)}]"
        warn(f"{where}: {len(members)} rows with distinct settings share the label {label!r}; suffixed")
    return out


def row_label(run: Run) -> str:
    label = run.settings.get("row")
    return str(label) if label else f"{run.text('defense', '?')} / {run.text('attack', '?')}"


def paper_rows(spec: TableSpec, runs: list[Run], where: str) -> list[Row]:
    """A section's rows: one per distinct (row label, attack.*, defense.*), the spec's rows first in
    its order (those without runs too), then the others in order of first appearance."""
    cells = list(group_by(runs, lambda r: settings_hash(row_settings(r.settings))).values())
    labelled = [(row_label(g[0]), row_settings(g[0].settings)) for g in cells]
    rows = [
        Row(label + suffix, label, by_seed(g, f"{where}, {label}{suffix}"), settings_hash(settings))
        for (label, settings), suffix, g in zip(labelled, suffixes(labelled, where), cells)
    ]
    present = {row.base for row in rows}
    rows += [Row(label, label, []) for label in spec.rows if label not in present]
    for row in rows:
        attacks = {r.text("attack") for r in row.runs}
        row.attacked = bool(attacks - {"none"}) if row.runs else row.base != "No Attack"
    rank = {label: i for i, label in enumerate(spec.rows)}
    first = {row.base: i for i, row in reversed(list(enumerate(rows)))}
    return sorted(rows, key=lambda r: (rank.get(r.base, len(rank)), first[r.base], r.label))


def row_settings(settings: dict) -> dict:
    """What tells a table's rows apart: the row label and every attack.* and defense.* setting."""
    return {k: v for k, v in settings.items() if k == "row" or k.startswith(("attack.", "defense."))}


# ---------------------------------------------------------------- paper tables


def protocol_key(run: Run) -> str:
    """The hash of a run's protocol: its settings less row, attack.* and defense.*."""
    return settings_hash(without(run.settings, **ROW_FREE))


def paper_sections(runs: list[Run], spec: TableSpec, paper: dict) -> list[Section]:
    """The sections of one paper table: per dataset (in byzrun's order) one per protocol, the one with
    the most rounds (then the most runs, then the lowest hash) first with the plain stem."""
    groups = group_by((r for r in runs if r.settings.get("name") == spec.key), protocol_key)
    by_dataset = group_by((g[0] for g in groups.values()), lambda r: r.dataset)
    sections = []
    for dataset in sorted(by_dataset, key=dataset_rank):
        keys = sorted(
            (protocol_key(r) for r in by_dataset[dataset]),
            key=lambda k: (-rounds_of(groups[k]), -len(groups[k]), k),
        )
        plain = without(groups[keys[0]][0].settings, **ROW_FREE)
        for i, key in enumerate(keys):
            stem, notes = f"{spec.key}_{dataset}", []
            if i:
                protocol = without(groups[key][0].settings, **ROW_FREE)
                notes = [f"Protocol differs from {stem} in: {differences(protocol, plain)}."]
                stem += f"-{key[:6]}"
            sections.append(paper_section(spec, dataset, stem, groups[key], paper, notes))
    return sections


def rounds_of(runs: list[Run]) -> int:
    value = pd.to_numeric(runs[0].settings.get("rounds"), errors="coerce")
    return 0 if pd.isna(value) else int(value)


def paper_section(
    spec: TableSpec, dataset: str, stem: str, runs: list[Run], paper: dict, notes: list[str]
) -> Section:
    rows = paper_rows(spec, runs, stem)
    rounds = rounds_of(runs)
    shortened = rounds < spec.protocol_rounds
    attacked = [r for row in rows if row.attacked for r in row.runs]
    model = alternatives(r.settings.get("model.name") for r in runs)
    parts = [*protocol_parts(runs, attacked), seeds_text([{r.seed for r in row.runs} for row in rows])]
    mark = (
        f" (shortened: {rounds} of the paper's {spec.protocol_rounds} rounds, not comparable with the "
        "paper's numbers)"
        if shortened
        else ""
    )
    title = f"{spec.title}, {dataset_label(dataset)}{mark}, model {model}: {', '.join(parts)}"
    lines = []
    for row in rows:
        for metric in spec.metrics:
            if metric.attacked_only and not row.attacked:
                continue
            numbers = cell(row.runs, metric.best, metric.final)
            reference = paper.get((spec.key, paper_row(row.base), dataset, metric.paper), math.nan)
            diff = math.nan if shortened else numbers["mean"] - reference
            key = {"table": spec.key, "section": stem, "dataset": dataset, "row": row.label}
            lines.append({**key, "metric": metric.best, **numbers, "paper": reference, "diff": diff})
            lines[-1].update(rounds=rounds, shortened=shortened, settings_hash=row.settings_hash)
    frame = pd.DataFrame(lines)
    return Section(spec.key, dataset, stem, f"{stem}: {title}", rows, frame, spec, notes, shortened)


# ---------------------------------------------------------------- momentum


def momentum_sections(runs: list[Run]) -> list[Section]:
    """One section per dataset of the runs with name=momentum and a server or worker placement."""
    grid = [r for r in runs if r.settings.get("name") == MOMENTUM]
    placed = [r for r in grid if r.settings.get("momentum.placement") in PLACEMENTS]
    if len(placed) < len(grid):
        warn(f"momentum: {len(grid) - len(placed)} run(s) with momentum.placement none left out")
    by_dataset = group_by(placed, lambda r: r.dataset)
    return [momentum_section(d, by_dataset[d]) for d in sorted(by_dataset, key=dataset_rank)]


def momentum_fields(run: Run) -> dict:
    """What a momentum row shows of its settings: attack, defense, f (= m) and lr."""
    return {
        "attack": attack_label(run),
        "defense": run.text("defense", "?"),
        "f": run.settings.get("m"),
        "lr": run.settings.get("lr", run.value("lr")),
    }


def momentum_label(fields: dict) -> str:
    return f"{fields['attack']} / {fields['defense']} / f={fmt(fields['f'])} / lr={fmt(fields['lr'])}"


def momentum_row(group: list[Run], settings: dict, suffix: str, stem: str) -> tuple[Row, dict]:
    """One momentum row: the runs of both placements and its tidy line (per placement mean, std, seeds,
    diverged, per-seed values; diff = worker - server)."""
    fields = {**momentum_fields(group[0]), "variant": suffix.strip()}
    line, runs = {**fields}, []
    for placement in PLACEMENTS:
        members = [r for r in group if r.settings.get("momentum.placement") == placement]
        members = by_seed(members, f"{stem}, {fields['defense']}{suffix}, {placement}")
        numbers = cell(members, "max_test_acc", "final_test_acc")
        line.update(
            {f"{placement}_{k}": numbers[k] for k in ("mean", "std", "seeds", "diverged", "per_seed")}
        )
        runs += members
    line["diff"] = line["worker_mean"] - line["server_mean"]
    line["settings_hash"] = settings_hash(settings)
    label = f"{fields['defense']}{suffix} f={fmt(fields['f'])} lr={fmt(fields['lr'])}"
    return Row(label, label, runs, line["settings_hash"], True, fields), line


def momentum_section(dataset: str, runs: list[Run]) -> Section:
    """A dataset's momentum rows, sorted by attack, defense, f, lr and variant."""
    stem = f"{MOMENTUM}_{dataset}"
    free = ("momentum.placement",)
    cells = list(group_by(runs, lambda r: settings_hash(without(r.settings, free))).values())
    labelled = [(momentum_label(momentum_fields(g[0])), without(g[0].settings, free)) for g in cells]
    built = [
        momentum_row(group, settings, suffix, stem)
        for group, (_, settings), suffix in zip(cells, labelled, suffixes(labelled, stem))
    ]
    built.sort(key=lambda b: momentum_order(b[1]))
    rows = [row for row, _ in built]
    frame = pd.DataFrame([{"dataset": dataset, **line} for _, line in built])
    caption = ", ".join(
        [*protocol_parts(runs, None), seeds_text([{r.seed for r in row.runs} for row in rows])]
    )
    title = f"{stem}: {MOMENTUM_TITLE}, {dataset_label(dataset)}: {caption}"
    return Section(MOMENTUM, dataset, stem, title, rows, frame)


def momentum_order(line: dict) -> tuple:
    return (line["attack"], line["defense"], sortable(line["f"]), sortable(line["lr"]), line["variant"])


def sortable(value) -> tuple:
    number = pd.to_numeric(value, errors="coerce")
    return (0, float(number), "") if not pd.isna(number) else (1, 0.0, str(value))


def build_sections(runs: list[Run], paper: dict, specs: Iterable[TableSpec]) -> list[Section]:
    """Every section in the written order: the paper tables in spec order, then momentum; within a
    table, datasets in byzrun's order."""
    sections = [s for spec in specs for s in paper_sections(runs, spec, paper)]
    return sections + momentum_sections(runs)
