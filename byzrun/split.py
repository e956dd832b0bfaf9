"""How the training set is divided among the workers (`split=...`, conf/split/), and what each worker
then holds (split.csv).

With a split other than iid every worker owns a part of the training set and draws its batches from
that part only, with the run's `sampling` scheme (byzrun.sampling.PartSampler). Definitions, over the
w workers that the split divides the data among (the n-m honest ones; all n with `byzantine: own`):

- iid: no division (today's behaviour, byzrun.sampling.WorkerSampler unchanged).
- dirichlet (Hsu, Qi, Brown, "Measuring the Effects of Non-Identical Data Distribution for Federated
  Visual Classification", 2019): for every class k, shares p_k ~ Dir(alpha * 1_w) over the workers; the
  class's N_k samples, in a random order, are cut at floor(N_k * (p_k1 + ... + p_kj)), j = 1..w-1, and
  worker j gets the j-th piece. The shares are drawn again (at most MAX_DRAWS times) until every worker
  holds what its sampling needs (see min_part_size); small alpha with many workers therefore slightly
  favours draws without near-empty workers.
- gamma (gamma similarity, as in ByzFL): a random share floor(gamma * N) of the samples is dealt iid,
  cut into w near-equal random pieces; the rest is sorted by label and cut into w contiguous near-equal
  pieces; worker j gets the j-th piece of each. gamma=1 is an iid split, gamma=0 the extreme one.
- extreme (Karimireddy, He, Jaggi, "Byzantine-Robust Learning on Heterogeneous Datasets via
  Bucketing", ICLR 2022): all samples sorted by label and cut into w contiguous near-equal shards (the
  gamma split with gamma=0), so each worker sees one or two classes.

Near-equal pieces: the first N mod w pieces hold one sample more. Samples of one class are in a
random order (seeded), so which of them fall on either side of a cut is random too. The parts are
disjoint and together cover the training set. With `byzantine: iid` (the default) the Byzantine
workers' own (honest) gradients come from the whole training set, as in Karimireddy et al.

A worker whose part is too small to sample from is one ConfigError line, once the labels are read and
before training: an empty part with sampling=iid, one smaller than batch_size with sampling=shards.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from byzrun.errors import ConfigError
from byzrun.sampling import PartSampler, WorkerSampler

SPLITS = ("iid", "dirichlet", "gamma", "extreme")
MAX_DRAWS = 1000  # Dirichlet draws tried before giving up on giving every worker enough samples


def check_split(cfg: DictConfig) -> None:
    """The split's options, before any data is read (one line naming the fix)."""
    split = cfg.get("split") or {"name": "iid"}
    name = split.get("name")
    if name not in SPLITS:
        raise ConfigError(f"unknown split {name!r}; choose one of: {', '.join(SPLITS)}")
    if name == "iid":
        return
    if name == "dirichlet":
        alpha = split.get("alpha")
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < math.inf:
            raise ConfigError(
                f"split.alpha must be a number > 0, e.g. 0.1 (skewed) or 100 (near iid), got {alpha!r}"
            )
    if name == "gamma":
        gamma = split.get("gamma")
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not 0 <= gamma <= 1:
            raise ConfigError(f"split.gamma must be a number in [0, 1] (the share dealt iid), got {gamma!r}")
    if split.get("byzantine") not in ("iid", "own"):
        raise ConfigError(f"unknown split.byzantine {split.get('byzantine')!r}; choose iid or own")
    if cfg.sampling == "alie_code":
        raise ConfigError(
            f"sampling=alie_code replays the ALIE code's shards of the whole training set and cannot "
            f"follow split={name}; use sampling=iid or sampling=shards"
        )


def min_part_size(cfg: DictConfig) -> int:
    """The fewest samples a worker's part may hold: one to draw from with replacement (sampling=iid),
    a full batch of distinct samples for a pass without replacement (sampling=shards)."""
    return cfg.batch_size if cfg.sampling == "shards" else 1


def too_few(least: int) -> str:
    return (
        "no samples"
        if least == 1
        else f"fewer than the batch_size={least} samples that sampling=shards needs"
    )


def fix(least: int) -> str:
    return "lower n" if least == 1 else "lower n or batch_size, or use sampling=iid"


def is_iid(cfg: DictConfig) -> bool:
    return OmegaConf.select(cfg, "split.name", default="iid") == "iid"


