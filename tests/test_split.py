"""The split group: how the training set is divided among the workers, what each worker then samples
from, split.csv, the config hash, and the one-line errors."""

import copy
import functools

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

import byzrun.train
from byzrun.config import config_hash, validate
from byzrun.errors import ConfigError
from byzrun.report.collect import result_settings
from byzrun.sampling import PartSampler, WorkerSampler
from byzrun.split import MAX_DRAWS, dirichlet_parts, gamma_parts, make_sampler, split_parts
from byzrun.train import prepare, train
from tests.conftest import make_cfg, run_cli

CLASSES = 10


@functools.cache
def composed(*groups: str) -> DictConfig:
    return make_cfg("dataset=digits", "device=cpu", *groups)


def split_cfg(split: str, **values) -> DictConfig:
    """The config of `byzrun dataset=digits <split> key=value ...`, composing each split once."""
    cfg = copy.deepcopy(composed(split))
    for key, value in values.items():
        OmegaConf.update(cfg, key.replace("__", "."), value, merge=False)
    return cfg


def synthetic_labels(per_class: int = 100, seed: int = 0) -> np.ndarray:
    """per_class samples of each of CLASSES labels, in a random order."""
    return np.random.default_rng(seed).permutation(np.repeat(np.arange(CLASSES), per_class))


def counts(parts: list[np.ndarray], labels: np.ndarray) -> np.ndarray:
    """[workers, classes] label counts, by brute force."""
    table = np.zeros((len(parts), CLASSES), dtype=np.int64)
    for j, part in enumerate(parts):
        for i in part:
            table[j, labels[i]] += 1
    return table


def skew(table: np.ndarray) -> float:
    """Mean total-variation distance of the workers' label distributions from the whole set's (0: iid)."""
    table = np.asarray(table, dtype=np.float64)
    overall = table.sum(0) / table.sum()
    return float(np.mean(0.5 * np.abs(table / table.sum(1, keepdims=True) - overall).sum(1)))


def assert_disjoint_cover(parts: list[np.ndarray], n_samples: int) -> None:
    together = np.sort(np.concatenate(parts))
    assert np.array_equal(together, np.arange(n_samples))  # every sample exactly once


# ---------------------------------------------------------------------------- the divisions


def test_extreme_is_the_label_sorted_set_cut_into_contiguous_near_equal_shards():
    labels = synthetic_labels(per_class=97)  # 970 samples over 7 workers: shards of 139 and 138
    parts = gamma_parts(labels, 7, 0.0, np.random.default_rng(0))
    assert_disjoint_cover(parts, len(labels))
    assert [len(p) for p in parts] == [139] * 4 + [138] * 3
    expected = np.zeros((7, CLASSES), dtype=np.int64)
    sorted_labels, start = np.sort(labels), 0
    for j, size in enumerate([139] * 4 + [138] * 3):
        for label in sorted_labels[start : start + size]:
            expected[j, label] += 1
        start += size
    assert np.array_equal(counts(parts, labels), expected)
    assert all(np.count_nonzero(row) <= 3 for row in expected)  # 10 classes over 7 workers


def test_gamma_deals_a_random_share_iid_and_sorts_the_rest_by_label():
    labels, w, gamma = synthetic_labels(), 8, 0.3
    parts = gamma_parts(labels, w, gamma, np.random.default_rng(1))
    assert_disjoint_cover(parts, len(labels))
    dealt = int(gamma * len(labels))  # 300: pieces of 38, 38, 38, 38, 37, ...
    dealt_sizes = [len(p) for p in np.array_split(np.arange(dealt), w)]
    rest_sizes = [len(p) for p in np.array_split(np.arange(len(labels) - dealt), w)]
    assert [len(p) for p in parts] == [a + b for a, b in zip(dealt_sizes, rest_sizes)]
    sorted_pieces = [labels[p[a:]] for p, a in zip(parts, dealt_sizes)]
    assert np.array_equal(np.concatenate(sorted_pieces), np.sort(np.concatenate(sorted_pieces)))


