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
from byzrun.exact import percent

CONVENTIONS = ("paper", "alie_code")


class ALIEBackdoor(Attack):
    """Every Byzantine worker sends the same vector

        p = clip(g,  μ - zσ,  μ + zσ)      (coordinate-wise)

    μ, σ as in ALIE (knowledge, std). The attacker works in parameter space, as the authors' code
    does: V starts at V_0 = θ - lr·μ (the model the server would reach by stepping along μ; θ =
    ctx.model.theta, lr = ctx.lr, the current server learning rate) and takes `local_steps` passes
    of gradient descent (torch.func.grad of model.loss w.r.t. the flat vector) over triggered
    training images labelled `target`, then turns V back into a gradient g, which the clip keeps
    within z·σ of μ, the range the defenses cannot tell from honest gradients.

    convention (everything that differs between the paper's text and the authors' code):
      paper:     loss α·CE(V) + (1-α)·MSE(V, V_0), MSE the mean over the d coordinates;
                 `samples` images drawn afresh each round; g = (θ - V)/lr.
      alie_code: loss CE(V) + (1-α)/α · Σ_tensors MSE(V_t, V_0,t), the sum over the model's
                 parameter tensors of each tensor's mean squared difference (the code's
                 NLL + 4·Σ MSE for α = 0.2: biases and small layers weigh far more than in a mean
                 over all d coordinates); one fixed set of `samples` training images for the whole
                 run, walked in the same order every pass; no training in a round where V_0 already
                 classifies the whole set as the target; g = (θ - V)/lr - 2μ, what the code's
                 conversion (V_0 - (V + lr·μ))/lr works out to.
    The other settings are plain options (the alie_backdoor_code preset sets the code's values).

    lr_fading F (None: off): V_0 and the conversion use lr·F/(round + F) instead of the server's lr,
    as the code, whose workers get that fading rate while its server steps with the constant lr.

    Options: alpha in (0, 1]; z >= 0 or auto (z_max of Algorithm 3); target label; trigger_size,
    trigger_pos, trigger_value (trigger.py); samples; local_steps (passes over the samples);
    local_lr (None: the server lr); batch_size (None: all samples in one step per pass);
    local_momentum and weight_decay of the local SGD. With knowledge=corrupted and m = 1, σ = 0
    and the clip returns μ: no backdoor gets through.

    eval_metrics() reports two backdoor accuracies (%): backdoor_acc, on the triggered test images
    whose true label is not the target (the paper: "testing was performed on a different subset");
    backdoor_acc_own, on the attacker's own triggered training images with every label the target,
    true targets included, as the authors' code measures it (under convention=paper, a set of
    `samples` images drawn once at the start). validate() binds the dataset the attack samples from
    and evaluates on, so it must run before the first round.
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
        convention: str = "paper",
        lr_fading: float | None = None,
    ):
        self.alpha, self.z_option, self.knowledge, self.std, self.target = alpha, z, knowledge, std, target
        self.trigger = Trigger(trigger_size, trigger_pos, trigger_value)
        self.samples, self.local_steps, self.local_lr, self.batch_size = (
            samples,
            local_steps,
            local_lr,
            batch_size,
        )
        self.local_momentum, self.weight_decay, self.convention = local_momentum, weight_decay, convention
        self.lr_fading = lr_fading
        if convention == "alie_code":  # the authors' code's attacker is filed under a name of its own
            self.name = "alie_backdoor_code"
        self.z: float | None = None
        self.data = None
        self.own_set: Tensor | None = None  # indices of the attacker's own triggered images

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
        options.choice("convention", self.convention, CONVENTIONS)
        if self.lr_fading is not None and not options.number("lr_fading", self.lr_fading, low=0.0) > 0:
            raise ConfigError("attack.lr_fading must be > 0, or null for the server's learning rate")
        if self.convention == "alie_code" and self.alpha == 0:
            raise ConfigError(
                "attack.convention=alie_code divides by alpha; use alpha > 0 or convention=paper"
            )
        self.data = data
        # drawn from torch's global generator, seeded with the run's seed before this is called
        self.own_set = torch.randperm(len(data.train_x))[: self.samples].to(data.train_x.device)

    def triggered(self, idx: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """The training images idx with the trigger applied, every label the target."""
        x = self.trigger.apply(self.data.train_x[idx], self.data).to(dtype)
        return x, torch.full((len(x),), self.target, dtype=torch.long, device=x.device)

    def distance(self, model, v: Tensor, start: Tensor) -> Tensor:
        """The ℓ_Δ term: MSE over all d coordinates (paper), or the sum of each parameter tensor's MSE
        (alie_code)."""
        sq = (v - start).square()
        if self.convention == "alie_code":
            return sum(block.mean() for block in sq.split(model.numels))
        return sq.mean()

    def train(self, model, start: Tensor, server_lr: float) -> Tensor:
        """V after the local steps from `start` on the round's triggered sample set (local steps of
        local_lr, or of the server's learning rate server_lr when local_lr is null)."""
        dtype, device = start.dtype, start.device
        if self.convention == "alie_code":
            x, y = self.triggered(self.own_set, dtype)
            if self.own_accuracy(model, start) >= 100.0:
                return start.clone()  # the code trains only while the backdoor is not yet learnt
        else:
            x, y = self.triggered(
                torch.randperm(len(self.data.train_x), device=device)[: self.samples], dtype
            )
        w_ce, w_mse = (
            (1.0, 1 / self.alpha - 1) if self.convention == "alie_code" else (self.alpha, 1 - self.alpha)
        )

        def objective(v: Tensor, xb: Tensor, yb: Tensor) -> Tensor:
            return w_ce * model.loss(v, xb, yb) + w_mse * self.distance(model, v, start)

        step_grad = grad(objective)
        lr = float(server_lr if self.local_lr is None else self.local_lr)
        bs = len(x) if self.batch_size is None else self.batch_size
        v, buf = start.clone(), None
        was_training = model.module.training
        model.module.train()
        try:
            for _ in range(self.local_steps):
                shuffle = bs < len(x) and self.convention == "paper"  # the code's loader: fixed order
                order = torch.randperm(len(x), device=device) if shuffle else None
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
            model.module.train(was_training)
        return v

    def __call__(self, ctx: AttackContext) -> Tensor:
        if self.data is None:
            raise RuntimeError("alie_backdoor: call validate(n=, m=, data=) before the first round")
        model = ctx.model
        lr = server_lr = float(ctx.lr)
        if not lr > 0:
            raise ConfigError(f"alie_backdoor needs a positive server learning rate, got lr={lr}")
        if self.lr_fading:  # the code's workers get lr*F/(round+F), its server steps with lr
            lr *= self.lr_fading / (ctx.round + self.lr_fading)
        theta = model.theta.detach()
        mu, sigma = stats.mean_std(stats.observed(ctx, self.knowledge), self.std)
        mu_t = mu.to(theta.dtype)
        v = self.train(model, theta - lr * mu_t, server_lr)
        g = ((theta - v) / lr).to(mu.dtype)
        if self.convention == "alie_code":
            g -= 2 * mu
        row = torch.minimum(torch.maximum(g, mu - self.z * sigma), mu + self.z * sigma)
        return row.expand(ctx.m, -1).contiguous()

    @torch.no_grad()
    def backdoor_accuracy(self, model) -> float:
        data = self.data
        if data is None:
            raise RuntimeError("alie_backdoor: call validate(n=, m=, data=) before eval_metrics()")
        keep = data.test_y != self.target
        if not bool(keep.any()):
            return float("nan")
        x = self.trigger.apply(data.test_x[keep], data).to(model.theta.dtype)
        hits = model.predict(x).argmax(dim=1) == self.target
        return percent(hits)

    @torch.no_grad()
    def own_accuracy(self, model, theta: Tensor | None = None) -> float:
        """The share (%) of the attacker's own triggered images classified as the target."""
        x, y = self.triggered(self.own_set, model.theta.dtype)
        theta = model.theta if theta is None else theta
        was_training = model.module.training
        model.module.eval()
        try:
            logits = torch.cat([model.forward(theta, xb) for xb in x.split(1000)])
        finally:
            model.module.train(was_training)
        return percent(logits.argmax(dim=1) == y)

    def eval_metrics(self, model) -> dict[str, Any]:
        return {"backdoor_acc": self.backdoor_accuracy(model), "backdoor_acc_own": self.own_accuracy(model)}

    def summary_fields(self) -> dict[str, Any]:
        return {"z": self.z, "alpha": self.alpha}
