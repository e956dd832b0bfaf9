"""How many workers share one vectorised pass (`worker_chunk`), chosen per model and device.

`worker_chunk=auto` (the default):

- CPU: 1 for models with convolutions, all n at once for the others. One worker per pass runs as a
  plain loop of ordinary backward passes split over the CPU threads (byzrun.worker_loop), with NHWC
  inputs (`gpu.channels_last: null` turns them on for conv models without dropout on a CPU).
  Measured on a 2-core CPU (CIFAR-10 CNN, n=51, batch 128, `make bench`): all 51 workers in one vmap
  pass is 3-5x slower than a loop, and even one backward pass over all n*b samples is slower than the
  loop (one huge convolution runs out of cache); the threads and NHWC make the loop 1.3-1.5x faster
  than the peers' plain loop (2 threads). For the MLP one batched matrix product over all workers is
  the fastest. momentum_cnn (dropout) went from 8.6 s a round in one vmap pass to 2.2 s (n=25, b=50).
- CUDA: the largest chunk that fits in free memory, from the peak memory of a one-worker probe, and
  halved (one log line) whenever a round still runs out of memory.
- Models that draw random numbers (dropout: `momentum_cnn`): vmap draws a different stream per chunk
  size, so on CUDA they run all n workers in one pass as long as memory allows. On a CPU they loop like
  the other conv models, in worker order on one Python thread so that every worker's dropout masks are
  fixed by the seed.

Chunks change nothing else: each worker's gradient is computed from its own batch alone; only the
convolution algorithm picked for a chunk may round differently (float32 noise, tests/test_speed.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from torch import nn

log = logging.getLogger("byzrun")

#: fraction of the free GPU memory the chunk may plan to use (the rest: allocator slack, the round)
GPU_MEMORY_SHARE = 0.8


def has_conv(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.conv._ConvNd) for m in module.modules())


def has_randomness(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.dropout._DropoutNd) for m in module.modules())


def check_spec(spec) -> None:
    """worker_chunk must be null, auto or an integer >= 1 (ValueError otherwise)."""
    if spec is None or spec == "auto":
        return
    if isinstance(spec, bool) or not isinstance(spec, int) or spec < 1:
        raise ValueError(
            f"worker_chunk must be auto, null (all workers at once) or an integer >= 1, got {spec!r}"
        )


def cpu_chunk(module: nn.Module) -> int | None:
    """The measured CPU rule: 1 for convolutional models, else None (all at once)."""
    return 1 if has_conv(module) else None


def gpu_chunk(per_worker_bytes: float, free_bytes: float, n: int, share: float = GPU_MEMORY_SHARE) -> int:
    """The largest chunk whose activations fit in `share` of the free memory (at least 1, at most n)."""
    if per_worker_bytes <= 0:
        return n
    return int(max(1, min(n, (share * free_bytes) // per_worker_bytes)))


def probe_gpu_chunk(run_chunk: Callable[[int], object], n: int, device: torch.device) -> int:
    """Measure one worker's peak memory with run_chunk(1) (random streams restored afterwards), then
    size the chunk from the free memory."""
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    with torch.random.fork_rng(devices=[device]):
        run_chunk(1)
    torch.cuda.synchronize(device)
    per_worker = torch.cuda.max_memory_allocated(device) - base
    free, _ = torch.cuda.mem_get_info(device)
    # memory torch's caching allocator holds but does not use is free for the next pass too
    free += torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    chunk = gpu_chunk(per_worker, free, n)
    log.info(
        "worker_chunk=auto: %d of %d workers per pass (one worker's pass peaks at %.0f MiB, %.0f MiB free)",
        chunk,
        n,
        per_worker / 2**20,
        free / 2**20,
    )
    return chunk


def is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError)