def test_gamma_one_is_iid_like_and_gamma_zero_is_sorted():
    labels = synthetic_labels()
    table = {g: counts(gamma_parts(labels, 10, g, np.random.default_rng(0)), labels) for g in (0, 0.5, 1)}
    assert skew(table[0]) == pytest.approx(0.9)  # one class per worker
    assert skew(table[0]) > skew(table[0.5]) > skew(table[1])
    assert skew(table[1]) < 0.2
    assert np.array_equal(table[0], 100 * np.eye(CLASSES, dtype=np.int64))


def test_dirichlet_skew_decreases_with_alpha():
    labels = synthetic_labels(per_class=300)
    mean_skew = {
        alpha: np.mean(
            [
                skew(counts(dirichlet_parts(labels, 10, alpha, np.random.default_rng(s), 1), labels))
                for s in range(5)
            ]
        )
        for alpha in (0.1, 1.0, 100.0)
    }
    assert mean_skew[0.1] > 0.5 > mean_skew[1.0] > mean_skew[100.0]
    assert mean_skew[100.0] < 0.1


def test_dirichlet_shares_have_the_dirichlet_variance():
    """Per class, the share of worker j is Beta(alpha, (w-1) alpha): mean 1/w, variance
    (1/w)(1 - 1/w) / (w alpha + 1) (Hsu et al. 2019's Dir(alpha) over w workers)."""
    w, alpha, per_class = 5, 0.5, 5000
    labels = synthetic_labels(per_class=per_class)
    shares = np.concatenate(
        [
            np.bincount(labels[p], minlength=CLASSES) / per_class
            for s in range(40)
            for p in dirichlet_parts(labels, w, alpha, np.random.default_rng(s), 1)
        ]
    )
    assert shares.mean() == pytest.approx(1 / w)
    assert shares.var() == pytest.approx((1 / w) * (1 - 1 / w) / (w * alpha + 1), rel=0.15)


class CountingRng:
    """A numpy Generator that counts its Dirichlet draws."""

    def __init__(self, seed: int):
        self.rng, self.draws = np.random.default_rng(seed), 0

    def permutation(self, x):
        return self.rng.permutation(x)

    def dirichlet(self, alpha, size):
        self.draws += 1
        return self.rng.dirichlet(alpha, size)


def test_dirichlet_is_a_disjoint_cover_and_redraws_until_every_worker_has_enough():
    labels = synthetic_labels(per_class=30)  # 300 samples, 30 per worker on average
    draws = []
    for seed in range(5):
        rng = CountingRng(seed)
        parts = dirichlet_parts(labels, 10, 1.0, rng, 15)
        assert_disjoint_cover(parts, len(labels))
        assert min(len(p) for p in parts) >= 15
        draws.append(rng.draws)
    assert max(draws) > 1  # some first draws left a worker short, and were drawn again
    with pytest.raises(ConfigError, match=f"left a worker with no samples in each of {MAX_DRAWS} draws"):
        dirichlet_parts(labels, 400, 0.1, np.random.default_rng(0), 1)


@pytest.mark.parametrize("split", ["split=dirichlet", "split=gamma", "split=extreme"])
def test_splits_are_seeded_and_byzantine_option_decides_who_shares_the_data(split):
    labels = synthetic_labels()
    cfg = split_cfg(split, n=10, m=3, batch_size=8)
    a, b = split_parts(cfg, labels), split_parts(cfg, labels)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert len(a) == 10
    assert_disjoint_cover(a[:7], len(labels))  # byzantine: iid: the honest workers share the data
    assert all(np.array_equal(p, np.arange(len(labels))) for p in a[7:])  # the others draw from it all
    own = split_parts(split_cfg(split, n=10, m=3, batch_size=8, split__byzantine="own"), labels)
    assert_disjoint_cover(own, len(labels))  # all n workers share it, the Byzantine ones the last parts
    other_seed = split_parts(split_cfg(split, n=10, m=3, batch_size=8, seed=1), labels)
    assert not all(np.array_equal(x, y) for x, y in zip(a, other_seed))


# ---------------------------------------------------------------------------- drawing from the parts


