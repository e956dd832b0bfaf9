"""The model as one flat parameter vector, and every worker's gradient in one batched call.

The module's parameters are views into `theta`, so updating theta in place updates the model.
worker_grads() runs torch.func.vmap(grad(loss)) over the worker dimension: one call, no Python
loop over workers (in chunks of `worker_chunk` workers, chosen by byzrun.chunking); its output is
already the contiguous [k, d] matrix that attacks and defenses exchange.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad_and_value, vmap

from byzrun.chunking import (
    check_spec,
    cpu_chunk,
    has_conv,
    has_randomness,
    is_out_of_memory,
    log,
    probe_gpu_chunk,
)
from byzrun.errors import ConfigError
from byzrun.exact import percent
from byzrun.worker_loop import loop_grads


def _nhwc_first(loss, x: Tensor, y: Tensor) -> Tensor:
    return loss(x.contiguous(memory_format=torch.channels_last), y)


class FlatModel:
    """An nn.Module whose parameters are views into one flat vector `theta` [d]."""

    def __init__(
        self,
        module: nn.Module,
        device: torch.device,
        worker_chunk: int | str | None = None,
        *,
        channels_last: bool | None = None,
        compile: bool | str = False,
        bf16: bool = False,
    ):
        self.module = module.to(device)
        self.device = device
        params = list(module.named_parameters())
        self.names = [name for name, _ in params]
        self.shapes = [p.shape for _, p in params]
        self.numels = [p.numel() for _, p in params]
        with torch.no_grad():
            self.theta = torch.cat([p.detach().reshape(-1) for _, p in params]).contiguous()
        for (_, p), view in zip(params, self.unflatten(self.theta).values()):
            p.data = view  # the module now reads its weights straight from theta
        self.buffers = dict(module.named_buffers())
        check_spec(worker_chunk)
        # speed options (config `gpu.*`, byzrun/speed.py): inputs in NHWC layout (None: for conv models
        # without dropout on a CPU, where it measured 1.3-1.5x faster; byzrun/chunking.py),
        # torch.compile of the vmapped gradient function (True: inductor, or a backend's name),
        # bfloat16 autocast
        random = has_randomness(module)
        if channels_last is None:
            channels_last = device.type == "cpu" and has_conv(module) and not random
        elif channels_last and random:  # dropout draws its mask in memory order: NHWC moves it
            raise ConfigError(
                "gpu.channels_last=true would change the dropout masks of this model (they are drawn in "
                "memory order); leave gpu.channels_last=null"
            )
        self.channels_last, self.compile, self.bf16 = channels_last, compile, bf16
        self.chunk_spec = worker_chunk  # auto | None (all workers at once) | an int
        self.chunk: int | None = None  # the chunk in use, resolved on the first worker_grads call
        self._resolved = False
        self._workers = 0  # workers of the first call (the round's n)
        self._random = random
        self._vmapped: dict[int | None, object] = {}

    def grads_fn(self, chunk: int | None):
        """vmap(grad) over workers, `chunk` workers per pass (None: all at once); built once per chunk."""
        if chunk not in self._vmapped:
            # Differentiate w.r.t. the parameter dict, not the flat vector: the backward of a split
            # of theta would concatenate [k, d] per worker, which costs more than copying into G.
            self._vmapped[chunk] = vmap(
                grad_and_value(self._dict_loss),
                in_dims=(None, 0, 0),
                randomness="different",
                chunk_size=chunk,
            )
            if self.compile:
                backend = self.compile if isinstance(self.compile, str) else "inductor"
                self._vmapped[chunk] = torch.compile(self._vmapped[chunk], backend=backend)
        return self._vmapped[chunk]

    @property
    def chunk_used(self) -> int | None:
        """Workers per pass in the last round (n when all at once); None before the first round."""
        if not self._resolved:
            return None
        return self.chunk if self.chunk is not None and self.chunk < self._workers else self._workers

    def _resolve_chunk(self, params: dict[str, Tensor], x: Tensor, y: Tensor) -> int | None:
        if self.chunk_spec != "auto":
            return self.chunk_spec
        if self.device.type == "cuda":
            return probe_gpu_chunk(lambda k: self.grads_fn(None)(params, x[:k], y[:k]), len(x), self.device)
        return cpu_chunk(self.module)

    def _rng_state(self):
        if not self._random:
            return None
        cuda = torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
        return torch.get_rng_state(), cuda

    def _set_rng_state(self, state) -> None:
        if state is not None:
            torch.set_rng_state(state[0])
            if state[1] is not None:
                torch.cuda.set_rng_state(state[1], self.device)

    @property
    def d(self) -> int:
        return self.theta.numel()

    def unflatten(self, theta: Tensor) -> dict[str, Tensor]:
        return {n: t.view(s) for n, t, s in zip(self.names, theta.split(self.numels), self.shapes)}

    def forward(self, theta: Tensor, x: Tensor) -> Tensor:
        return functional_call(self.module, {**self.unflatten(theta), **self.buffers}, (x,))

    def loss(self, theta: Tensor, x: Tensor, y: Tensor) -> Tensor:
        """Mean cross entropy of the model at `theta` on one batch (differentiable in theta)."""
        return F.cross_entropy(self.forward(theta, x), y)

    def _dict_loss(self, params: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        return self._module_loss(
            lambda x: functional_call(self.module, {**params, **self.buffers}, (x,)), x, y
        )

    def _module_loss(self, forward, x: Tensor, y: Tensor) -> Tensor:
        if not self.bf16:
            return F.cross_entropy(forward(x), y)
        with torch.autocast(self.device.type, dtype=torch.bfloat16):
            logits = forward(x)
        return F.cross_entropy(logits.float(), y)

    def worker_grads(self, x: Tensor, y: Tensor, theta: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Gradients [k, d] and losses [k] of k workers' batches x [k, b, ...], y [k, b]."""
        self.module.train()
        params = self.unflatten(self.theta if theta is None else theta)
        if not self._resolved:
            self.chunk, self._resolved, self._workers = self._resolve_chunk(params, x, y), True, len(x)
        while True:
            chunk = self.chunk if self.chunk is not None and self.chunk < len(x) else None
            state = self._rng_state()
            try:
                return self._pass(chunk, params, x, y, own=theta is None)
            except Exception as exc:  # out of GPU memory: halve the chunk and redo the pass
                if not is_out_of_memory(exc) or chunk == 1:
                    raise
                self.chunk = max(1, (chunk or len(x)) // 2)
                log.warning(
                    "out of GPU memory with %d workers per pass: retrying the round with worker_chunk=%d",
                    chunk or len(x),
                    self.chunk,
                )
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                self._set_rng_state(state)

    def _pass(
        self, chunk: int | None, params: dict[str, Tensor], x: Tensor, y: Tensor, own: bool
    ) -> tuple[Tensor, Tensor]:
        if chunk == 1:
            # one worker at a time: ordinary backward passes (byzrun.worker_loop; on a CPU faster for conv
            # models, and vmap's BatchNorm rule is slow), split over the CPU threads unless the model draws
            # random numbers: those must be drawn in worker order for the seed to fix them.
            if own:  # the module's own parameters are views of theta: run it as it is
                leaves = list(self.module.parameters())
                loss = partial(self._module_loss, self.module)
            else:  # functional_call swaps the module's attributes, which other threads would see
                leaves = [t.detach().requires_grad_() for t in params.values()]
                loss = partial(self._dict_loss, dict(zip(params, leaves)))
            if self.channels_last and x.dim() == 5:  # each worker's batch to NHWC in its own thread
                loss = partial(_nhwc_first, loss)
            threads = 1 if self._random or not own else torch.get_num_threads()
            return loop_grads(loss, leaves, x, y, threads)
        if self.channels_last and x.dim() == 5:  # each worker's [b, C, H, W] slice in NHWC order
            x = x.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)
        grads, losses = self.grads_fn(chunk)(params, x, y)
        G = torch.empty(len(x), self.d, device=self.theta.device, dtype=self.theta.dtype)
        for name, block in zip(self.names, G.split(self.numels, dim=1)):
            block.copy_(grads[name].reshape(len(x), -1))
        return G, losses

    @torch.no_grad()
    def predict(self, x: Tensor, batch_size: int = 1000) -> Tensor:
        """Logits of the current model (evaluation mode) on x, in batches."""
        self.module.eval()
        return torch.cat([self.module(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])

    @torch.no_grad()
    def evaluate(self, x: Tensor, y: Tensor, batch_size: int = 1000) -> tuple[float, float]:
        """Top-1 accuracy (%) and mean cross entropy on (x, y)."""
        logits = self.predict(x, batch_size)
        loss = F.cross_entropy(logits, y).item()
        acc = percent(logits.argmax(1) == y)
        return acc, loss
