"""Per-worker batch indices and batched augmentation, all as tensor ops on the device."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from byzrun.errors import ConfigError


class WorkerSampler:
    """Draws one batch of training indices per worker, [n, b], in one call.

    iid:    each worker draws b indices uniformly at random from the whole training set
            (with replacement across rounds and workers: i.i.d. workers as in the papers).
    shards: the training set is split into n disjoint random shards of equal size (the remainder
            is dropped) and each worker cycles through its own shard, reshuffling it after every
            pass.
    alie_code: exactly what the ALIE authors' code gets from torch's DistributedSampler, which it
            never calls set_epoch on: one permutation of the training set from seed 0 (the same in
            every run, whatever the run's seed), padded to n*ceil(N/n) by repeating its head;
            worker rank r owns every n-th index from r and walks it in that fixed order in
            batches of b, the last batch of a pass short (MNIST, n=51, b=128: shards of 1,177,
            every 10th round a batch of 25 for all workers). The code's Byzantine workers are
            ranks 0..m-1, so byzrun's Byzantine rows n-m..n-1 get those shards: row i has rank
            (i + m) mod n.
    """

    def __init__(
        self,
        num_samples: int,
        n: int,
        batch_size: int,
        mode: str,
        generator: torch.Generator,
        m: int = 0,
    ):
        self.N, self.n, self.b, self.mode, self.gen = num_samples, n, batch_size, mode, generator
        self.device = generator.device
        if mode == "alie_code":
            self._distributed_sampler_shards(m)
        elif mode == "shards":
            self.shard_size = num_samples // n
            if batch_size > self.shard_size:
                raise ConfigError(
                    f"batch_size={batch_size} is larger than a worker's shard ({num_samples} samples / "
                    f"n={n} = {self.shard_size}); use sampling=iid or a smaller batch_size"
                )
            perm = torch.randperm(num_samples, generator=generator, device=self.device)
            self.shards = perm[: n * self.shard_size].view(n, self.shard_size)
            self._reshuffle()
        elif mode != "iid":
            raise ConfigError(f"unknown sampling {mode!r}; choose iid, shards or alie_code")

    def _distributed_sampler_shards(self, m: int) -> None:
        perm = torch.randperm(self.N, generator=torch.Generator().manual_seed(0))
        total = -(-self.N // self.n) * self.n
        padded = torch.cat([perm, perm[: total - self.N]])
        ranks = (torch.arange(self.n) + m) % self.n
        self.order = padded.view(-1, self.n).t()[ranks].to(self.device)  # [n, ceil(N/n)]
        self.shard_size = self.order.shape[1]
        self.pos = 0

    def _reshuffle(self) -> None:
        order = torch.rand(self.n, self.shard_size, generator=self.gen, device=self.device).argsort(dim=1)
        self.order = self.shards.gather(1, order)
        self.pos = 0

    def parts(self) -> list[Tensor]:
        """The training indices each worker draws its batches from (split.csv): the whole training set
        (iid), its shard (shards) or its padded DistributedSampler shard (alie_code). Draws nothing."""
        if self.mode == "iid":
            return [torch.arange(self.N, device=self.device)] * self.n
        return list(self.shards if self.mode == "shards" else self.order)

    def next(self) -> Tensor:
        if self.mode == "iid":
            return torch.randint(self.N, (self.n, self.b), generator=self.gen, device=self.device)
        if self.mode == "alie_code":  # fixed order; the last batch of a pass is short
            idx = self.order[:, self.pos : self.pos + self.b]
            self.pos = self.pos + self.b if self.pos + self.b < self.shard_size else 0
            return idx
        if self.pos + self.b > self.shard_size:
            self._reshuffle()
        idx = self.order[:, self.pos : self.pos + self.b]
        self.pos += self.b
        return idx


class PartSampler:
    """Draws one batch per worker, [n, b], each from the worker's own part of the training set (a
    non-iid split, byzrun.split), with the run's `sampling` scheme:

    iid:    b indices uniformly at random from the worker's part (with replacement);
    shards: the part is the worker's shard: it walks it in a random order, without replacement, and
            reshuffles it after every pass (the rest of a pass shorter than b is skipped).

    Parts may differ in size; they are held as one padded [n, L] table so that a round is one gather.
    """

    def __init__(self, parts: list[Tensor], batch_size: int, mode: str, generator: torch.Generator):
        if mode not in ("iid", "shards"):
            raise ConfigError(f"sampling={mode} cannot draw from a split's parts; use sampling=iid or shards")
        if mode == "shards" and min(len(p) for p in parts) < batch_size:
            raise ConfigError(
                f"sampling=shards needs every worker's part to hold batch_size={batch_size} samples"
            )
        self.n, self.b, self.mode, self.gen = len(parts), batch_size, mode, generator
        self.device = generator.device
        self._parts = [p.to(self.device) for p in parts]
        self.sizes = torch.tensor([len(p) for p in parts])  # on the CPU: positions need no device sync
        self.table = torch.zeros(self.n, int(self.sizes.max()), dtype=torch.long, device=self.device)
        for i, part in enumerate(self._parts):
            self.table[i, : len(part)] = part
        self.sizes_dev = self.sizes.to(self.device)
        if mode == "shards":
            self.pos = torch.zeros(self.n, dtype=torch.long)
            for i in range(self.n):
                self._reshuffle(i)

    def parts(self) -> list[Tensor]:
        return self._parts

    def _reshuffle(self, i: int) -> None:
        size = int(self.sizes[i])
        self.table[i, :size] = self._parts[i][torch.randperm(size, generator=self.gen, device=self.device)]
        self.pos[i] = 0

    def next(self) -> Tensor:
        if self.mode == "iid":
            u = torch.rand(self.n, self.b, generator=self.gen, device=self.device, dtype=torch.float64)
            pos = (u * self.sizes_dev[:, None]).long().minimum(self.sizes_dev[:, None] - 1)
            return self.table.gather(1, pos)
        # only the workers whose pass has ended reshuffle: a few per round, so a loop over them
        for i in torch.nonzero(self.pos + self.b > self.sizes).flatten().tolist():
            self._reshuffle(i)
        pos = self.pos[:, None] + torch.arange(self.b)
        self.pos += self.b
        return self.table.gather(1, pos.to(self.device))


def random_crop_flip(x: Tensor, generator: torch.Generator, pad: int = 4) -> Tensor:
    """Reflect-pad by `pad`, take a random crop of the original size and flip half of the images
    horizontally; one independent draw per image, done by gathering, no Python loop."""
    B, _, H, W = x.shape
    dev = x.device
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    oy = torch.randint(0, 2 * pad + 1, (B,), generator=generator, device=dev)
    ox = torch.randint(0, 2 * pad + 1, (B,), generator=generator, device=dev)
    flip = torch.rand(B, generator=generator, device=dev) < 0.5
    rows = oy[:, None] + torch.arange(H, device=dev)  # [B, H]
    cols = torch.arange(W, device=dev).expand(B, W)
    cols = torch.where(flip[:, None], cols.flip(1), cols) + ox[:, None]  # [B, W]
    b = torch.arange(B, device=dev)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[b, rows[:, :, None], cols[:, None, :]]  # [B, H, W, C]
    return out.permute(0, 3, 1, 2).contiguous()