def test_part_sampler_iid_draws_only_from_each_workers_part():
    gen = torch.Generator().manual_seed(0)
    parts = [torch.arange(0, 5), torch.arange(5, 105), torch.arange(105, 106)]
    sampler = PartSampler(parts, 64, "iid", gen)
    seen = [set() for _ in parts]
    for _ in range(20):
        idx = sampler.next()
        assert idx.shape == (3, 64)
        for j, part in enumerate(parts):
            assert set(idx[j].tolist()) <= set(part.tolist())
            seen[j] |= set(idx[j].tolist())
    assert seen[0] == set(range(5)) and len(seen[1]) > 90  # uniform over the part, its ends included


def test_part_sampler_shards_walks_each_part_without_replacement_then_reshuffles():
    gen = torch.Generator().manual_seed(0)
    parts = [torch.arange(0, 10), torch.arange(10, 40)]  # passes of 2 and 7 batches of 4
    sampler = PartSampler(parts, 4, "shards", gen)
    rows = [sampler.next() for _ in range(14)]
    first = torch.cat([r[1] for r in rows[:7]]).tolist()
    assert len(set(first)) == 28 and set(first) <= set(range(10, 40))  # no repeat within a pass
    small = [r[0].tolist() for r in rows[:2]]
    assert len(set(small[0] + small[1])) == 8 and set(small[0] + small[1]) <= set(range(10))
    passes = [torch.cat([r[0] for r in rows[2 * k : 2 * k + 2]]).tolist() for k in range(7)]
    assert len({tuple(p) for p in passes}) > 1  # reshuffled between passes


def test_the_iid_split_keeps_todays_sampler_and_its_draws():
    cfg = split_cfg("split=iid", n=7, batch_size=5)
    labels = torch.arange(300) % 10
    sampler = make_sampler(cfg, labels, torch.Generator().manual_seed(3))
    assert type(sampler) is WorkerSampler
    expected = torch.randint(300, (7, 5), generator=torch.Generator().manual_seed(3))
    assert torch.equal(sampler.next(), expected)


# ---------------------------------------------------------------------------- identity and errors


def test_the_iid_split_leaves_the_config_hash_and_the_table_cells_unchanged():
    default = composed()
    before_split = copy.deepcopy(default)
    with open_dict(before_split):
        del before_split["split"]  # a config from before the split group existed
    assert config_hash(default) == config_hash(composed("split=iid"))
    assert config_hash(default) == config_hash(before_split)
    settings = result_settings(OmegaConf.to_container(default))
    assert settings == result_settings(OmegaConf.to_container(before_split))  # old and new runs share cells
    variants = [split_cfg("split=extreme"), split_cfg("split=dirichlet"), split_cfg("split=gamma")]
    variants += [
        split_cfg("split=dirichlet", split__alpha=0.1),
        split_cfg("split=extreme", split__byzantine="own"),
    ]
    hashes = {config_hash(c) for c in [default, *variants]}
    assert len(hashes) == 6


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["split=dirichlet", "split.alpha=0"], "split.alpha must be a number > 0"),
        (["split=dirichlet", "split.alpha=-1"], "split.alpha must be a number > 0"),
        (["split=dirichlet", "split.alpha=abc"], "split.alpha must be a number > 0"),
        (["split=gamma", "split.gamma=1.5"], r"split.gamma must be a number in \[0, 1\]"),
        (["split=gamma", "split.gamma=-0.1"], r"split.gamma must be a number in \[0, 1\]"),
        (["split=extreme", "split.byzantine=mine"], "unknown split.byzantine 'mine'; choose iid or own"),
        (["split=extreme", "split.name=sorted"], "unknown split 'sorted'; choose one of"),
        (["split=extreme", "sampling=alie_code"], "sampling=alie_code .* cannot follow split=extreme"),
    ],
)
def test_bad_split_options_are_rejected_before_any_data_is_read(overrides, message, monkeypatch, tmp_path):
    def no_data(*args, **kwargs):
        raise AssertionError("data was read before the options were checked")

    monkeypatch.setattr(byzrun.train, "load_data", no_data)
    cfg = make_cfg("dataset=digits", "device=cpu", *overrides, results_dir=tmp_path)
    with pytest.raises(ConfigError, match=message):
        validate(cfg)
    with pytest.raises(ConfigError, match=message):
        prepare(cfg)


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ["split=sorted"],
            "unknown split 'sorted'; choose one of: dirichlet, dirichlet_0.1, dirichlet_1, extreme, gamma, "
            "iid",
        ),
        (["split=dirichlet", "split.alpha=0"], "split.alpha must be a number > 0"),
        (
            ["split=extreme", "n=2000"],
            "split=extreme of 1437 training samples over 2000 workers leaves a worker ",
        ),
        (
            ["split=extreme", "sampling=shards"],
            "fewer than the batch_size=128 samples that sampling=shards needs",
        ),
    ],
)
def test_the_cli_reports_split_errors_in_one_line(args, message, monkeypatch, capsys, tmp_path):
    status = run_cli(
        monkeypatch, "dataset=digits", "device=cpu", "progress=false", f"results_dir={tmp_path}", *args
    )
    assert status == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("byzrun: error: ") and message in lines[0], lines
    assert not (tmp_path / "runs").exists()  # nothing written


