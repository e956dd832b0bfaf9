"""The papers' models: the ALIE paper's MNIST MLP, CIFAR-10 CNN and CIFAR-100 WideResNet-40-4, and the
Distributed Momentum paper's CNN (each as the authors' public code builds it).

- mlp: MNIST fully connected 784 -> 100 (ReLU) -> 10, Xavier-uniform first layer (ALIE code).
- cnn: the CIFAR-10 network of the ALIE paper (conv 16, conv 64, fc 384-192-10).
- wrn: WideResNet-40-4 with pre-activation basic blocks, BatchNorm, no dropout (ALIE CIFAR-100).
- momentum_cnn: the Distributed Momentum paper's CIFAR network (BatchNorm and dropout).
- mnist_cnn: PyTorch's MNIST example network, which the bucketing paper (Karimireddy et al. 2022)
  trains on MNIST (two convolutions, dropout).
- lenet: the LeNet-style MNIST network of Caffe's example, ByzFL's `cnn_mnist` (its benchmark's model).

BatchNorm: workers run in vmap, where in-place buffer updates are impossible, so every
BatchNorm here is a WorkerBatchNorm2d: in training it normalises with the batch statistics of the
worker's own batch and never touches its buffers. Running statistics, used only for evaluation,
are recomputed from training samples at the current parameters right before each evaluation
(see calibrate_batchnorm).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from byzrun.errors import ConfigError


class WorkerBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm whose training forward is pure: per-batch statistics, no buffer updates."""

    calibrating: bool = False

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            if self.calibrating:  # accumulate a cumulative average of batch statistics
                with torch.no_grad():
                    self.running_mean += x.mean(dim=(0, 2, 3))
                    self.running_var += x.var(dim=(0, 2, 3), unbiased=True)
                    self.num_batches_tracked += 1
            if x.dtype != self.weight.dtype:  # bf16 autocast (gpu.bf16): normalise in float32
                return F.batch_norm(x.float(), None, None, self.weight, self.bias, True, 0.0, self.eps).to(
                    x.dtype
                )
            return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)
        return F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps
        )


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, batches) -> None:
    """Set every WorkerBatchNorm2d's running statistics to the average over `batches` of the
    per-batch statistics at the current parameters (a "precise BN" estimate)."""
    bns = [mod for mod in model.modules() if isinstance(mod, WorkerBatchNorm2d)]
    if not bns:
        return
    for bn in bns:
        bn.running_mean.zero_()
        bn.running_var.zero_()
        bn.num_batches_tracked.zero_()
        bn.calibrating = True
    was_training = model.training
    model.train()
    try:
        for x in batches:
            model(x)
    finally:
        for bn in bns:
            bn.calibrating = False
            count = max(int(bn.num_batches_tracked), 1)
            bn.running_mean /= count
            bn.running_var /= count
        model.train(was_training)


class MLP(nn.Module):
    """Fully connected in -> hidden (ReLU) -> classes; Xavier-uniform first layer as in ALIE's code."""

    def __init__(self, in_shape: tuple[int, ...], num_classes: int, hidden: int = 100):
        super().__init__()
        self.fc1 = nn.Linear(math.prod(in_shape), hidden)
        self.fc2 = nn.Linear(hidden, num_classes)
        nn.init.xavier_uniform_(self.fc1.weight)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


class CifarCNN(nn.Module):
    """ALIE's CIFAR-10 network: conv3x3 16, maxpool 3, conv4x4 64, maxpool 4, fc 64-384-192-classes;
    Xavier-uniform first convolution, as the authors' code initialises it."""

    def __init__(self, in_shape: tuple[int, ...], num_classes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_shape[0], 16, 3)
        nn.init.xavier_uniform_(self.conv1.weight)
        self.conv2 = nn.Conv2d(16, 64, 4)
        self.fc1 = nn.Linear(64, 384)
        self.fc2 = nn.Linear(384, 192)
        self.fc3 = nn.Linear(192, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 3)
        x = F.max_pool2d(F.relu(self.conv2(x)), 4)
        x = F.relu(self.fc1(x.flatten(1)))
        return self.fc3(F.relu(self.fc2(x)))


