"""Per-worker gradients as a plain loop of ordinary backward passes, the workers split over the threads.

On a CPU a convolutional model's per-worker gradients are fastest one worker at a time: all workers in
one vmap pass make one huge batched convolution that runs out of cache (on a 2-core CPU, CIFAR-10 CNN,
n=51, b=128: 3-5x slower than a loop, and even one backward pass over all n*b samples is slower than
the loop; `make bench`). Small convolutions parallelise poorly inside one op, so with k torch threads
the loop runs on k Python threads, each worker's ops on one thread (autograd releases the GIL): on
2 cores 1.2-1.3x faster than the same loop with every op on both threads.

Each worker's gradient depends on its own batch alone, so the split changes nothing but float32
rounding where a convolution's kernel depends on the thread count.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait

import torch
from torch import Tensor

_pool: ThreadPoolExecutor | None = None
_pool_size = 0


def _executor(workers: int) -> ThreadPoolExecutor:
    """One pool for the process, grown when a round wants more threads than it has."""
    global _pool, _pool_size
    if _pool is None or _pool_size < workers:
        _pool, _pool_size = ThreadPoolExecutor(workers, thread_name_prefix="byzrun-worker-loop"), workers
    return _pool


def loop_grads(
    loss_fn: Callable[[Tensor, Tensor], Tensor], leaves: list[Tensor], x: Tensor, y: Tensor, threads: int
) -> tuple[Tensor, Tensor]:
    """Gradients [k, d] with respect to `leaves` (concatenated in that order) and losses [k] of
    loss_fn(x[i], y[i]) for the k workers, on up to `threads` threads (1: a plain loop in this thread).
    loss_fn must be safe to call from several threads at once (no module state it changes)."""
    d = sum(leaf.numel() for leaf in leaves)
    G = torch.empty(len(x), d, device=x.device, dtype=leaves[0].dtype)
    losses = torch.empty(len(x), device=x.device, dtype=leaves[0].dtype)

    def rows(lo: int, hi: int, single_threaded: bool) -> None:
        if single_threaded:  # the thread count is per thread for OpenMP: set it in each one
            torch.set_num_threads(1)
        for i in range(lo, hi):
            loss = loss_fn(x[i], y[i])
            grads = torch.autograd.grad(loss, leaves, allow_unused=True, materialize_grads=True)
            torch.cat([g.reshape(-1) for g in grads], out=G[i])
            losses[i] = loss.detach()

    k = max(1, min(threads, len(x)))
    if k == 1 or x.device.type != "cpu":
        rows(0, len(x), False)
        return G, losses
    bounds = [(len(x) * j // k, len(x) * (j + 1) // k) for j in range(k)]
    previous = torch.get_num_threads()
    futures = [_executor(k - 1).submit(rows, lo, hi, True) for lo, hi in bounds[1:]]
    try:
        rows(*bounds[0], True)
    finally:
        wait(futures)  # no thread still writes into G when this returns or raises
        torch.set_num_threads(previous)
    for future in futures:
        future.result()  # re-raise a worker thread's error here
    return G, losses