# ---------------------------------------------------------------------------- end to end


@pytest.mark.parametrize(
    "split,sampling",
    [
        ("split=iid", "sampling=iid"),
        ("split=iid", "sampling=shards"),
        ("split=dirichlet", "sampling=iid"),
        ("split=gamma", "sampling=shards"),
        ("split=extreme", "sampling=iid"),
    ],
)
def test_a_digits_run_writes_split_csv_with_each_workers_label_counts(digits_cfg, split, sampling):
    alpha = ["split.alpha=0.1"] if split == "split=dirichlet" else []
    cfg = digits_cfg(split, sampling, "m=2", "rounds=10", *alpha)
    setup = prepare(cfg)
    summary = train(setup)
    assert summary["max_test_acc"] > 30.0  # it trains
    table = pd.read_csv(setup.out / "split.csv")
    assert list(table.columns) == ["worker", "role"] + [str(k) for k in range(CLASSES)]
    assert table["worker"].tolist() == list(range(11))
    assert table["role"].tolist() == ["honest"] * 9 + ["byzantine"] * 2
    label_counts = table[[str(k) for k in range(CLASSES)]].to_numpy()
    whole = torch.bincount(setup.data.train_y, minlength=CLASSES).numpy()
    honest = label_counts[:9]
    if split == "split=iid" and sampling == "sampling=iid":
        assert (label_counts == whole).all()  # every worker draws from the whole training set
    elif split == "split=iid":
        assert (label_counts.sum(1) == len(setup.data.train_y) // 11).all()  # equal random shards
        assert skew(label_counts) < 0.2
    else:
        assert (honest.sum(0) == whole).all()  # the honest workers share the training set
        assert (label_counts[9:] == whole).all()  # byzantine: iid
    if split == "split=extreme":
        assert all(np.count_nonzero(row) <= 3 for row in honest) and skew(honest) > 0.7
    if split == "split=dirichlet":
        assert skew(honest) > 0.4
    # every worker's batches come from its own part
    parts = setup.sampler.parts()
    idx = setup.sampler.next()
    for j in range(11):
        assert set(idx[j].tolist()) <= set(parts[j].tolist())


def test_table_captions_name_a_non_iid_split_and_only_then(tmp_path):
    from byzrun.report.captions import protocol_parts
    from byzrun.report.collect import Run

    def caption(cfg: DictConfig) -> list[str]:
        run = Run(tmp_path, "run", {}, 0, result_settings(OmegaConf.to_container(cfg)))
        return protocol_parts([run], None)

    assert not any(part.startswith("split") for part in caption(composed()))
    assert "split dirichlet alpha 0.1" in caption(split_cfg("split=dirichlet", split__alpha=0.1))
    own = caption(split_cfg("split=extreme", split__byzantine="own"))
    assert "split extreme, Byzantine workers on their own parts" in own