class MomentumCNN(nn.Module):
    """The Distributed Momentum paper's CIFAR network: two blocks of (conv3x3 + BN + ReLU) x 2,
    max-pool 2 and dropout 0.25 (64 then 128 channels), then fc -> hidden -> classes with dropout 0.25.
    hidden = 128 for CIFAR-10 and 256 for CIFAR-100 in the authors' code."""

    def __init__(self, in_shape: tuple[int, ...], num_classes: int, hidden: int = 128, dropout: float = 0.25):
        super().__init__()

        def block(c_in: int, c_out: int) -> list[nn.Module]:
            return [
                nn.Conv2d(c_in, c_out, 3, padding=1),
                WorkerBatchNorm2d(c_out),
                nn.ReLU(),
                nn.Conv2d(c_out, c_out, 3, padding=1),
                WorkerBatchNorm2d(c_out),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Dropout(dropout),
            ]

        self.features = nn.Sequential(*block(in_shape[0], 64), *block(64, 128))
        flat = 128 * (in_shape[1] // 4) * (in_shape[2] // 4)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class MnistCNN(nn.Module):
    """PyTorch's MNIST example network (github.com/pytorch/examples, mnist/main.py) as the bucketing
    paper's code builds it (codes/tasks/mnist.py there): conv3x3 32, ReLU, conv3x3 64, max-pool 2,
    channel dropout 0.25, fc 9216-128, ReLU, dropout 0.5, fc 128-classes; 1,199,882 parameters on 28x28
    MNIST. Their code has no ReLU between the second convolution and the pooling (PyTorch's example
    has one): none here either. The first dropout drops whole feature maps (Dropout2d, as their code);
    the second drops single units, which is what their Dropout2d does to a [batch, 128] input in the
    torch 1.7 they ran. PyTorch's default initialisation."""

    def __init__(self, in_shape: tuple[int, ...], num_classes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_shape[0], 32, 3)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.dropout1 = nn.Dropout2d(0.25)
        self.fc1 = nn.Linear(64 * ((in_shape[1] - 4) // 2) * ((in_shape[2] - 4) // 2), 128)
        self.dropout2 = nn.Dropout(0.5)
        self.fc2 = nn.Linear(128, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = F.max_pool2d(self.conv2(F.relu(self.conv1(x))), 2)  # no ReLU after conv2: their code
        x = F.relu(self.fc1(self.dropout1(x).flatten(1)))
        return self.fc2(self.dropout2(x))


class LeNet(nn.Module):
    """Caffe's LeNet for MNIST, ByzFL's `cnn_mnist` (byzfl/fed_framework/models.py): conv5x5 20, ReLU,
    max-pool 2, conv5x5 50, ReLU, max-pool 2, fc 800-500, ReLU, fc 500-classes; 431,080 parameters on
    28x28 MNIST. No dropout, no BatchNorm; PyTorch's default initialisation. ByzFL ends with
    log_softmax and NLL loss: byzrun's cross-entropy of the logits is the same function."""

    def __init__(self, in_shape: tuple[int, ...], num_classes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_shape[0], 20, 5)
        self.conv2 = nn.Conv2d(20, 50, 5)
        side = ((in_shape[1] - 4) // 2 - 4) // 2, ((in_shape[2] - 4) // 2 - 4) // 2
        self.fc1 = nn.Linear(50 * side[0] * side[1], 500)
        self.fc2 = nn.Linear(500, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


class PreActBlock(nn.Module):
    """Pre-activation basic block of a WideResNet (BN-ReLU-conv, BN-ReLU-conv, no dropout)."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.bn1 = WorkerBatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2 = WorkerBatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.shortcut = None
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Conv2d(c_in, c_out, 1, stride, 0, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        o = F.relu(self.bn1(x))
        y = self.conv1(o)
        y = self.conv2(F.relu(self.bn2(y)))
        return y + (x if self.shortcut is None else self.shortcut(o))


class WideResNet(nn.Module):
    """WideResNet-depth-k (Zagoruyko & Komodakis 2016), pre-activation, He-normal conv init."""

    def __init__(self, in_shape: tuple[int, ...], num_classes: int, depth: int = 40, widen: int = 4):
        super().__init__()
        if (depth - 4) % 6:
            raise ConfigError(f"model.depth must be 6k+4 for a WideResNet, got {depth}")
        blocks = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        self.conv1 = nn.Conv2d(in_shape[0], widths[0], 3, 1, 1, bias=False)
        layers = []
        c_in = widths[0]
        for c_out, stride in zip(widths[1:], (1, 2, 2)):
            for i in range(blocks):
                layers.append(PreActBlock(c_in, c_out, stride if i == 0 else 1))
                c_in = c_out
        self.blocks = nn.Sequential(*layers)
        self.bn = WorkerBatchNorm2d(c_in)
        self.fc = nn.Linear(c_in, num_classes)
        for mod in self.modules():
            if isinstance(mod, nn.Conv2d):
                nn.init.kaiming_normal_(mod.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(mod, nn.BatchNorm2d):
                nn.init.ones_(mod.weight)
                nn.init.zeros_(mod.bias)
            elif isinstance(mod, nn.Linear):
                nn.init.zeros_(mod.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.blocks(self.conv1(x))
        x = F.relu(self.bn(x))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


ARCHITECTURES = {
    "mlp": MLP,
    "cnn": CifarCNN,
    "wrn": WideResNet,
    "momentum_cnn": MomentumCNN,
    "mnist_cnn": MnistCNN,
    "lenet": LeNet,
}


def build_model(name: str, in_shape: tuple[int, ...], num_classes: int, **options) -> nn.Module:
    """Build a model and check it accepts the dataset's input shape (one clear error if not)."""
    if name not in ARCHITECTURES:
        raise ConfigError(f"unknown model.name {name!r}; choose one of {sorted(ARCHITECTURES)}")
    try:
        model = ARCHITECTURES[name](tuple(in_shape), num_classes, **options)
    except TypeError as exc:  # an option another model has (e.g. hidden) given to this one
        raise ConfigError(f"model {name}: {exc}; remove that model option") from None
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(2, *in_shape))
        model.train()
    except RuntimeError as exc:
        shape = "x".join(map(str, in_shape))
        raise ConfigError(
            f"model {name} does not accept {shape} inputs ({str(exc).splitlines()[0]}); "
            f"pick a model that fits the dataset"
        ) from None
    return model
