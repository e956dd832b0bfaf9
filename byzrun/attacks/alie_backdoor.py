"""A Little Is Enough, backdooring (Baruch, Baruch & Goldberg, NeurIPS 2019, Algorithm 4, Sec. 4.2)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.func import grad

from byzrun.attacks import options, stats
from byzrun.attacks.base import Attack, AttackContext
from byzrun.attacks.trigger import Trigger
from byzrun.errors import ConfigError

LOSS_FORMS = ("paper", "alie_code")


class ALIEBackdoor(Attack):
    """Every Byzantine worker sends the same vector

        p = clip((θ - V) / lr,  μ - zσ,  μ + zσ)      (coordinate-wise)

    μ, σ as in ALIE (knowledge, std). V is trained in parameter space, as the authors' code does:
    V starts at θ - lr·μ (the model the server would reach by stepping along μ; θ = engine.theta,
    lr = engine.lr, the current server learning rate) and takes `local_steps` passes of gradient
    descent (torch.func.grad of engine.loss w.r.t. the flat vector) over `samples` training images
    drawn afresh each round without replacement, each with the trigger applied and label `target`,
    on the loss
        paper:     α·CE(V) + (1-α)·MSE(V, V_0)
        alie_code: CE(V) + (1-α)/α·MSE(V, V_0)   (the code's NLL + 4·MSE for α = 0.2: same
                   minimiser, steps 1/α times larger)
    where MSE is the mean over the d coordinates. (θ - V)/lr turns V back into a gradient, which
    the clip keeps within z·σ of μ, the range the defenses cannot tell from honest gradients.

    Options: alpha in [0, 1]; z >= 0 or auto (z_max of Algorithm 3); target label; trigger_size,
    trigger_pos, trigger_value (trigger.py); samples; local_steps (passes over the samples);
    local_lr (None: the server lr); batch_size (None: all samples in one step per pass, one update
    per pass; the code uses 200, i.e. 5 updates per pass); local_momentum and weight_decay of the
    local SGD (the code: 0.9 and 1e-4; here 0 by default, as the paper describes plain training).
    With knowledge=corrupted and m = 1, σ = 0 and the clip returns μ: no backdoor gets through.

    eval_metrics() reports backdoor_acc: the share (%) of triggered test images whose true label is
    not the target that the current model classifies as the target. validate() binds the dataset
    the attack samples from and evaluates on, so it must run before the first round.
    """

    name = "alie_backdoor"

    def __init__(
        self,
        alpha: float = 0.2,
        z: Any = 0.2,
        knowledge: str = "corrupted",
        std: str = "population",
        target: int = 0,
        trigger_size: Any = 5,
        trigger_pos: Any = (0, 0),
        trigger_value: Any = "max",
        samples: int = 1000,
        local_steps: int = 5,
        local_lr: float | None = None,
        batch_size: int | None = None,
        local_momentum: float = 0.0,
        weight_decay: float = 0.0,
        loss_form: str = "paper",
    ):
        self.alpha, self.z_option, self.knowledge, self.std, self.target = alpha, z, knowledge, std, target
        self.trigger = Trigger(trigger_size, trigger_pos, trigger_value)
        self.samples, self.local_steps, self.local_lr, self.batch_size = (
            samples,
            local_steps,
            local_lr,
            batch_size,
        )
        self.local_momentum, self.weight_decay, self.loss_form = local_momentum, weight_decay, loss_form
        self.z: float | None = None
        self.data = None

    def validate(self, *, n: int, m: int, data) -> None:
        self.alpha = options.number("alpha", self.alpha, low=0.0, high=1.0)
        z = options.factor("z", self.z_option, ("auto",), "the paper uses 0.2")
        self.z = stats.checked_z_max(n, m, "z") if z == "auto" else z
        stats.check(self.knowledge, self.std, n=n, m=m)
        self.target = options.integer("target", self.target, low=0, high=data.num_classes - 1)
        self.trigger.check(tuple(data.in_shape))
        self.samples = options.integer("samples", self.samples, low=1, high=len(data.train_x))
        self.local_steps = options.integer("local_steps", self.local_steps, low=0)
        if self.local_lr is not None and options.number("local_lr", self.local_lr, low=0.0) == 0:
            raise ConfigError("attack.local_lr must be > 0, or null for the server's learning rate")
        if self.batch_size is not None:
            self.batch_size = options.integer("batch_size", self.batch_size, low=1)
        self.local_momentum = options.number("local_momentum", self.local_momentum, low=0.0, high=1.0)
        self.weight_decay = options.number("weight_decay", self.weight_decay, low=0.0)
        options.choice("loss_form", self.loss_form, LOSS_FORMS)
        if self.loss_form == "alie_code" and self.alpha == 0:
            raise ConfigError("attack.loss_form=alie_code divides by alpha; use alpha > 0 or loss_form=paper")
        self.data = data

    def _weights(self) -> tuple[float, float]:
        """(weight of the backdoor CE, weight of the MSE to the start)."""
        if self.loss_form == "alie_code":
            return 1.0, (1.0 - self.alpha) / self.alpha
        return self.alpha, 1.0 - self.alpha

    def train(self, engine, start: Tensor) -> Tensor:
        """V after the local steps from `start`, on a fresh triggered sample set."""
        data = self.data
        dtype, device = start.dtype, start.device
        idx = torch.randperm(len(data.train_x), device=data.train_x.device)[: self.samples]
        x = self.trigger.apply(data.train_x[idx], data).to(device=device, dtype=dtype)
        y = torch.full((len(x),), self.target, dtype=torch.long, device=device)
        w_ce, w_mse = self._weights()

        def objective(v: Tensor, xb: Tensor, yb: Tensor) -> Tensor:
            return w_ce * engine.loss(v, xb, yb) + w_mse * (v - start).square().mean()

        step_grad = grad(objective)
        lr = float(engine.lr if self.local_lr is None else self.local_lr)
        bs = len(x) if self.batch_size is None else self.batch_size
        v, buf = start.clone(), None
        was_training = engine.model.training
        engine.model.train()
        try:
            for _ in range(self.local_steps):
                order = torch.randperm(len(x), device=device) if bs < len(x) else None
                for i in range(0, len(x), bs):
                    sel = slice(i, i + bs) if order is None else order[i : i + bs]
                    g = step_grad(v, x[sel], y[sel])
                    if self.weight_decay:
                        g = g + self.weight_decay * v
                    if self.local_momentum:
                        buf = g if buf is None else self.local_momentum * buf + g
                        g = buf
                    v = v - lr * g
        finally:
            engine.model.train(was_training)
        return v

    def __call__(self, ctx: AttackContext) -> Tensor:
        if self.data is None:
            raise RuntimeError("alie_backdoor: call validate(n=, m=, data=) before the first round")
        engine = ctx.engine
        lr = float(engine.lr)
        if not lr > 0:
            raise ConfigError(f"alie_backdoor needs a positive server learning rate, got lr={lr}")
        theta = engine.theta.detach()
        mu, sigma = stats.mean_std(stats.observed(ctx, self.knowledge), self.std)
        mu_t = mu.to(theta.dtype)
        v = self.train(engine, theta - lr * mu_t)
        g = ((theta - v) / lr).to(mu.dtype)
        row = torch.minimum(torch.maximum(g, mu - self.z * sigma), mu + self.z * sigma)
        return row.expand(ctx.rows, -1).contiguous()

    @torch.no_grad()
    def backdoor_accuracy(self, engine) -> float:
        data = self.data
        if data is None:
            raise RuntimeError("alie_backdoor: call validate(n=, m=, data=) before eval_metrics()")
        keep = data.test_y != self.target
        if not bool(keep.any()):
            return float("nan")
        x = self.trigger.apply(data.test_x[keep], data).to(engine.theta.dtype)
        hits = engine.predict(x).argmax(dim=1) == self.target
        return hits.float().mean().item() * 100.0

    def eval_metrics(self, engine) -> dict[str, Any]:
        return {"backdoor_acc": self.backdoor_accuracy(engine)}

    def summary_fields(self) -> dict[str, Any]:
        return {"z": self.z, "alpha": self.alpha}
