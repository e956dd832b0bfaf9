"""The model as one flat parameter vector, and every worker's gradient in one batched call.

The module's parameters are views into `theta`, so updating theta in place updates the model.
worker_grads() runs torch.func.vmap(grad(loss)) over the worker dimension: one call, no Python
loop over workers; its output is already the contiguous [k, d] matrix that attacks and defenses
exchange.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad_and_value, vmap

from byzrun.exact import percent


class FlatModel:
    """An nn.Module whose parameters are views into one flat vector `theta` [d]."""

    def __init__(self, module: nn.Module, device: torch.device, worker_chunk: int | None = None):
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
        # Differentiate w.r.t. the parameter dict, not the flat vector: the backward of a split
        # of theta would concatenate [k, d] per worker, which costs more than copying into G.
        self._grads = vmap(
            grad_and_value(self._dict_loss),
            in_dims=(None, 0, 0),
            randomness="different",
            chunk_size=worker_chunk,
        )

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
        return F.cross_entropy(functional_call(self.module, {**params, **self.buffers}, (x,)), y)

    def worker_grads(self, x: Tensor, y: Tensor, theta: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Gradients [k, d] and losses [k] of k workers' batches x [k, b, ...], y [k, b]."""
        self.module.train()
        grads, losses = self._grads(self.unflatten(self.theta if theta is None else theta), x, y)
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