def near_equal_pieces(indices: np.ndarray, w: int) -> list[np.ndarray]:
    """w contiguous pieces, the first len % w of them one longer (as numpy's array_split)."""
    return np.array_split(indices, w)


def gamma_parts(labels: np.ndarray, w: int, gamma: float, rng: np.random.Generator) -> list[np.ndarray]:
    """A random floor(gamma*N) samples dealt iid, the rest sorted by label in contiguous pieces."""
    perm = rng.permutation(len(labels))
    dealt = math.floor(gamma * len(labels))
    rest = perm[dealt:]
    by_label = rest[np.argsort(labels[rest], kind="stable")]  # stable: random order within a class
    return [
        np.concatenate([a, b])
        for a, b in zip(near_equal_pieces(perm[:dealt], w), near_equal_pieces(by_label, w))
    ]


def dirichlet_parts(
    labels: np.ndarray, w: int, alpha: float, rng: np.random.Generator, min_size: int
) -> list[np.ndarray]:
    """Per class, Dir(alpha) shares over the w workers; redrawn until every worker has min_size samples."""
    members = [rng.permutation(np.flatnonzero(labels == k)) for k in np.unique(labels)]
    sizes = np.array([len(c) for c in members])
    for _ in range(MAX_DRAWS):
        shares = rng.dirichlet(np.full(w, float(alpha)), size=len(members))  # [classes, w]
        # the cut after worker j; the last is the class size exactly (float sums may fall short of 1)
        cuts = np.minimum(
            np.floor(np.cumsum(shares, axis=1) * sizes[:, None]).astype(np.int64), sizes[:, None]
        )
        cuts[:, -1] = sizes
        counts = np.diff(cuts, axis=1, prepend=0).sum(axis=0)
        if counts.min() >= min_size:
            pieces = [np.split(c, cut[:-1]) for c, cut in zip(members, cuts)]
            return [np.concatenate([p[j] for p in pieces]) for j in range(w)]
    raise ConfigError(
        f"split=dirichlet with alpha={alpha} left a worker with {too_few(min_size)} in each of {MAX_DRAWS} "
        f"draws; raise split.alpha or {fix(min_size)}"
    )


def split_parts(cfg: DictConfig, labels: np.ndarray) -> list[np.ndarray]:
    """Each worker's part of the training set (indices), honest workers first, for a non-iid split.
    Raises ConfigError (one line) when a worker would hold too few samples to sample from."""
    split, n, m, least = cfg.split, cfg.n, cfg.m, min_part_size(cfg)
    w = n if split.byzantine == "own" else n - m
    rng = np.random.default_rng(cfg.seed)
    if split.name == "dirichlet":
        parts = dirichlet_parts(labels, w, split.alpha, rng, least)
    else:
        parts = gamma_parts(labels, w, split.gamma if split.name == "gamma" else 0.0, rng)
    smallest = min(len(p) for p in parts)
    if smallest < least:
        raise ConfigError(
            f"split={split.name} of {len(labels)} training samples over {w} workers leaves a worker with "
            f"{too_few(least)} (the smallest part: {smallest}); {fix(least)}"
        )
    if w < n:  # byzantine: iid: the Byzantine workers draw from the whole training set
        parts += [np.arange(len(labels))] * m
    return parts


def make_sampler(cfg: DictConfig, train_y: Tensor, generator: torch.Generator) -> WorkerSampler | PartSampler:
    """The run's batch sampler: today's WorkerSampler for the iid split (the same draws, bit for bit),
    else a PartSampler over the split's parts."""
    if is_iid(cfg):
        return WorkerSampler(len(train_y), cfg.n, cfg.batch_size, cfg.sampling, generator, cfg.m)
    parts = split_parts(cfg, train_y.cpu().numpy())
    return PartSampler([torch.from_numpy(p) for p in parts], cfg.batch_size, cfg.sampling, generator)


def split_table(parts: list[Tensor], train_y: Tensor, num_classes: int, m: int) -> list[dict]:
    """split.csv: one row per worker, its role, then how many samples of each label its part holds
    (the samples it draws its batches from)."""
    n = len(parts)
    rows = []
    for i, part in enumerate(parts):
        counts = torch.bincount(train_y[part.to(train_y.device)], minlength=num_classes).tolist()
        role = "honest" if i < n - m else "byzantine"
        rows.append({"worker": i, "role": role, **{str(k): c for k, c in enumerate(counts)}})
    return rows
