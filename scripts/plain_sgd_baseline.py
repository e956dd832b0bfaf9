"""Plain single-process SGD, no byzrun machinery: the reference a byzrun run with m=0 should match.

Trains the same model with torch.optim.SGD on one batch of n*b samples per step (what n honest
workers averaged by the mean compute together) and prints the maximum and final test accuracy.
Usage: python scripts/plain_sgd_baseline.py dataset=fashion_mnist [rounds=300 n=51 ...]
(takes byzrun's config overrides so both runs read the same data, model and hyper-parameters).
"""

import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir

from byzrun.data import load_data
from byzrun.models import build_model

CONF = str(Path(__file__).resolve().parent.parent / "conf")


def main(overrides: list[str]) -> None:
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    torch.manual_seed(cfg.seed)
    data = load_data(cfg.dataset, torch.device("cpu"))
    options = {k: v for k, v in cfg.model.items() if k != "name"}
    model = build_model(cfg.model.name, data.in_shape, data.num_classes, **options)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum.beta)
    gen = torch.Generator().manual_seed(cfg.seed + 12345)
    accs = []
    for t in range(cfg.rounds):
        idx = torch.randint(len(data.train_y), (cfg.n * cfg.batch_size,), generator=gen)
        opt.zero_grad()
        F.cross_entropy(model(data.train_x[idx]), data.train_y[idx]).backward()
        opt.step()
        if (t + 1) % cfg.eval_every == 0 or t + 1 == cfg.rounds:
            with torch.no_grad():
                model.eval()
                accs.append((model(data.test_x).argmax(1) == data.test_y).float().mean().item() * 100)
                model.train()
    print(f"plain SGD: max test accuracy {max(accs):.2f}%, final {accs[-1]:.2f}%")


if __name__ == "__main__":
    main(sys.argv[1:])
