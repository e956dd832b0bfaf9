"""Which dropout masks the bucketing paper's code draws (github.com/epfml/byzantine-robust-noniid-optimizer):
its ParallelTrainer saves torch's random state before each worker's gradient and restores it after,
so this script trains their MNIST Net with their simulator on random data (3 workers, 2 rounds per
"epoch", their DistributedSampler, an evaluation after each epoch, on the CPU) and prints, for every
pair of the 12 gradient calls, whether the first dropout layer's masks were the same.

Usage: python scripts/bucketing_their_dropout.py CLONE    (a work tree of their repository)
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

WORKERS, ROUNDS, EPOCHS = 3, 2, 2


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    sys.path.insert(0, str(Path(args[0]).resolve()))
    from codes.aggregator.base import Mean
    from codes.sampler import DistributedSampler
    from codes.server import TorchServer
    from codes.simulator import DistributedEvaluator, ParallelTrainer
    from codes.tasks.mnist import Net
    from codes.worker import MomentumWorker

    torch.manual_seed(0)
    model = Net()
    masks = []

    def record(module, inputs, output):
        if module.training:  # a feature map dropped as a whole: all zero
            masks.append((output == 0).flatten(2).all(2).clone())

    model.dropout1.register_forward_hook(record)
    server = TorchServer(torch.optim.SGD(model.parameters(), lr=0.01))
    trainer = ParallelTrainer(server, Mean(), [], [], ROUNDS, 10, {}, False, False)
    for rank in range(WORKERS):
        g = torch.Generator().manual_seed(100 + rank)
        data = TensorDataset(torch.randn(256, 1, 28, 28, generator=g), torch.randint(10, (256,), generator=g))
        sampler = DistributedSampler(data, num_replicas=1, rank=0, shuffle=True)
        loader = DataLoader(data, batch_size=32, sampler=sampler, drop_last=True)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        trainer.add_worker(MomentumWorker(0, loader, model, optimizer, F.nll_loss, "cpu"))
    test = DataLoader(TensorDataset(torch.randn(64, 1, 28, 28), torch.randint(10, (64,))), batch_size=32)
    evaluator = DistributedEvaluator(model, test, F.nll_loss, "cpu", {}, False, False)
    for epoch in range(1, EPOCHS + 1):
        trainer.train(epoch)
        evaluator.evaluate(epoch)
    per_epoch = WORKERS * ROUNDS
    print(f"{len(masks)} gradient calls ({EPOCHS} epochs x {ROUNDS} rounds x {WORKERS} workers); same mask:")
    for a in masks:
        print(" ".join(str(int(torch.equal(a, b))) for b in masks))
    for e in range(EPOCHS):
        block = masks[e * per_epoch : (e + 1) * per_epoch]
        same = all(torch.equal(block[0], m) for m in block)
        print(f"epoch {e + 1}: every worker and round the same mask: {same}")
    print(f"epoch 1 and epoch 2 the same mask: {torch.equal(masks[0], masks[per_epoch])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
